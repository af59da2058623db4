//! What a failed namespace reconcile leaves behind, whichever driver ran it (`controller.rs` or
//! `polling.rs`): a count by error kind, the namespace counted as not converged, a WARN line, and for a
//! Forbidden the RBAC rule to add. When to retry is the driver's own business.

use tracing::warn;

use crate::{Error, PropagatorMetrics};

/// Counts and logs the failed reconcile of `namespace`.
pub(crate) fn record(namespace: &str, error: &Error, metrics: &PropagatorMetrics) {
    metrics.reconcile_failed(error.metric_label());
    metrics.converged(namespace, false);
    warn!(%namespace, %error, kind = error.metric_label(), "reconcile failed; will retry");
    for hint in error.rbac_hints() {
        warn!(%namespace, "{hint}");
    }
}
