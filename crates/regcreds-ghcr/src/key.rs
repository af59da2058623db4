//! The GitHub App's private key: PEM in, an RSA signing key out.
//!
//! GitHub generates PKCS#1 keys (`-----BEGIN RSA PRIVATE KEY-----`); `openssl pkcs8 -topk8` turns them
//! into PKCS#8 (`-----BEGIN PRIVATE KEY-----`). Both are read by aws-lc-rs directly, so no conversion is
//! asked of the user. Anything else (a certificate, a public key, an EC or OpenSSH key) is named.

use aws_lc_rs::{
    rand::SystemRandom,
    signature::{RSA_PKCS1_SHA256, RsaKeyPair},
};

use crate::{KeyError, pem};

/// An RSA key that signs app JWTs.
pub(crate) struct AppKey {
    pair: RsaKeyPair,
}

impl std::fmt::Debug for AppKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppKey")
            .field("bits", &(self.pair.public_modulus_len() * 8))
            .finish_non_exhaustive()
    }
}

impl AppKey {
    /// Parses a PEM private key (PKCS#1 or PKCS#8, RSA, 2048–8192 bits).
    pub(crate) fn from_pem(text: &str) -> Result<Self, KeyError> {
        let block = pem::first_block(text)?;
        let pair = match block.label.as_str() {
            "RSA PRIVATE KEY" => RsaKeyPair::from_der(&block.der),
            "PRIVATE KEY" => RsaKeyPair::from_pkcs8(&block.der),
            other => return Err(KeyError::NotAnRsaPrivateKey(other.to_string())),
        };
        let pair = pair.map_err(|_| KeyError::Rejected)?;
        Ok(Self { pair })
    }

    /// RS256 (RSASSA-PKCS1-v1_5 with SHA-256) signature of `message`.
    pub(crate) fn sign(&self, message: &[u8]) -> Option<Vec<u8>> {
        let mut signature = vec![0; self.pair.public_modulus_len()];
        self.pair
            .sign(&RSA_PKCS1_SHA256, &SystemRandom::new(), message, &mut signature)
            .ok()?;
        Some(signature)
    }

    /// The public key (DER `RSAPublicKey`), for tests that verify a signature.
    #[cfg(test)]
    pub(crate) fn public_key(&self) -> Vec<u8> {
        use aws_lc_rs::signature::KeyPair;
        self.pair.public_key().as_ref().to_vec()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pkcs1_as_github_issues_it_and_pkcs8_read_as_the_same_key() {
        let pkcs1 = AppKey::from_pem(include_str!("../tests/fixtures/test-app-key.pem")).expect("PKCS#1");
        let pkcs8 =
            AppKey::from_pem(include_str!("../tests/fixtures/test-app-key-pkcs8.pem")).expect("PKCS#8");
        assert_eq!(pkcs1.public_key(), pkcs8.public_key());
        assert!(!format!("{pkcs1:?}").contains("BEGIN"), "{pkcs1:?}");
    }

    #[test]
    fn other_pem_kinds_are_named_not_parsed() {
        for (label, expected) in [
            ("CERTIFICATE", "CERTIFICATE"),
            ("PUBLIC KEY", "PUBLIC KEY"),
            ("EC PRIVATE KEY", "EC PRIVATE KEY"),
            ("OPENSSH PRIVATE KEY", "OPENSSH PRIVATE KEY"),
        ] {
            let text = format!("-----BEGIN {label}-----\nc2VjcmV0\n-----END {label}-----\n");
            assert_eq!(
                AppKey::from_pem(&text).err(),
                Some(KeyError::NotAnRsaPrivateKey(expected.into()))
            );
        }
    }

    #[test]
    fn pem_shaped_garbage_is_rejected_without_quoting_it() {
        let text =
            "-----BEGIN RSA PRIVATE KEY-----\nc2VjcmV0LWtleS1ieXRlcw==\n-----END RSA PRIVATE KEY-----\n";
        let err = AppKey::from_pem(text).expect_err("not a key");
        assert_eq!(err, KeyError::Rejected);
        assert!(!err.to_string().contains("c2VjcmV0"), "{err}");
    }
}
