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

#[cfg(test)]
mod tests {
    use std::{
        io::{Read, Write},
        net::TcpListener,
        sync::atomic::{AtomicUsize, Ordering},
        thread,
    };

    use super::*;
    use crate::{Verifier, VerifierOptions};

    /// A plain-http registry that lets anybody in at `/v2/`, one request per connection; returns
    /// `host:port` and the number of requests so far.
    fn open_registry() -> (String, Arc<AtomicUsize>) {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let host = listener.local_addr().expect("addr").to_string();
        let requests = Arc::new(AtomicUsize::new(0));
        let counted = requests.clone();
        thread::spawn(move || {
            for mut stream in listener.incoming().flatten() {
                let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
                let mut head = Vec::new();
                let mut byte = [0u8; 1];
                while !head.ends_with(b"\r\n\r\n") && matches!(stream.read(&mut byte), Ok(1)) {
                    head.push(byte[0]);
                }
                counted.fetch_add(1, Ordering::SeqCst);
                let _ =
                    stream.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
            }
        });
        (host, requests)
    }

    fn checks(host: &str, interval: Duration) -> PeriodicChecks {
        let options = VerifierOptions {
            insecure_http_hosts: vec![host.to_string()],
            ..VerifierOptions::default()
        };
        PeriodicChecks {
            checker: Checker::new(Verifier::new(options).expect("verifier"), Vec::new()),
            interval,
            metrics: CheckMetrics::default(),
        }
    }

    fn published(host: &str, password: &str) -> Vec<PublishedConfig> {
        let json = format!(r#"{{"auths":{{"{host}":{{"username":"me","password":"{password}"}}}}}}"#);
        vec![PublishedConfig {
            name: "regcreds-static".into(),
            provider: "static".into(),
            data: Arc::from(json.as_bytes()),
        }]
    }

    async fn wait_for(requests: &AtomicUsize, at_least: usize) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while requests.load(Ordering::SeqCst) < at_least {
            assert!(Instant::now() < deadline, "only {requests:?} requests");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    #[tokio::test]
    async fn changed_bytes_are_checked_once_and_the_loop_ends_with_its_sender() {
        let (host, requests) = open_registry();
        let (sender, receiver) = watch::channel(published(&host, "one"));
        let task = tokio::spawn(checks(&host, Duration::from_secs(3600)).check_loop(receiver, Vec::clone));
        wait_for(&requests, 1).await;
        let per_check = requests.load(Ordering::SeqCst);
        sender.send_replace(published(&host, "one"));
        sender.send_replace(published(&host, "two"));
        wait_for(&requests, 2 * per_check).await;
        drop(sender);
        tokio::time::timeout(Duration::from_secs(10), task)
            .await
            .expect("the loop ends when the refresh loops are gone")
            .expect("no panic");
        assert_eq!(
            requests.load(Ordering::SeqCst),
            2 * per_check,
            "the same bytes are not checked twice"
        );
    }

    #[tokio::test]
    async fn every_interval_everything_is_checked_again() {
        let (host, requests) = open_registry();
        let (_sender, receiver) = watch::channel(published(&host, "one"));
        tokio::spawn(checks(&host, Duration::from_millis(100)).check_loop(receiver, Vec::clone));
        wait_for(&requests, 3).await;
    }
}
