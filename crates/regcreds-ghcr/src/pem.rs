//! The one PEM block of a private key file: its label and its DER bytes. Nothing is ever quoted back:
//! errors name the label (`RSA PRIVATE KEY`, `CERTIFICATE`, …), never the base64 body.

use base64::{Engine, engine::general_purpose::STANDARD};

use crate::KeyError;

/// A decoded PEM block.
pub(crate) struct Block {
    /// What the `-----BEGIN <label>-----` line says.
    pub(crate) label: String,
    /// The decoded body.
    pub(crate) der: Vec<u8>,
}

/// The first PEM block of `text`.
///
/// A key pasted into an environment variable often arrives with literal `\n` sequences instead of line
/// breaks; those are accepted, since base64 cannot contain a backslash.
pub(crate) fn first_block(text: &str) -> Result<Block, KeyError> {
    let text = text.replace("\\n", "\n");
    let begin = text.find("-----BEGIN ").ok_or(KeyError::NotPem)?;
    let rest = &text[begin + "-----BEGIN ".len()..];
    let (label, rest) = rest.split_once("-----").ok_or(KeyError::NotPem)?;
    let end_marker = format!("-----END {label}-----");
    let body = rest
        .split(&end_marker)
        .next()
        .filter(|_| rest.contains(&end_marker));
    let body = body.ok_or(KeyError::NotPem)?;
    // RFC 1421 headers (`Proc-Type: 4,ENCRYPTED`, `DEK-Info: …`) mean an encrypted legacy key.
    if body.lines().any(|line| line.contains(':')) || label.contains("ENCRYPTED") {
        return Err(KeyError::Encrypted);
    }
    let base64: String = body.chars().filter(|c| !c.is_whitespace()).collect();
    let der = STANDARD.decode(base64).map_err(|_| KeyError::NotBase64)?;
    Ok(Block {
        label: label.to_string(),
        der,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_label_and_body_with_real_or_escaped_line_breaks() {
        for text in [
            "junk\n-----BEGIN RSA PRIVATE KEY-----\naGVs\nbG8=\n-----END RSA PRIVATE KEY-----\n",
            "-----BEGIN RSA PRIVATE KEY-----\\naGVsbG8=\\n-----END RSA PRIVATE KEY-----",
            "-----BEGIN RSA PRIVATE KEY-----\r\naGVsbG8=\r\n-----END RSA PRIVATE KEY-----\r\n",
        ] {
            let block = first_block(text).expect("PEM");
            assert_eq!(block.label, "RSA PRIVATE KEY");
            assert_eq!(block.der, b"hello");
        }
    }

    #[test]
    fn each_malformed_form_has_its_own_error_and_quotes_nothing() {
        assert_eq!(first_block("c2VjcmV0").err(), Some(KeyError::NotPem));
        assert_eq!(
            first_block("-----BEGIN RSA PRIVATE KEY-----\nc2VjcmV0\n").err(),
            Some(KeyError::NotPem),
            "no END line"
        );
        let encrypted = "-----BEGIN RSA PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\nDEK-Info: AES-128-CBC,00\n\nc2VjcmV0\n-----END RSA PRIVATE KEY-----";
        assert_eq!(first_block(encrypted).err(), Some(KeyError::Encrypted));
        let pkcs8_encrypted =
            "-----BEGIN ENCRYPTED PRIVATE KEY-----\nc2VjcmV0\n-----END ENCRYPTED PRIVATE KEY-----";
        assert_eq!(first_block(pkcs8_encrypted).err(), Some(KeyError::Encrypted));
        let bad = "-----BEGIN PRIVATE KEY-----\nc2V*cmV0\n-----END PRIVATE KEY-----";
        assert_eq!(first_block(bad).err(), Some(KeyError::NotBase64));
    }
}
