//! Kubeconfig files for the control plane's users, and `kube::Config`s built from them.
//!
//! Everything is embedded (`*-data` fields), so a kubeconfig file stays valid wherever it is copied,
//! and `kubectl`, the regcreds binary and kube-controller-manager all read the same format.

use anyhow::{Context, Result};
use base64::{Engine, engine::general_purpose::STANDARD};
use kube::config::{KubeConfigOptions, Kubeconfig};

use crate::pki::CertPair;

/// Context, cluster and user entry names in the generated files.
const CONTEXT: &str = "regcreds-test";

/// A kubeconfig (YAML) for `user` authenticating with `creds` to `server`, trusting `ca_pem`.
pub(crate) fn render(server: &str, ca_pem: &str, user: &str, creds: &CertPair) -> String {
    // JSON string literals are valid YAML double-quoted scalars, so user names with ':' stay intact.
    let quote = |s: &str| serde_json::Value::from(s).to_string();
    let b64 = |s: &str| STANDARD.encode(s);
    format!(
        "apiVersion: v1
kind: Config
clusters:
- name: {CONTEXT}
  cluster:
    server: {server}
    certificate-authority-data: {ca}
users:
- name: {user}
  user:
    client-certificate-data: {cert}
    client-key-data: {key}
contexts:
- name: {CONTEXT}
  context:
    cluster: {CONTEXT}
    user: {user}
current-context: {CONTEXT}
",
        server = quote(server),
        ca = b64(ca_pem),
        user = quote(user),
        cert = b64(&creds.cert),
        key = b64(&creds.key),
    )
}

/// The client configuration a kubeconfig describes; cheap to turn into a `kube::Client`.
pub(crate) async fn to_config(yaml: &str) -> Result<kube::Config> {
    let kubeconfig = Kubeconfig::from_yaml(yaml).context("parsing generated kubeconfig")?;
    kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .context("loading generated kubeconfig")
}
