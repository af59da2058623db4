//! Proving that credentials authenticate: shared by `regcreds check` and the controller.
//!
//! ```text
//!  REGCREDS_CHECK_* ──CheckArgs::build()──▶ Checker { Verifier (CA, plain-http hosts, timeout), probes }
//!
//!  regcreds check:  provider.mint() ──CredentialSet──▶ Checker::check ──▶ Vec<CheckResult> ──▶ stdout, exit code
//!
//!  regcreds run:    watch<Desired> ──bytes changed (a mint) │ every REGCREDS_CHECK_INTERVAL_SECONDS──▶
//!                   DockerConfig::parse ──▶ Checker::check ──▶ CheckMetrics + one log line per registry
//! ```
//!
//! The controller checks the bytes it propagates, not a second mint: what is verified is exactly what
//! every namespace holds. It checks only what its refresh loops published, so a standby replica (which
//! mints nothing) sends nothing to registries. Registry hosts and outcomes are not secret and become
//! metric labels; reasons name a step and an HTTP status, never a password or token.

use std::{
    collections::{BTreeMap, BTreeSet},
    path::PathBuf,
    sync::{Arc, Mutex, atomic::AtomicU64},
    time::Duration,
};

use chrono::Utc;
use clap::Args;
use prometheus_client::{
    encoding::EncodeLabelSet,
    metrics::{family::Family, gauge::Gauge},
    registry::Registry,
};
use regcreds_core::{CredentialSet, DockerConfig, RegistryHost};
use regcreds_propagator::{Desired, DesiredSecret};
use regcreds_verify::{CheckResult, ImageRef, Verifier, VerifierOptions};
use tokio::{sync::watch, time::Instant};
use tracing::{info, warn};

use crate::config::ConfigProblems;

/// Every outcome label, so that exactly one series per registry is 1 and the others 0.
const OUTCOMES: [&str; 4] = ["ok", "unauthorized", "unreachable", "error"];

/// Docker Hub's many names: a probe written `docker.io/...` applies to the `https://index.docker.io/v1/` key.
const DOCKER_HUB_NAMES: &[&str] = &[
    "docker.io",
    "index.docker.io",
    "registry-1.docker.io",
    "registry.hub.docker.com",
];

/// How credentials are checked (`regcreds check` and `regcreds run`).
#[derive(Args, Debug, Clone)]
#[command(next_help_heading = "Credential checks")]
pub struct CheckArgs {
    /// Probe images, comma-separated `registry/repository:tag`. A registry with a probe must also
    /// allow reading that manifest (HEAD), which proves pull rights and not only a valid login.
    #[arg(long = "check-images", env = "REGCREDS_CHECK_IMAGES", value_delimiter = ',')]
    pub check_images: Vec<String>,
    /// PEM file of extra root CAs to trust when checking (registries with a private CA).
    #[arg(long = "check-ca-file", env = "REGCREDS_CHECK_CA_FILE")]
    pub check_ca_file: Option<PathBuf>,
    /// Registries (`host[:port]`, comma-separated) to check over plain http. The credential travels in
    /// clear text to these, so nothing is allowed by default.
    #[arg(
        long = "check-insecure-hosts",
        env = "REGCREDS_CHECK_INSECURE_HOSTS",
        value_delimiter = ','
    )]
    pub check_insecure_hosts: Vec<String>,
    /// Limit for each HTTP request of a check (a check makes at most five).
    #[arg(
        long = "check-timeout-seconds",
        env = "REGCREDS_CHECK_TIMEOUT_SECONDS",
        default_value_t = 10
    )]
    pub check_timeout_seconds: u64,
}

const IMAGES: &str = "REGCREDS_CHECK_IMAGES (--check-images)";
const CA_FILE: &str = "REGCREDS_CHECK_CA_FILE (--check-ca-file)";
const TIMEOUT: &str = "REGCREDS_CHECK_TIMEOUT_SECONDS (--check-timeout-seconds)";

