//! Generated service-account keys and `tests/fixtures/fake_cloud.py` (plain HTTP: gcp_auth-style
//! clients accept an http `token_uri`) for one test.

#![allow(dead_code)]

use regcreds_fakes::process;
use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
};

use process::FixtureProcess;

/// A freshly generated RSA key in the forms the tests need.
pub struct KeyPair {
    _dir: tempfile::TempDir,
    /// `BEGIN PRIVATE KEY` PEM.
    pub pkcs8: String,
    /// `BEGIN RSA PRIVATE KEY` PEM of the same key.
    pub pkcs1: String,
    /// The public key PEM file (for the fake's signature check).
    pub public_pem: PathBuf,
}

impl KeyPair {
    /// Generates a 2048-bit RSA key with the fixture's Python (`cryptography`).
    pub fn generate() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let status = std::process::Command::new(process::python())
            .arg(process::fixture("fake_cloud.py"))
            .arg("genkey")
            .arg(dir.path())
            .status()
            .expect("run fake_cloud.py genkey");
        assert!(
            status.success(),
            "fake_cloud.py genkey failed (test deps missing? run setup-test-deps.sh)"
        );
        let read = |name: &str| std::fs::read_to_string(dir.path().join(name)).expect("generated key file");
        Self {
            pkcs8: read("pkcs8.pem"),
            pkcs1: read("pkcs1.pem"),
            public_pem: dir.path().join("public.pem"),
            _dir: dir,
        }
    }
}

/// A service-account key JSON document as Google issues them.
pub fn key_json(private_key: &str, client_email: &str, token_uri: &str) -> String {
    serde_json::json!({
        "type": "service_account",
        "project_id": "regcreds-test",
        "private_key_id": "0123456789abcdef",
        "private_key": private_key,
        "client_email": client_email,
        "client_id": "1234567890",
        "token_uri": token_uri,
    })
    .to_string()
}

/// The fake Google token endpoint and metadata server.
pub struct FakeGoogle {
    process: FixtureProcess,
    /// `http://127.0.0.1:<port>`.
    pub url: String,
}

/// One logged request.
#[derive(Debug, Clone, serde::Deserialize)]
pub struct Request {
    /// Path without query.
    pub path: String,
    /// Query parameters.
    pub query: BTreeMap<String, String>,
    /// Selected headers, lower-case names.
    pub headers: BTreeMap<String, String>,
    /// Form fields of the body.
    pub form: BTreeMap<String, String>,
    /// Decoded claims of a jwt-bearer assertion.
    #[serde(default)]
    pub claims: Option<serde_json::Value>,
}

impl FakeGoogle {
    /// Starts the fake; `public_key` turns on the assertion signature check.
    pub fn start(public_key: Option<&Path>, env: &[(&str, &str)]) -> Self {
        let key_env = public_key.map(|p| p.display().to_string());
        let mut all_env: Vec<(&str, &str)> = env.to_vec();
        if let Some(path) = &key_env {
            all_env.push(("FAKE_GOOGLE_PUBLIC_KEY", path));
        }
        let process = FixtureProcess::start(
            "fake_cloud.py",
            |_| vec!["serve".into()],
            "FAKE_REQUEST_LOG",
            &all_env,
        );
        let url = format!("http://127.0.0.1:{}", process.port);
        Self { process, url }
    }

    /// The token URI to put into keys.
    pub fn token_uri(&self) -> String {
        format!("{}/token", self.url)
    }

    /// The requests to `path`, in order.
    pub fn requests_to(&self, path: &str) -> Vec<Request> {
        self.process
            .requests::<Request>()
            .into_iter()
            .filter(|r| r.path == path)
            .collect()
    }
}
