//! Certificates and keys for a throwaway control plane, generated in-process with `rcgen`.
//!
//! One CA signs everything: the apiserver's serving certificate (so kubeconfigs trust it) and the
//! client certificates the apiserver authenticates via `--client-ca-file`. The apiserver maps a client
//! certificate's CN to the user name and its O entries to groups, so `O=system:masters` is the
//! RBAC-bypassing admin and a certificate without groups is subject to RBAC. ECDSA P-256 keeps key
//! generation instant.

use anyhow::{Result, bail};
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DistinguishedName, DnType, ExtendedKeyUsagePurpose,
    IsCa, KeyPair, KeyUsagePurpose,
};

/// A PEM certificate and its PEM (PKCS#8) private key.
#[derive(Debug, Clone)]
pub(crate) struct CertPair {
    /// Certificate, PEM.
    pub(crate) cert: String,
    /// Private key, PEM.
    pub(crate) key: String,
}

/// The control plane's certificate authority.
pub(crate) struct Pki {
    ca: CertifiedIssuer<'static, KeyPair>,
}

impl std::fmt::Debug for Pki {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pki").finish_non_exhaustive()
    }
}

impl Pki {
    /// A fresh self-signed CA.
    pub(crate) fn new() -> Result<Self> {
        let mut params = CertificateParams::default();
        params.distinguished_name = name("regcreds-testkit-ca", &[])?;
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        Ok(Self {
            ca: CertifiedIssuer::self_signed(params, KeyPair::generate()?)?,
        })
    }

    /// The CA certificate, PEM: kubeconfigs' `certificate-authority-data` and `--client-ca-file`.
    pub(crate) fn ca_pem(&self) -> String {
        self.ca.pem()
    }

    /// The apiserver's serving certificate, valid for loopback, the in-cluster service names and the
    /// `kubernetes` Service's ClusterIP, and `node_ip` if the apiserver serves a node there.
    pub(crate) fn serving_cert(&self, node_ip: Option<std::net::Ipv4Addr>) -> Result<CertPair> {
        let mut sans: Vec<String> = [
            "localhost",
            "127.0.0.1",
            "10.0.0.1",
            "kubernetes",
            "kubernetes.default",
            "kubernetes.default.svc",
        ]
        .map(String::from)
        .to_vec();
        sans.extend(node_ip.map(|ip| ip.to_string()));
        let mut params = CertificateParams::new(sans)?;
        params.distinguished_name = name("kube-apiserver", &[])?;
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        self.sign(params)
    }

    /// A client certificate for `user` in `groups` (at most one: see [`name`]).
    pub(crate) fn client_cert(&self, user: &str, groups: &[&str]) -> Result<CertPair> {
        let mut params = CertificateParams::default();
        params.distinguished_name = name(user, groups)?;
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        self.sign(params)
    }

    fn sign(&self, mut params: CertificateParams) -> Result<CertPair> {
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        params.use_authority_key_identifier_extension = true;
        let key = KeyPair::generate()?;
        let cert = params.signed_by(&key, &self.ca)?;
        Ok(CertPair {
            cert: cert.pem(),
            key: key.serialize_pem(),
        })
    }
}

/// The key pair the apiserver signs ServiceAccount tokens with: (private PEM, public PEM).
pub(crate) fn service_account_key() -> Result<(String, String)> {
    let key = KeyPair::generate()?;
    Ok((key.serialize_pem(), key.public_key_pem()))
}

/// CN = `common_name`, O = the group: how the apiserver reads a user and its groups from a certificate.
///
/// rcgen's `DistinguishedName` holds one value per attribute type, so one group at most; tests that
/// need several can bind RBAC to the user instead.
fn name(common_name: &str, groups: &[&str]) -> Result<DistinguishedName> {
    let mut dn = DistinguishedName::new();
    match groups {
        [] => {}
        [group] => dn.push(DnType::OrganizationName, *group),
        _ => bail!("a test client certificate carries at most one group, got {groups:?}"),
    }
    dn.push(DnType::CommonName, common_name);
    Ok(dn)
}