impl CheckArgs {
    /// The checker, or `None` with every problem recorded.
    pub fn build(&self, problems: &mut ConfigProblems) -> Option<Checker> {
        let probes = parse_probes(&self.check_images, problems);
        if self.check_timeout_seconds == 0 {
            problems.add(TIMEOUT, "must be at least 1");
        }
        let extra_root_certs = match &self.check_ca_file {
            Some(path) => match regcreds_core::read_bounded(path) {
                Ok(pem) => vec![pem],
                Err(error) => {
                    problems.add(CA_FILE, error);
                    return None;
                }
            },
            None => Vec::new(),
        };
        let options = VerifierOptions {
            timeout: Duration::from_secs(self.check_timeout_seconds.max(1)),
            extra_root_certs,
            insecure_http_hosts: non_blank(&self.check_insecure_hosts),
        };
        let verifier = Verifier::new(options)
            .inspect_err(|error| problems.add(CA_FILE, error))
            .ok()?;
        Some(Checker {
            verifier,
            probes: probes?,
        })
    }
}

fn non_blank(values: &[String]) -> Vec<String> {
    values
        .iter()
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty())
        .collect()
}

/// Parses every `registry/repository:tag`; at most one per registry (the verifier takes one probe each).
fn parse_probes(raw: &[String], problems: &mut ConfigProblems) -> Option<Vec<Probe>> {
    let mut probes: Vec<Probe> = Vec::new();
    let mut valid = true;
    for image in non_blank(raw) {
        match Probe::parse(&image) {
            Ok(probe) if probes.iter().any(|p| p.same_registry(&probe.registry)) => {
                problems.add(IMAGES, format!("{image:?}: only one probe image per registry"));
                valid = false;
            }
            Ok(probe) => probes.push(probe),
            Err(problem) => {
                problems.add(IMAGES, problem);
                valid = false;
            }
        }
    }
    valid.then_some(probes)
}

/// One probe image: the registry it lives in and the repository and tag inside it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Probe {
    registry: RegistryHost,
    image: ImageRef,
}

impl Probe {
    /// `127.0.0.1:5000/demo/hello:v1`, `ghcr.io/org/app:1.0`, `docker.io/library/alpine:3`.
    fn parse(raw: &str) -> Result<Self, String> {
        if raw.contains("://") {
            return Err(format!("{raw:?}: write registry/repository:tag without a scheme"));
        }
        let Some((host, image)) = raw.split_once('/').filter(|(host, _)| looks_like_host(host)) else {
            return Err(format!(
                "{raw:?} must start with its registry host, e.g. registry.example.com:5000/team/app:v1"
            ));
        };
        let registry = RegistryHost::parse(host).map_err(|e| format!("{raw:?}: {e}"))?;
        let image = ImageRef::parse(image).map_err(|e| e.to_string())?;
        Ok(Self { registry, image })
    }

    fn same_registry(&self, key: &RegistryHost) -> bool {
        canonical_authority(&self.registry) == canonical_authority(key)
    }
}

/// docker's rule for "the first path component is a registry": it has a dot or a port, or is localhost.
fn looks_like_host(first: &str) -> bool {
    first.contains('.') || first.contains(':') || first == "localhost"
}

/// `host[:port]`, lower-cased, with every Docker Hub alias folded into one name, so that a probe
/// matches the credential's key however either is written (`https://…`, `/v1/` suffixes, ...).
fn canonical_authority(key: &RegistryHost) -> String {
    let authority = key.authority().to_ascii_lowercase();
    if DOCKER_HUB_NAMES.contains(&authority.as_str()) {
        "docker.io".to_string()
    } else {
        authority
    }
}

/// Checks credential sets with one HTTP client and the configured probes. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Checker {
    verifier: Verifier,
    probes: Vec<Probe>,
}

impl Checker {
    /// Checks every credential of `credentials` concurrently, with its registry's probe if any.
    pub async fn check(&self, credentials: &CredentialSet) -> Vec<CheckResult> {
        let probes = self.probes_for(credentials);
        self.verifier.check_all(credentials, &probes).await
    }

    /// Probe images whose registry none of `checked` has a credential for (most likely a typo).
    pub fn unmatched_probes<'a>(&self, checked: impl IntoIterator<Item = &'a RegistryHost>) -> Vec<String> {
        let checked: Vec<&RegistryHost> = checked.into_iter().collect();
        self.probes
            .iter()
            .filter(|probe| !checked.iter().any(|key| probe.same_registry(key)))
            .map(|probe| format!("{}/{}", probe.registry, probe.image))
            .collect()
    }

    /// The verifier wants probes keyed by the credential's exact `auths` key.
    fn probes_for(&self, credentials: &CredentialSet) -> BTreeMap<RegistryHost, ImageRef> {
        credentials
            .iter()
            .filter_map(|credential| {
                let probe = self
                    .probes
                    .iter()
                    .find(|p| p.same_registry(&credential.registry))?;
                Some((credential.registry.clone(), probe.image.clone()))
            })
            .collect()
    }
}

