//! The controller's checks: the [`Gate`] before a credential is published, and re-checks after.
//!
//! ```text
//!  ControllerChecks { Checker, interval, CheckMetrics }   (built by PeriodicCheckArgs::build, feature `cli`)
//!      ├─ gate()  ──▶ Gate (only with probe images): refresh loop, before publishing a new credential
//!      └─ spawn() ──▶ watch<T> ──read──▶ [PublishedConfig]
//!                       ├─bytes changed: registries without a probe (the gate did the rest)
//!                       └─every interval: every registry ──▶ CheckMetrics, one log line each
//! ```
//!
//! The loop checks the bytes that were published, not a second mint: what is verified is exactly what
//! every namespace holds. It checks only what the refresh loops published, so a standby replica (which
//! mints nothing) sends nothing to registries. It knows nothing of Kubernetes: the binary says how to
//! read its desired state (`T`) as [`PublishedConfig`]s.

use std::{collections::BTreeMap, sync::Arc, time::Duration};

use prometheus_client::registry::Registry;
use regcreds_core::DockerConfig;
use tokio::{sync::watch, time::Instant};
use tracing::{info, warn};

use crate::{CheckMetrics, CheckResult, Checker, Gate};

/// One published `.dockerconfigjson`: what the re-checks check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublishedConfig {
    /// Where it is published (the Secret name). A change re-checks a name only when its bytes differ
    /// from those last checked under it.
    pub name: String,
    /// The provider that minted it (a metric label).
    pub provider: String,
    /// The exact `.dockerconfigjson` bytes.
    pub data: Arc<[u8]>,
}

/// Everything the controller checks: before publishing (the gate) and after (the loop).
pub struct ControllerChecks {
    checker: Checker,
    /// `None`: no re-checks (`REGCREDS_CHECK_INTERVAL_SECONDS=0`).
    interval: Option<Duration>,
    metrics: CheckMetrics,
}

impl ControllerChecks {
    /// Checks with `checker`, every `interval` too unless it is `None`; metrics are not registered
    /// until [`ControllerChecks::register`].
    pub fn new(checker: Checker, interval: Option<Duration>) -> Self {
        Self {
            checker,
            interval,
            metrics: CheckMetrics::default(),
        }
    }

    /// The checker, for validations that depend on the probes (e.g. `require_probes`, feature `cli`).
    pub fn checker(&self) -> &Checker {
        &self.checker
    }

    /// Registers the check metrics on the admin endpoint's registry.
    pub fn register(mut self, registry: &mut Registry) -> Self {
        self.metrics = CheckMetrics::register(registry);
        self
    }

    /// The gate every new credential passes before it is published, when any probe image is set.
    pub fn gate(&self) -> Option<Gate> {
        self.checker
            .has_probes()
            .then(|| Gate::new(self.checker.clone(), self.metrics.clone()))
    }

    /// Every how long everything published is re-checked; `None` when re-checks are off.
    pub fn interval(&self) -> Option<Duration> {
        self.interval
    }

    /// Starts re-checking what is published on `desired` (subscribe before the first mint), read by
    /// `read`; nothing when re-checks are off. The loop ends when `desired`'s sender is dropped.
    pub fn spawn<T, F>(self, desired: watch::Receiver<T>, read: F)
    where
        T: Send + Sync + 'static,
        F: Fn(&T) -> Vec<PublishedConfig> + Send + 'static,
    {
        if let Some(interval) = self.interval {
            let checks = PeriodicChecks {
                checker: self.checker,
                interval,
                metrics: self.metrics,
            };
            tokio::spawn(checks.check_loop(desired, read));
        }
    }
}

/// Checks run by the controller after every changed mint and every `interval`.
struct PeriodicChecks {
    checker: Checker,
    interval: Duration,
    metrics: CheckMetrics,
}

/// Which registries of a published Secret a pass checks.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Pass {
    /// Right after a change: the gate has just verified the registries with a probe.
    AfterChange,
    /// Every interval: everything, so that a password changed at the registry shows up.
    Recheck,
}

impl PeriodicChecks {
    async fn check_loop<T, F>(self, mut desired: watch::Receiver<T>, read: F)
    where
        F: Fn(&T) -> Vec<PublishedConfig>,
    {
        // Secret name → the bytes last checked: a mint that changed nothing is not checked again.
        let mut checked: BTreeMap<String, Arc<[u8]>> = BTreeMap::new();
        let mut every = tokio::time::interval_at(Instant::now() + self.interval, self.interval);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut pass = Pass::AfterChange;
        loop {
            let due: Vec<PublishedConfig> = read(&desired.borrow_and_update())
                .into_iter()
                .filter(|s| pass == Pass::Recheck || checked.get(&s.name) != Some(&s.data))
                .collect();
            for secret in due {
                self.check_secret(&secret, pass).await;
                checked.insert(secret.name, secret.data);
            }
            pass = tokio::select! {
                changed = desired.changed() => match changed {
                    Ok(()) => Pass::AfterChange,
                    Err(_) => return, // the refresh loops are gone: shutting down
                },
                _ = every.tick() => Pass::Recheck,
            };
        }
    }

    async fn check_secret(&self, secret: &PublishedConfig, pass: Pass) {
        // These are bytes regcreds rendered itself; a parse error would be a bug, not a registry problem.
        let credentials = match DockerConfig::parse(&secret.data) {
            Ok(config) => config.into_credentials(),
            Err(error) => {
                warn!(provider = %secret.provider, secret = %secret.name, %error, "cannot check: unreadable dockerconfigjson");
                return;
            }
        };
        let results = match pass {
            Pass::AfterChange => self.checker.check_unprobed(&credentials).await,
            Pass::Recheck => self.checker.check(&credentials).await,
        };
        for result in &results {
            log_result(&secret.provider, result);
        }
        match pass {
            Pass::AfterChange => self.metrics.record_some(&secret.provider, &results),
            Pass::Recheck => self.metrics.record(&secret.provider, &results),
        }
    }
}

fn log_result(provider: &str, result: &CheckResult) {
    let registry = result.registry.as_str();
    let elapsed_ms = result.elapsed.as_millis() as u64;
    match result.outcome.reason() {
        None => info!(
            provider,
            registry,
            outcome = "ok",
            elapsed_ms,
            "registry accepts the credential"
        ),
        Some(reason) => warn!(
            provider,
            registry,
            outcome = result.outcome.label(),
            reason,
            code = result.outcome.registry_code(),
            elapsed_ms,
            "registry check failed: pulls with this credential will fail"
        ),
    }
}
