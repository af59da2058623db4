//! The controller's checks: the [`Gate`] before a credential is published, and re-checks after.
//!
//! ```text
//!  REGCREDS_CHECK_* ──PeriodicCheckArgs::build──▶ ControllerChecks { Checker, interval, CheckMetrics }
//!      ├─ gate()  ──▶ Gate (only with probe images): refresh loop, before publishing a new credential
//!      └─ spawn() ──▶ watch<Desired> ──bytes changed: registries without a probe (the gate did the rest)
//!                                    └─every interval: every registry ──▶ CheckMetrics, one log line each
//! ```
//!
//! The loop checks the bytes that were published, not a second mint: what is verified is exactly what
//! every namespace holds. It checks only what the refresh loops published, so a standby replica (which
//! mints nothing) sends nothing to registries.

use std::{collections::BTreeMap, sync::Arc, time::Duration};

use clap::Args;
use prometheus_client::registry::Registry;
use regcreds_core::DockerConfig;
use regcreds_propagator::{Desired, DesiredSecret};
use regcreds_verify::CheckResult;
use tokio::{sync::watch, time::Instant};
use tracing::{info, warn};

use super::{CheckArgs, CheckMetrics, Checker, Gate};
use crate::config::ConfigProblems;

/// `regcreds run`'s checks: [`CheckArgs`] plus how often to repeat them.
#[derive(Args, Debug, Clone)]
pub struct PeriodicCheckArgs {
    /// Seconds between re-checks of every propagated credential. Credentials are also checked right
    /// after each mint that changed them. 0 turns the re-checks off; a credential whose registry has a
    /// probe image is still verified before it is propagated.
    #[arg(
        long = "check-interval-seconds",
        env = "REGCREDS_CHECK_INTERVAL_SECONDS",
        default_value_t = 3600,
        help_heading = "Credential checks"
    )]
    pub check_interval_seconds: u64,
    /// How to check.
    #[command(flatten)]
    pub check: CheckArgs,
}

impl PeriodicCheckArgs {
    /// The controller's checks; `None` when a setting is invalid (then recorded).
    pub fn build(&self, problems: &mut ConfigProblems) -> Option<ControllerChecks> {
        let checker = self.check.build(problems)?;
        Some(ControllerChecks {
            checker,
            interval: (self.check_interval_seconds > 0)
                .then(|| Duration::from_secs(self.check_interval_seconds)),
            metrics: CheckMetrics::default(),
        })
    }
}

/// Everything the controller checks: before publishing (the gate) and after (the loop).
pub struct ControllerChecks {
    checker: Checker,
    /// `None`: no re-checks (`REGCREDS_CHECK_INTERVAL_SECONDS=0`).
    interval: Option<Duration>,
    metrics: CheckMetrics,
}

impl ControllerChecks {
    /// The checker, for validations that depend on the probes (see [`super::require_probes`]).
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

    /// Starts re-checking what is published on `desired` (subscribe before the first mint); nothing
    /// when re-checks are off.
    pub fn spawn(self, desired: watch::Receiver<Desired>) {
        if let Some(interval) = self.interval {
            let checks = PeriodicChecks {
                checker: self.checker,
                interval,
                metrics: self.metrics,
            };
            tokio::spawn(checks.check_loop(desired));
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
    async fn check_loop(self, mut desired: watch::Receiver<Desired>) {
        // Secret name → the bytes last checked: a mint that changed nothing is not checked again.
        let mut checked: BTreeMap<String, Arc<[u8]>> = BTreeMap::new();
        let mut every = tokio::time::interval_at(Instant::now() + self.interval, self.interval);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut pass = Pass::AfterChange;
        loop {
            let due: Vec<DesiredSecret> = desired
                .borrow_and_update()
                .secrets()
                .filter(|s| pass == Pass::Recheck || checked.get(&s.name) != Some(&s.data))
                .cloned()
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

    async fn check_secret(&self, secret: &DesiredSecret, pass: Pass) {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn periodic(seconds: u64, images: &[&str]) -> PeriodicCheckArgs {
        PeriodicCheckArgs {
            check_interval_seconds: seconds,
            check: CheckArgs {
                check_images: images.iter().map(|s| s.to_string()).collect(),
                check_ca_file: None,
                check_insecure_hosts: Vec::new(),
                check_timeout_seconds: 5,
            },
        }
    }

    #[test]
    fn interval_zero_turns_the_rechecks_off_but_not_the_gate() {
        let mut problems = ConfigProblems::default();
        let off = periodic(0, &["ghcr.io/org/app:1"])
            .build(&mut problems)
            .expect("valid");
        assert!(off.interval.is_none());
        assert!(off.gate().is_some(), "a probe image gates publishing");
        let on = periodic(60, &[]).build(&mut problems).expect("valid");
        assert_eq!(on.interval, Some(Duration::from_secs(60)));
        assert!(on.gate().is_none(), "nothing to prove pull rights with");
        assert!(problems.is_empty());
    }
}
