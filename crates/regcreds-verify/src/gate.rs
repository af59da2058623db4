//! Verify before propagate: a new credential reaches no namespace until its registry lets it pull.
//!
//! ```text
//!  refresh loop: mint() ──new bytes──▶ Gate::admit ──registries with a probe image──▶ Checker
//!      ok, unreachable, error ──▶ Ok(())        ──▶ publish to every namespace
//!      unauthorized / denied  ──▶ Err(Refusal)  ──▶ keep the last good Secret, Event, metric, backoff
//! ```
//!
//! Only registries with a probe image (`REGCREDS_CHECK_IMAGES`) are gated: a probe is the only proof of
//! pull rights. `/v2/` and the token endpoint accept credentials that may not pull anything (ghcr.io
//! with a GitHub App installation token, a robot without permissions), so a login check would let
//! exactly the interesting failure through.
//!
//! An unreachable registry, or any other failure to reach a verdict, does not hold a credential back:
//! it says nothing against the credential (the nodes may reach the registry through another path, a
//! mirror or another egress), and holding it back would only let the credential in place expire — then
//! pulls fail for certain. The outcome is logged and stays in `regcreds_registry_check` for alerting.

use std::fmt;

use regcreds_core::CredentialSet;
use tracing::{info, warn};

use crate::{CheckMetrics, CheckResult, Checker, Outcome};

/// Proves new credentials against their registries' probe images before they are published.
#[derive(Clone)]
pub struct Gate {
    checker: Checker,
    metrics: CheckMetrics,
}

/// A registry refused a new credential: what to tell the user (never the credential itself).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// The registry key, e.g. `ghcr.io`.
    pub registry: String,
    /// The probe image the credential may not pull, `repository:tag`.
    pub image: String,
    /// The registry's error code (`DENIED`, `UNAUTHORIZED`, ...), when it sent one.
    pub code: Option<String>,
    /// Which step refused, with its HTTP status.
    pub reason: String,
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "registry {} refused the new credential for {}",
            self.registry, self.image
        )?;
        if let Some(code) = &self.code {
            write!(f, " with {code}")?;
        }
        write!(f, ": {}", self.reason)
    }
}

impl Gate {
    /// A gate over `checker`'s probes, reporting into the check metrics.
    pub fn new(checker: Checker, metrics: CheckMetrics) -> Self {
        Self { checker, metrics }
    }

    /// `Ok` when every registry of `credentials` that has a probe image either lets the credential
    /// pull it or could not be asked; the first refusal otherwise.
    pub async fn admit(&self, provider: &str, credentials: &CredentialSet) -> Result<(), Refusal> {
        let results = self.checker.check_probed(credentials).await;
        self.metrics.record_some(provider, &results);
        let mut refusal = None;
        for result in &results {
            match &result.outcome {
                Outcome::Ok => info!(
                    provider,
                    registry = result.registry.as_str(),
                    image = probe_of(result),
                    elapsed_ms = result.elapsed.as_millis() as u64,
                    "registry lets the new credential pull the probe image"
                ),
                Outcome::Unauthorized { reason, code } => {
                    refusal.get_or_insert_with(|| Refusal {
                        registry: result.registry.as_str().to_string(),
                        image: probe_of(result),
                        code: code.clone(),
                        reason: reason.clone(),
                    });
                }
                other => warn!(
                    provider,
                    registry = result.registry.as_str(),
                    outcome = other.label(),
                    reason = other.reason(),
                    "could not verify the new credential; propagating it anyway (an unreachable registry says nothing against it, and holding it back would let the current one expire)"
                ),
            }
        }
        refusal.map_or(Ok(()), Err)
    }
}

fn probe_of(result: &CheckResult) -> String {
    result
        .probe
        .as_ref()
        .map_or_else(String::new, ToString::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refusal_names_registry_image_code_and_step() {
        let refusal = Refusal {
            registry: "ghcr.io".into(),
            image: "org/app:1".into(),
            code: Some("DENIED".into()),
            reason: "HEAD manifest of org/app:1 answered 403 Forbidden".into(),
        };
        assert_eq!(
            refusal.to_string(),
            "registry ghcr.io refused the new credential for org/app:1 with DENIED: HEAD manifest of org/app:1 answered 403 Forbidden"
        );
    }
}
