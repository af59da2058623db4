//! The registry's files on disk: its throwaway CA and server certificate, the htpasswd file, and
//! `config.yml`.

use std::{fs, path::Path};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};

use super::token::{TOKEN_ISSUER, TOKEN_SERVICE};

/// Writes `ca.crt`, `certs/ca.crt`, `server.crt`, `server.key`; returns the CA PEM.
pub(super) fn write_certificates(dir: &Path) -> String {
    let ca_key = KeyPair::generate().expect("CA key");
    let mut ca = CertificateParams::new(Vec::<String>::new()).expect("CA params");
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name.push(DnType::CommonName, "regcreds test CA");
    ca.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let ca_pem = ca.self_signed(&ca_key).expect("self-sign CA").pem();
    let issuer = Issuer::new(ca, ca_key);

    let server_key = KeyPair::generate().expect("server key");
    let mut server =
        CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()]).expect("SANs");
    server.distinguished_name.push(DnType::CommonName, "127.0.0.1");
    server.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let server_pem = server
        .signed_by(&server_key, &issuer)
        .expect("sign server cert")
        .pem();

    fs::create_dir_all(dir.join("certs")).expect("certs dir");
    for (name, content) in [
        ("ca.crt", ca_pem.as_str()),
        ("certs/ca.crt", ca_pem.as_str()),
        ("server.crt", server_pem.as_str()),
        ("server.key", server_key.serialize_pem().as_str()),
    ] {
        fs::write(dir.join(name), content).expect("write certificate");
    }
    ca_pem
}

/// bcrypt at the lowest cost: the registry verifies it on every request, and these are test passwords.
pub(super) fn write_htpasswd(dir: &Path, users: &[(String, String)]) {
    let lines: String = users
        .iter()
        .map(|(user, password)| format!("{user}:{}\n", bcrypt::hash(password, 4).expect("bcrypt")))
        .collect();
    // Write-then-rename so the registry never reads a half-written file.
    let staging = dir.join("htpasswd.new");
    fs::write(&staging, lines).expect("write htpasswd");
    fs::rename(&staging, dir.join("htpasswd")).expect("replace htpasswd");
}

/// How the registry authenticates clients.
pub(super) enum Auth {
    None,
    Htpasswd,
    Token { realm: String },
}

/// The registry's `config.yml`: listen on `host`, TLS from `dir` if `tls`, and `auth`.
pub(super) fn config_yaml(dir: &Path, host: &str, tls: bool, auth: &Auth) -> String {
    let dir = dir.display();
    let mut yaml = format!(
        "version: 0.1\n\
         log:\n  level: info\n  accesslog:\n    disabled: true\n\
         storage:\n  filesystem:\n    rootdirectory: {dir}/data\n\
         http:\n  addr: {host}\n  secret: regcreds-test-fixture\n"
    );
    if tls {
        yaml += &format!("  tls:\n    certificate: {dir}/server.crt\n    key: {dir}/server.key\n");
    }
    match auth {
        Auth::None => {}
        Auth::Htpasswd => {
            yaml += &format!("auth:\n  htpasswd:\n    realm: regcreds-test\n    path: {dir}/htpasswd\n")
        }
        Auth::Token { realm } => {
            yaml += &format!(
                "auth:\n  token:\n    realm: {realm}\n    service: {TOKEN_SERVICE}\n    \
                 issuer: {TOKEN_ISSUER}\n    rootcertbundle: {dir}/token-ca.crt\n"
            )
        }
    }
    yaml
}
