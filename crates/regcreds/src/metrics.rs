//! Prometheus metrics (served on `/metrics` by the admin server). Labels carry provider names and error
//! kinds only — never registry credentials.

use std::sync::atomic::AtomicU64;

use chrono::{DateTime, Utc};
use prometheus_client::{
    encoding::EncodeLabelSet,
    metrics::{counter::Counter, family::Family, gauge::Gauge},
    registry::Registry,
};

/// Label set of per-provider metrics.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ProviderLabel {
    /// Provider name.
    pub provider: String,
}

/// Label set of failure counters.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct FailureLabels {
    /// Provider name.
    pub provider: String,
    /// Stable error kind.
    pub error: String,
}

/// Per-provider mint metrics.
#[derive(Clone, Default)]
pub struct ProviderMetrics {
    mints: Family<ProviderLabel, Counter>,
    failures: Family<FailureLabels, Counter>,
    last_success: Family<ProviderLabel, Gauge<f64, AtomicU64>>,
    expiry: Family<ProviderLabel, Gauge<f64, AtomicU64>>,
}

impl ProviderMetrics {
    /// Registers the metrics under `registry` (prefix `regcreds_provider`).
    pub fn register(registry: &mut Registry) -> Self {
        let metrics = Self::default();
        let sub = registry.sub_registry_with_prefix("regcreds_provider");
        sub.register("mints", "Successful mints", metrics.mints.clone());
        sub.register(
            "mint_failures",
            "Failed mints by error kind",
            metrics.failures.clone(),
        );
        sub.register(
            "last_success_timestamp_seconds",
            "Unix time of the last successful mint",
            metrics.last_success.clone(),
        );
        sub.register(
            "token_expiry_timestamp_seconds",
            "Unix time at which the current credential expires (absent for static credentials)",
            metrics.expiry.clone(),
        );
        metrics
    }

    /// Records a successful mint.
    pub fn minted(&self, provider: &str, expires_at: Option<DateTime<Utc>>) {
        let label = ProviderLabel {
            provider: provider.to_string(),
        };
        self.mints.get_or_create(&label).inc();
        self.last_success
            .get_or_create(&label)
            .set(Utc::now().timestamp_millis() as f64 / 1000.0);
        if let Some(expiry) = expires_at {
            self.expiry
                .get_or_create(&label)
                .set(expiry.timestamp_millis() as f64 / 1000.0);
        }
    }

    /// Records a failed mint.
    pub fn mint_failed(&self, provider: &str, error: &str) {
        let labels = FailureLabels {
            provider: provider.to_string(),
            error: error.to_string(),
        };
        self.failures.get_or_create(&labels).inc();
    }

    /// Whether `provider` has minted successfully at least once since start (readiness).
    pub fn has_minted(&self, provider: &str) -> bool {
        self.mints
            .get(&ProviderLabel {
                provider: provider.to_string(),
            })
            .is_some_and(|c| c.get() > 0)
    }
}
