//! Prometheus metrics (served on `/metrics` by the admin server). Labels carry provider names and error
//! kinds only — never registry credentials.

use std::sync::atomic::AtomicU64;

use chrono::{DateTime, Utc};
use prometheus_client::{
    encoding::EncodeLabelSet,
    metrics::{counter::Counter, family::Family, gauge::Gauge, info::Info},
    registry::Registry,
};

/// Labels of `regcreds_build_info`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BuildLabels {
    /// The crate version (`regcreds --version`).
    version: &'static str,
    /// CPU architecture the binary was built for.
    arch: &'static str,
}

/// Process-wide metrics: `regcreds_build_info{version,arch} 1` and `regcreds_leader`.
#[derive(Clone, Default)]
pub struct ProcessMetrics {
    leader: Gauge,
}

impl ProcessMetrics {
    /// Registers the metrics under `registry` (prefix `regcreds`). The leader gauge starts at 0.
    pub fn register(registry: &mut Registry) -> Self {
        let metrics = Self::default();
        let sub = registry.sub_registry_with_prefix("regcreds");
        sub.register(
            "build",
            "Version of the running regcreds (always 1)",
            Info::new(BuildLabels {
                version: env!("CARGO_PKG_VERSION"),
                arch: std::env::consts::ARCH,
            }),
        );
        sub.register(
            "leader",
            "1 while this replica writes (it holds the Lease, or leader election is off), 0 while it stands by",
            metrics.leader.clone(),
        );
        metrics
    }

    /// Records whether this replica is the one that writes.
    pub fn set_leader(&self, leader: bool) {
        self.leader.set(i64::from(leader));
    }
}

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
    consecutive_failures: Family<ProviderLabel, Gauge>,
    last_failure: Family<ProviderLabel, Gauge<f64, AtomicU64>>,
    refresh_period: Family<ProviderLabel, Gauge>,
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
        // NB: the staleness signal. A failed mint keeps the last good credential in every namespace, so
        // nothing breaks until it expires; this gauge says it is no longer being renewed.
        sub.register(
            "consecutive_failures",
            "Failed mints since the last successful one (0 when healthy). Above 0 the propagated credential \
             is stale but kept; alert when it stays above 0 for longer than a refresh period, or when \
             token_expiry_timestamp_seconds - time() gets close to 0 while it is above 0",
            metrics.consecutive_failures.clone(),
        );
        sub.register(
            "last_failure_timestamp_seconds",
            "Unix time of the last failed mint (absent if none failed since start)",
            metrics.last_failure.clone(),
        );
        sub.register(
            "refresh_period_seconds",
            "Longest gap between two scheduled refreshes (the provider's cron schedule)",
            metrics.refresh_period.clone(),
        );
        metrics
    }

    /// Records the longest gap between two scheduled refreshes of `provider`.
    pub fn refresh_period(&self, provider: &str, period: std::time::Duration) {
        let label = ProviderLabel {
            provider: provider.to_string(),
        };
        self.refresh_period
            .get_or_create(&label)
            .set(i64::try_from(period.as_secs()).unwrap_or(i64::MAX));
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
        self.consecutive_failures.get_or_create(&label).set(0);
    }

    /// Records a failed mint.
    pub fn mint_failed(&self, provider: &str, error: &str) {
        let labels = FailureLabels {
            provider: provider.to_string(),
            error: error.to_string(),
        };
        self.failures.get_or_create(&labels).inc();
        let label = ProviderLabel {
            provider: provider.to_string(),
        };
        self.consecutive_failures.get_or_create(&label).inc();
        self.last_failure
            .get_or_create(&label)
            .set(Utc::now().timestamp_millis() as f64 / 1000.0);
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

#[cfg(test)]
mod tests {
    use prometheus_client::encoding::text::encode;

    use super::*;

    fn scrape(registry: &Registry) -> String {
        let mut text = String::new();
        encode(&mut text, registry).expect("encode");
        text
    }

    #[test]
    fn build_info_names_the_version_and_the_leader_gauge_follows_the_lease() {
        let mut registry = Registry::default();
        let metrics = ProcessMetrics::register(&mut registry);
        let text = scrape(&registry);
        let info = format!(
            "regcreds_build_info{{version=\"{}\",arch=\"{}\"}} 1",
            env!("CARGO_PKG_VERSION"),
            std::env::consts::ARCH
        );
        assert!(text.contains(&info), "{text}");
        assert!(text.contains("regcreds_leader 0"), "{text}");
        metrics.set_leader(true);
        assert!(scrape(&registry).contains("regcreds_leader 1"));
    }

    #[test]
    fn consecutive_failures_count_up_until_a_success_resets_them() {
        let mut registry = Registry::default();
        let metrics = ProviderMetrics::register(&mut registry);
        metrics.minted("ecr", None);
        metrics.mint_failed("ecr", "provider_unavailable");
        metrics.mint_failed("ecr", "provider_unavailable");
        let text = scrape(&registry);
        assert!(
            text.contains("regcreds_provider_consecutive_failures{provider=\"ecr\"} 2"),
            "{text}"
        );
        assert!(
            text.contains("regcreds_provider_last_failure_timestamp_seconds{provider=\"ecr\"}"),
            "{text}"
        );
        metrics.minted("ecr", None);
        assert!(
            scrape(&registry).contains("regcreds_provider_consecutive_failures{provider=\"ecr\"} 0"),
            "a success resets the gauge"
        );
    }
}
