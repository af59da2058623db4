//! The public entry point: one HTTP client, many checks.

use std::{collections::BTreeMap, time::Duration};

use regcreds_core::{Credential, CredentialSet, RegistryHost};
use tokio::time::Instant;

use crate::{CheckResult, Error, HttpPolicy, ImageRef, Result, handshake::Handshake};

/// How a [`Verifier`] talks to registries.
#[derive(Debug, Clone)]
pub struct VerifierOptions {
    /// Limit for each HTTP request (a check makes at most five).
    pub timeout: Duration,
    /// PEM certificates trusted in addition to the platform's roots (private registries, test CAs).
    pub extra_root_certs: Vec<Vec<u8>>,
    /// `host[:port]` authorities reached over plain http, registries and token endpoints alike. Empty by
    /// default: credentials never travel in clear text unless a host is named here.
    pub insecure_http_hosts: Vec<String>,
}

impl Default for VerifierOptions {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(10),
            extra_root_certs: Vec::new(),
            insecure_http_hosts: Vec::new(),
        }
    }
}

/// Checks credentials against their registries the way docker and containerd authenticate.
///
/// Cheap to clone; clones share one connection pool.
#[derive(Debug, Clone)]
pub struct Verifier {
    client: reqwest::Client,
    http: HttpPolicy,
    timeout: Duration,
}

impl Verifier {
    /// Builds the HTTP client. Fails only on an invalid extra root certificate or a TLS set-up error.
    pub fn new(options: VerifierOptions) -> Result<Self> {
        let mut roots = Vec::new();
        for (index, pem) in options.extra_root_certs.iter().enumerate() {
            let certs = reqwest::Certificate::from_pem_bundle(pem)
                .map_err(|source| Error::RootCertificate { index, source })?;
            if certs.is_empty() {
                return Err(Error::NoCertificate { index });
            }
            roots.extend(certs);
        }
        let http = HttpPolicy::new(options.insecure_http_hosts);
        let client = reqwest::Client::builder()
            .user_agent(concat!("regcreds-verify/", env!("CARGO_PKG_VERSION")))
            .timeout(options.timeout)
            .connect_timeout(options.timeout)
            .tls_certs_merge(roots)
            .redirect(redirect_policy(http.clone()))
            .build()
            .map_err(Error::HttpClient)?;
        Ok(Self {
            client,
            http,
            timeout: options.timeout,
        })
    }

    /// Checks one credential: authenticates at `/v2/` and, with a `probe`, asks for that image's
    /// manifest to prove pull rights. Never fails: every problem is an [`crate::Outcome`].
    pub async fn check(&self, credential: &Credential, probe: Option<&ImageRef>) -> CheckResult {
        let started = Instant::now();
        let handshake = Handshake {
            client: &self.client,
            http: &self.http,
            timeout: self.timeout,
            credential,
        };
        let (outcome, auth) = handshake.run(probe).await;
        let result = CheckResult {
            registry: credential.registry.clone(),
            outcome,
            auth,
            probe: probe.cloned(),
            elapsed: started.elapsed(),
        };
        tracing::debug!(registry = %result.registry, outcome = result.outcome.label(), "credential checked");
        result
    }

    /// Checks every credential of a set concurrently, each with the probe configured for its registry
    /// key (if any). Results come back in the set's (registry) order.
    pub async fn check_all(
        &self,
        credentials: &CredentialSet,
        probes: &BTreeMap<RegistryHost, ImageRef>,
    ) -> Vec<CheckResult> {
        let checks = credentials.iter().map(|c| self.check(c, probes.get(&c.registry)));
        futures::future::join_all(checks).await
    }
}

/// Follows redirects like reqwest's default (at most 10) but never to plain http on a host that is not
/// allowed it: the redirected request would carry the credential. The 3xx itself is then the answer,
/// and the check fails with its status.
fn redirect_policy(http: HttpPolicy) -> reqwest::redirect::Policy {
    reqwest::redirect::Policy::custom(move |attempt| {
        if attempt.previous().len() >= 10 {
            attempt.error("more than 10 redirects")
        } else if http.permits(attempt.url()) {
            attempt.follow()
        } else {
            attempt.stop()
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bad_extra_root_certificate_is_reported_by_position() {
        let options = VerifierOptions {
            extra_root_certs: vec![
                b"-----BEGIN CERTIFICATE-----\nnot base64!\n-----END CERTIFICATE-----\n".to_vec(),
            ],
            ..VerifierOptions::default()
        };
        assert!(matches!(
            Verifier::new(options),
            Err(Error::RootCertificate { index: 0, .. })
        ));
    }
}
