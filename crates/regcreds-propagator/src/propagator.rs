//! The propagator's entry point: it builds the reconcile's [`Context`] and hands it to one of two
//! drivers of the same [`reconcile`](crate::reconcile::reconcile).
//!
//! ```text
//!                       ┌─ watch namespaces ──▶ controller::run ─┐
//!  Propagator::run ─────┤                                        ├─▶ reconcile(ns) ──Err──▶ failure::record
//!                       └─ namespace_poll ────▶ polling::run ────┤   (one per namespace)    (count, log, hints)
//!  Propagator::run_once ──────────────────────▶ polling::once ───┘
//! ```
//!
//! Neither driver knows the other: the controller decides when to retry a failed namespace
//! (`error_policy`), polling retries it at its next pass; what a failure leaves behind is `failure.rs`.

use std::{future::Future, sync::Arc};

use kube::Client;
use tokio::sync::watch;

use crate::{
    Desired, PassReport, PropagatorMetrics, Result, Settings, controller, polling, reconcile::Context,
    view::View,
};

/// Propagates [`Desired`] Secrets into every namespace in scope until shut down.
pub struct Propagator {
    client: Client,
    settings: Settings,
    desired: watch::Receiver<Desired>,
    metrics: PropagatorMetrics,
}

impl Propagator {
    /// A propagator fed by `desired`; every change of it reconciles every namespace.
    pub fn new(client: Client, settings: Settings, desired: watch::Receiver<Desired>) -> Self {
        Self {
            client,
            settings,
            desired,
            metrics: PropagatorMetrics::default(),
        }
    }

    /// Counts into `metrics` (registered by the caller) instead of private, unexported counters.
    pub fn with_metrics(mut self, metrics: PropagatorMetrics) -> Self {
        self.metrics = metrics;
        self
    }

    /// One pass over every namespace, reading Secrets and ServiceAccounts directly, then returns what it
    /// did: imagepullsecret-patcher's `CONFIG_RUNONCE`, for a Job or CronJob.
    pub async fn run_once(self) -> Result<PassReport> {
        let Self {
            client,
            settings,
            desired,
            metrics,
        } = self;
        let context = Context::new(client, settings, desired, View::Direct, metrics);
        polling::once(Arc::new(context)).await
    }

    /// Runs until `shutdown` resolves (in-flight reconciles finish first).
    pub async fn run(self, shutdown: impl Future<Output = ()> + Send + Sync + 'static) -> Result<()> {
        let Self {
            client,
            settings,
            desired,
            metrics,
        } = self;
        if let Some(interval) = settings.namespace_poll {
            let context = Context::new(client, settings, desired, View::Direct, metrics);
            return polling::run(Arc::new(context), interval, shutdown).await;
        }
        controller::run(client, settings, desired, metrics, shutdown).await
    }
}