// === in the controller ===

/// `regcreds run`'s checks: [`CheckArgs`] plus how often to repeat them.
#[derive(Args, Debug, Clone)]
pub struct PeriodicCheckArgs {
    /// Seconds between re-checks of every propagated credential. Credentials are also checked right
    /// after each mint that changed them. 0 turns the controller's checks off.
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
    /// The controller's checks; `None` when turned off or when a setting is invalid (then recorded).
    pub fn build(&self, problems: &mut ConfigProblems) -> Option<PeriodicChecks> {
        let checker = self.check.build(problems)?;
        (self.check_interval_seconds > 0).then(|| PeriodicChecks {
            checker,
            interval: Duration::from_secs(self.check_interval_seconds),
            metrics: CheckMetrics::default(),
        })
    }
}

/// Checks run by the controller: after every changed mint and every `interval`.
pub struct PeriodicChecks {
    checker: Checker,
    interval: Duration,
    metrics: CheckMetrics,
}

impl PeriodicChecks {
    /// Registers the check metrics on the admin endpoint's registry.
    pub fn register(mut self, registry: &mut Registry) -> Self {
        self.metrics = CheckMetrics::register(registry);
        self
    }

    /// Starts checking what is published on `desired` (subscribe before the first mint).
    pub fn spawn(self, desired: watch::Receiver<Desired>) {
        tokio::spawn(self.check_loop(desired));
    }

    async fn check_loop(self, mut desired: watch::Receiver<Desired>) {
        // Secret name → the bytes last checked: a mint that changed nothing is not checked again.
        let mut checked: BTreeMap<String, Arc<[u8]>> = BTreeMap::new();
        let mut every = tokio::time::interval_at(Instant::now() + self.interval, self.interval);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut recheck_all = false;
        loop {
            let due: Vec<DesiredSecret> = desired
                .borrow_and_update()
                .secrets()
                .filter(|s| recheck_all || checked.get(&s.name) != Some(&s.data))
                .cloned()
                .collect();
            for secret in due {
                self.check_secret(&secret).await;
                checked.insert(secret.name, secret.data);
            }
            recheck_all = tokio::select! {
                changed = desired.changed() => match changed {
                    Ok(()) => false,
                    Err(_) => return, // the refresh loops are gone: shutting down
                },
                _ = every.tick() => true,
            };
        }
    }

    async fn check_secret(&self, secret: &DesiredSecret) {
        // These are bytes regcreds rendered itself; a parse error would be a bug, not a registry problem.
        let credentials = match DockerConfig::parse(&secret.data) {
            Ok(config) => config.into_credentials(),
            Err(error) => {
                warn!(provider = %secret.provider, secret = %secret.name, %error, "cannot check: unreadable dockerconfigjson");
                return;
            }
        };
        let results = self.checker.check(&credentials).await;
        for result in &results {
            log_result(&secret.provider, result);
        }
        self.metrics.record(&secret.provider, &results);
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
            elapsed_ms,
            "registry check failed: pulls with this credential will fail"
        ),
    }
}

/// Labels of the outcome gauge.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    provider: String,
    registry: String,
    outcome: String,
}

/// Labels of per-registry gauges.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RegistryLabels {
    provider: String,
    registry: String,
}

/// `regcreds_registry_check{provider,registry,outcome}` (1 for the current outcome, 0 for the others),
/// `regcreds_registry_check_timestamp_seconds` and `regcreds_registry_check_duration_seconds`.
#[derive(Clone, Default)]
pub struct CheckMetrics {
    outcome: Family<OutcomeLabels, Gauge>,
    checked_at: Family<RegistryLabels, Gauge<f64, AtomicU64>>,
    duration: Family<RegistryLabels, Gauge<f64, AtomicU64>>,
    /// Registries last reported per provider, to drop the series of registries that left a provider.
    reported: Arc<Mutex<BTreeMap<String, BTreeSet<String>>>>,
}

