//! Starting `tests/fixtures/moto_ecr.py` (moto's ECR and STS, patched) for one test.

#![allow(dead_code)]

use process::FixtureProcess;
use regcreds_fakes::process;

/// A running moto with its request log.
pub struct Moto {
    process: FixtureProcess,
    /// `http://127.0.0.1:<port>`.
    pub url: String,
}

/// One logged request.
#[derive(Debug, Clone, serde::Deserialize)]
pub struct Request {
    /// `X-Amz-Target` (JSON protocols), empty for STS.
    pub target: String,
    /// `Action=` of a form body (STS), if any.
    pub action: Option<String>,
    /// Region of the SigV4 credential scope; `None` for unsigned calls.
    pub region: Option<String>,
    /// Access key ID that signed the request; `None` for unsigned calls.
    pub access_key_id: Option<String>,
    /// The raw body.
    pub body: String,
}

impl Moto {
    /// Starts the fixture with extra environment (`ECR_TOKEN_TTL`, `ECR_FAIL_REGIONS`, ...).
    pub fn start(env: &[(&str, &str)]) -> Self {
        let process = FixtureProcess::start("moto_ecr.py", |_| Vec::new(), "ECR_REQUEST_LOG", env);
        let url = format!("http://127.0.0.1:{}", process.port);
        Self { process, url }
    }

    /// Every request so far, in order.
    pub fn requests(&self) -> Vec<Request> {
        self.process.requests()
    }

    /// The ECR GetAuthorizationToken requests so far.
    pub fn ecr_token_requests(&self) -> Vec<Request> {
        self.requests()
            .into_iter()
            .filter(|r| r.target == "AmazonEC2ContainerRegistry_V20150921.GetAuthorizationToken")
            .collect()
    }
}
