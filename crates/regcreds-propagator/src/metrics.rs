//! Propagation metrics. Labels are actions and error kinds, never names of Secrets' content.

use std::{
    collections::HashSet,
    sync::{Arc, Mutex},
};

use prometheus_client::{
    encoding::EncodeLabelSet,
    metrics::{counter::Counter, family::Family, gauge::Gauge},
    registry::Registry,
};

/// `action` label: created, updated, deleted.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ActionLabel {
    /// What was done.
    pub action: &'static str,
}

/// `error` label: a stable error kind.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ErrorLabel {
    /// Error kind ([`crate::Error::metric_label`]).
    pub error: &'static str,
}

/// Counters and gauges of the propagator; cheap to clone (shared).
#[derive(Clone, Default)]
pub struct PropagatorMetrics {
    secrets_written: Family<ActionLabel, Counter>,
    accounts_written: Counter,
    reconcile_errors: Family<ErrorLabel, Counter>,
    foreign_secrets: Counter,
    namespaces_in_scope: Gauge,
    in_scope: Arc<Mutex<HashSet<String>>>,
    namespaces_not_converged: Gauge,
    failing: Arc<Mutex<HashSet<String>>>,
}

impl PropagatorMetrics {
    /// Registers the metrics (prefix `regcreds`).
    pub fn register(registry: &mut Registry) -> Self {
        let metrics = Self::default();
        let sub = registry.sub_registry_with_prefix("regcreds");
        sub.register(
            "secrets_written",
            "Managed Secret writes by action",
            metrics.secrets_written.clone(),
        );
        sub.register(
            "serviceaccounts_written",
            "ServiceAccount imagePullSecrets updates",
            metrics.accounts_written.clone(),
        );
        sub.register(
            "reconcile_errors",
            "Failed namespace reconciles by error kind",
            metrics.reconcile_errors.clone(),
        );
        sub.register(
            "foreign_secrets_skipped",
            "Same-named Secrets not created by regcreds that were left untouched",
            metrics.foreign_secrets.clone(),
        );
        sub.register(
            "namespaces_in_scope",
            "Namespaces regcreds writes to",
            metrics.namespaces_in_scope.clone(),
        );
        sub.register(
            "namespaces_not_converged",
            "Namespaces whose latest reconcile failed (retried with backoff; reconcile_errors_total says why)",
            metrics.namespaces_not_converged.clone(),
        );
        for error in crate::Error::METRIC_LABELS {
            let _ = metrics.reconcile_errors.get_or_create(&ErrorLabel { error });
        }
        metrics
    }

    pub(crate) fn secret_written(&self, action: &'static str) {
        self.secrets_written.get_or_create(&ActionLabel { action }).inc();
    }

    pub(crate) fn account_written(&self) {
        self.accounts_written.inc();
    }

    pub(crate) fn reconcile_failed(&self, error: &'static str) {
        self.reconcile_errors.get_or_create(&ErrorLabel { error }).inc();
    }

    pub(crate) fn foreign_secret(&self) {
        self.foreign_secrets.inc();
    }

    /// Records whether the latest reconcile of `namespace` succeeded (or the namespace is going away).
    pub(crate) fn converged(&self, namespace: &str, converged: bool) {
        let Ok(mut set) = self.failing.lock() else { return };
        let changed = if converged {
            set.remove(namespace)
        } else {
            set.insert(namespace.to_string())
        };
        if changed {
            self.namespaces_not_converged.set(set.len() as i64);
        }
    }

    /// Records whether `namespace` is in scope after its latest reconcile.
    pub(crate) fn scope(&self, namespace: &str, in_scope: bool) {
        let Ok(mut set) = self.in_scope.lock() else { return };
        let changed = if in_scope {
            set.insert(namespace.to_string())
        } else {
            set.remove(namespace)
        };
        if changed {
            self.namespaces_in_scope.set(set.len() as i64);
        }
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
    fn a_namespace_counts_as_not_converged_from_a_failed_reconcile_until_a_good_one() {
        let mut registry = Registry::default();
        let metrics = PropagatorMetrics::register(&mut registry);
        let text = scrape(&registry);
        assert!(text.contains("regcreds_namespaces_not_converged 0"), "{text}");
        assert!(
            text.contains("regcreds_reconcile_errors_total{error=\"forbidden\"} 0"),
            "error counters start at 0: {text}"
        );
        metrics.converged("a", false);
        metrics.converged("a", false);
        metrics.converged("b", false);
        metrics.converged("c", true);
        assert!(scrape(&registry).contains("regcreds_namespaces_not_converged 2"));
        metrics.converged("a", true);
        assert!(scrape(&registry).contains("regcreds_namespaces_not_converged 1"));
    }
}
