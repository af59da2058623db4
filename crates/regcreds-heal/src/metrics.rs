//! Healing metrics: what was recreated and why, what waited for the rate limit, what could not be
//! healed, failed deletions, and whether healing runs at all.

use prometheus_client::{
    encoding::EncodeLabelSet,
    metrics::{counter::Counter, family::Family, gauge::Gauge},
    registry::Registry,
};

use regcreds_propagator::ErrorLabel;

/// `reason` label.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabel {
    /// `missing_reference`, `credential_changed`; for pods left stuck: `bare_pod`,
    /// `own_image_pull_secrets`.
    pub reason: &'static str,
}

/// `reason`s of `pods_healed` (`verdict::Heal::label`).
const HEALED_REASONS: [&str; 2] = ["missing_reference", "credential_changed"];

/// `reason`s of `pods_not_healable` (`healer.rs`, `Step::Tell`).
const NOT_HEALABLE_REASONS: [&str; 2] = ["bare_pod", "own_image_pull_secrets"];

/// Healing counters; cheap to clone (shared).
#[derive(Clone, Default)]
pub struct HealMetrics {
    healed: Family<ReasonLabel, Counter>,
    not_healable: Family<ReasonLabel, Counter>,
    rate_limited: Counter,
    errors: Family<ErrorLabel, Counter>,
    enabled: Gauge,
}

impl HealMetrics {
    /// Registers the metrics (prefix `regcreds`).
    pub fn register(registry: &mut Registry) -> Self {
        let metrics = Self::default();
        let sub = registry.sub_registry_with_prefix("regcreds");
        sub.register(
            "pods_healed",
            "Pods deleted so that their controller recreates them able to pull, by reason",
            metrics.healed.clone(),
        );
        sub.register(
            "pods_not_healable",
            "Pods stuck pulling without a managed Secret that regcreds may not recreate, by reason (once per pod)",
            metrics.not_healable.clone(),
        );
        sub.register(
            "pod_heal_rate_limited",
            "Pod deletions postponed by the rate limit",
            metrics.rate_limited.clone(),
        );
        sub.register(
            "pod_heal_errors",
            "Failed pod deletions by error kind",
            metrics.errors.clone(),
        );
        sub.register(
            "pod_healing_enabled",
            "1 when pod healing runs (REGCREDS_HEAL_PODS=true and RBAC allows it)",
            metrics.enabled.clone(),
        );
        // NB: from 0, so that the first event is an increase (increase() sees nothing of a series born
        // at 1), and so that dashboards and alerts find every series before it first counts.
        for error in regcreds_propagator::Error::METRIC_LABELS {
            let _ = metrics.errors.get_or_create(&ErrorLabel { error });
        }
        for reason in HEALED_REASONS {
            let _ = metrics.healed.get_or_create(&ReasonLabel { reason });
        }
        for reason in NOT_HEALABLE_REASONS {
            let _ = metrics.not_healable.get_or_create(&ReasonLabel { reason });
        }
        metrics
    }

    /// Records whether healing runs.
    pub fn set_enabled(&self, enabled: bool) {
        self.enabled.set(i64::from(enabled));
    }

    pub(crate) fn healed(&self, reason: &'static str) {
        self.healed.get_or_create(&ReasonLabel { reason }).inc();
    }

    pub(crate) fn not_healable(&self, reason: &'static str) {
        self.not_healable.get_or_create(&ReasonLabel { reason }).inc();
    }

    pub(crate) fn rate_limited(&self) {
        self.rate_limited.inc();
    }

    pub(crate) fn failed(&self, error: &'static str) {
        self.errors.get_or_create(&ErrorLabel { error }).inc();
    }
}
