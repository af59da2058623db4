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