impl CheckMetrics {
    /// Registers the metrics under `registry` (prefix `regcreds_registry`).
    pub fn register(registry: &mut Registry) -> Self {
        let metrics = Self::default();
        let sub = registry.sub_registry_with_prefix("regcreds_registry");
        sub.register(
            "check",
            "Outcome of the last credential check per registry: 1 for the current outcome (ok, unauthorized, unreachable, error), 0 for the others",
            metrics.outcome.clone(),
        );
        sub.register(
            "check_timestamp_seconds",
            "Unix time of the last credential check per registry",
            metrics.checked_at.clone(),
        );
        sub.register(
            "check_duration_seconds",
            "Wall time of the last credential check per registry",
            metrics.duration.clone(),
        );
        metrics
    }

    /// Records one provider's results; registries it no longer has lose their series.
    pub fn record(&self, provider: &str, results: &[CheckResult]) {
        let now = Utc::now().timestamp_millis() as f64 / 1000.0;
        for result in results {
            let registry = result.registry.as_str();
            for outcome in OUTCOMES {
                let value = i64::from(outcome == result.outcome.label());
                self.outcome
                    .get_or_create(&outcome_labels(provider, registry, outcome))
                    .set(value);
            }
            let labels = registry_labels(provider, registry);
            self.checked_at.get_or_create(&labels).set(now);
            self.duration
                .get_or_create(&labels)
                .set(result.elapsed.as_secs_f64());
        }
        let current: BTreeSet<String> = results.iter().map(|r| r.registry.as_str().to_string()).collect();
        let previous = self
            .reported
            .lock()
            .expect("check metrics lock")
            .insert(provider.to_string(), current.clone())
            .unwrap_or_default();
        for gone in previous.difference(&current) {
            self.forget(provider, gone);
        }
    }

    fn forget(&self, provider: &str, registry: &str) {
        for outcome in OUTCOMES {
            self.outcome.remove(&outcome_labels(provider, registry, outcome));
        }
        self.checked_at.remove(&registry_labels(provider, registry));
        self.duration.remove(&registry_labels(provider, registry));
    }
}

fn outcome_labels(provider: &str, registry: &str, outcome: &str) -> OutcomeLabels {
    OutcomeLabels {
        provider: provider.to_string(),
        registry: registry.to_string(),
        outcome: outcome.to_string(),
    }
}

