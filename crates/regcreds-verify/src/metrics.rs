//! `regcreds_registry_check*`: what the controller's checks found, one series per provider and registry.

use std::{
    collections::{BTreeMap, BTreeSet},
    sync::{Arc, Mutex, atomic::AtomicU64},
};

use chrono::Utc;
use prometheus_client::{
    encoding::EncodeLabelSet,
    metrics::{family::Family, gauge::Gauge},
    registry::Registry,
};

use crate::{CheckResult, Outcome};

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

    /// Records the results of all of one provider's registries; registries it no longer has lose
    /// their series.
    pub fn record(&self, provider: &str, results: &[CheckResult]) {
        self.record_some(provider, results);
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

    /// Records the results of some of one provider's registries, leaving the others' series alone.
    pub fn record_some(&self, provider: &str, results: &[CheckResult]) {
        let now = Utc::now().timestamp_millis() as f64 / 1000.0;
        for result in results {
            let registry = result.registry.as_str();
            for outcome in Outcome::LABELS {
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
        let mut reported = self.reported.lock().expect("check metrics lock");
        let registries = reported.entry(provider.to_string()).or_default();
        registries.extend(results.iter().map(|r| r.registry.as_str().to_string()));
    }

    fn forget(&self, provider: &str, registry: &str) {
        for outcome in Outcome::LABELS {
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
    use std::time::Duration;

    use prometheus_client::encoding::text::encode;
    use regcreds_core::RegistryHost;

    use super::*;

    fn result(registry: &str, outcome: Outcome) -> CheckResult {
        CheckResult {
            registry: RegistryHost::parse(registry).expect("valid key"),
            outcome,
            auth: None,
            probe: None,
            elapsed: Duration::from_millis(250),
        }
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
    #[test]
    fn a_partial_record_keeps_the_other_registries_until_a_full_one() {
        let mut registry = Registry::default();
        let metrics = CheckMetrics::register(&mut registry);
        metrics.record("ghcr", &[result("a.example", Outcome::Ok)]);
        metrics.record_some("ghcr", &[result("b.example", Outcome::Ok)]);
        let text = exposition(&registry);
        assert!(text.contains(r#"registry="a.example",outcome="ok"} 1"#), "{text}");
        assert!(text.contains(r#"registry="b.example",outcome="ok"} 1"#), "{text}");
        metrics.record("ghcr", &[result("a.example", Outcome::Ok)]);
        assert!(!exposition(&registry).contains("b.example"));
    }
}
