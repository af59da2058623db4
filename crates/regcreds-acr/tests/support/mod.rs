//! Starting `tests/fixtures/fake_cloud.py` over HTTPS with a throwaway CA for one test.

#![allow(dead_code)]

use regcreds_fakes::process;
use std::{collections::BTreeMap, path::PathBuf};

use process::FixtureProcess;

/// The login server the fake plays by default.
pub const LOGIN_SERVER: &str = "myregistry.azurecr.io";

/// The fake Entra / managed identity / ACR endpoints.
pub struct FakeCloud {
    process: FixtureProcess,
    /// `https://127.0.0.1:<port>`.
    pub url: String,
}

/// One logged request.
#[derive(Debug, Clone, serde::Deserialize)]
pub struct Request {
    /// HTTP method.
    pub method: String,
    /// Path without query.
    pub path: String,
    /// Query parameters.
    pub query: BTreeMap<String, String>,
    /// Selected headers, lower-case names.
    pub headers: BTreeMap<String, String>,
    /// Form fields of the body.
    pub form: BTreeMap<String, String>,
}

impl FakeCloud {
    /// Starts the fake with extra environment (`FAKE_FAIL`, `FAKE_REFRESH_TTL`, ...). It plays the login
    /// server [`LOGIN_SERVER`] (the `service` the exchange requires) unless `FAKE_ACR_LOGIN_SERVER` says
    /// otherwise (empty: the address it is reached at).
    pub fn start(env: &[(&str, &str)]) -> Self {
        let args = |dir: &std::path::Path| vec!["serve".into(), "--tls".into(), dir.as_os_str().to_owned()];
        let mut all = vec![("FAKE_ACR_LOGIN_SERVER", LOGIN_SERVER)];
        all.extend_from_slice(env);
        let process = FixtureProcess::start("fake_cloud.py", args, "FAKE_REQUEST_LOG", &all);
        let url = format!("https://127.0.0.1:{}", process.port);
        Self { process, url }
    }

    /// The PEM file of the CA that signed the fake's certificate.
    pub fn ca_file(&self) -> PathBuf {
        self.process.dir().join("ca.pem")
    }

    /// Every request so far, in order.
    pub fn requests(&self) -> Vec<Request> {
        self.process.requests()
    }

    /// The requests to `path`.
    pub fn requests_to(&self, path: &str) -> Vec<Request> {
        self.requests().into_iter().filter(|r| r.path == path).collect()
    }
}