fn registry_labels(provider: &str, registry: &str) -> RegistryLabels {
    RegistryLabels {
        provider: provider.to_string(),
        registry: registry.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use prometheus_client::encoding::text::encode;
    use regcreds_verify::Outcome;

    use super::*;

    fn args(images: &[&str]) -> CheckArgs {
        CheckArgs {
            check_images: images.iter().map(|s| s.to_string()).collect(),
            check_ca_file: None,
            check_insecure_hosts: Vec::new(),
            check_timeout_seconds: 5,
        }
    }

    fn key(raw: &str) -> RegistryHost {
        RegistryHost::parse(raw).expect("valid key")
    }

    fn result(registry: &str, outcome: Outcome) -> CheckResult {
        CheckResult {
            registry: key(registry),
            outcome,
            auth: None,
            probe: None,
            elapsed: Duration::from_millis(250),
        }
    }

    #[test]
    fn probes_need_a_registry_host_and_a_valid_image() {
        let mut problems = ConfigProblems::default();
        assert!(args(&["demo/hello:v1"]).build(&mut problems).is_none());
        assert!(
            problems.to_string().contains("must start with its registry host"),
            "{problems}"
        );
        let mut problems = ConfigProblems::default();
        assert!(args(&["https://ghcr.io/a/b:1"]).build(&mut problems).is_none());
        assert!(problems.to_string().contains("without a scheme"), "{problems}");
        let mut problems = ConfigProblems::default();
        assert!(args(&["ghcr.io/A:1"]).build(&mut problems).is_none());
        assert!(
            problems.to_string().contains("REGCREDS_CHECK_IMAGES"),
            "{problems}"
        );
    }

    #[test]
    fn one_probe_per_registry_however_it_is_spelled() {
        let mut problems = ConfigProblems::default();
        assert!(
            args(&["docker.io/library/alpine:3", "index.docker.io/org/app:1"])
                .build(&mut problems)
                .is_none()
        );
        assert!(
            problems.to_string().contains("only one probe image per registry"),
            "{problems}"
        );
    }

    #[test]
    fn a_probe_applies_to_its_registry_whatever_the_key_form() {
        let mut problems = ConfigProblems::default();
        let checker = args(&["127.0.0.1:5443/demo/hello:v1", "docker.io/library/alpine:3", " "])
            .build(&mut problems)
            .expect("valid");
        let set: CredentialSet = [
            regcreds_core::Credential::new(key("https://127.0.0.1:5443"), "AWS", "pw"),
            regcreds_core::Credential::new(key("https://index.docker.io/v1/"), "me", "pw"),
            regcreds_core::Credential::new(key("ghcr.io"), "me", "pw"),
        ]
        .into_iter()
        .collect();
        let probes = checker.probes_for(&set);
        assert_eq!(
            probes[&key("https://127.0.0.1:5443")].to_string(),
            "demo/hello:v1"
        );
        assert_eq!(
            probes[&key("https://index.docker.io/v1/")].to_string(),
            "library/alpine:3"
        );
        assert!(!probes.contains_key(&key("ghcr.io")));
        assert!(
            checker
                .unmatched_probes(set.iter().map(|c| &c.registry))
                .is_empty()
        );
        assert_eq!(
            checker.unmatched_probes([&key("ghcr.io")]),
            vec!["127.0.0.1:5443/demo/hello:v1", "docker.io/library/alpine:3"]
        );
    }

    #[test]
    fn unreadable_ca_file_and_zero_timeout_are_config_problems() {
        let mut bad = args(&[]);
        bad.check_ca_file = Some(PathBuf::from("/nonexistent/ca.pem"));
        bad.check_timeout_seconds = 0;
        let mut problems = ConfigProblems::default();
        assert!(bad.build(&mut problems).is_none());
        let text = problems.to_string();
        assert!(
            text.contains("REGCREDS_CHECK_CA_FILE") && text.contains("/nonexistent/ca.pem"),
            "{text}"
        );
        assert!(text.contains("REGCREDS_CHECK_TIMEOUT_SECONDS"), "{text}");
    }

    #[test]
    fn interval_zero_turns_the_controller_checks_off() {
        let periodic = |seconds| PeriodicCheckArgs {
            check_interval_seconds: seconds,
            check: args(&[]),
        };
        let mut problems = ConfigProblems::default();
        assert!(periodic(0).build(&mut problems).is_none());
        assert!(periodic(60).build(&mut problems).is_some());
        assert!(problems.is_empty());
    }

    fn exposition(registry: &Registry) -> String {
        let mut text = String::new();
        encode(&mut text, registry).expect("encode");
        text
    }

    #[test]
    fn the_current_outcome_is_1_the_others_0_and_departed_registries_vanish() {
        let mut registry = Registry::default();
        let metrics = CheckMetrics::register(&mut registry);
        let refused = Outcome::Unauthorized {
            reason: "GET /v2/ with Basic auth answered 401".into(),
            code: None,
        };
        metrics.record(
            "ecr",
            &[result("a.example", Outcome::Ok), result("b.example", refused)],
        );
        let text = exposition(&registry);
        for line in [
            r#"regcreds_registry_check{provider="ecr",registry="a.example",outcome="ok"} 1"#,
            r#"regcreds_registry_check{provider="ecr",registry="a.example",outcome="unauthorized"} 0"#,
            r#"regcreds_registry_check{provider="ecr",registry="b.example",outcome="unauthorized"} 1"#,
            r#"regcreds_registry_check{provider="ecr",registry="b.example",outcome="ok"} 0"#,
            r#"regcreds_registry_check_duration_seconds{provider="ecr",registry="a.example"} 0.25"#,
        ] {
            assert!(text.contains(line), "missing {line}:\n{text}");
        }
        assert!(
            text.contains("regcreds_registry_check_timestamp_seconds{"),
            "{text}"
        );

        metrics.record("ecr", &[result("a.example", Outcome::Ok)]);
        let text = exposition(&registry);
        assert!(!text.contains("b.example"), "{text}");
        assert!(text.contains(r#"registry="a.example",outcome="ok"} 1"#), "{text}");
    }
}
