//! Pod healing in `regcreds run`: on only with `REGCREDS_HEAL_PODS=true` and the RBAC it needs (said
//! once at start when missing, then it stays off), and started only in the leader, after the Lease; it
//! stops before the Lease is released, so two replicas never heal at once. It heals for this instance's
//! Secrets only (see [`Healer::new`]).

use kube::Client;
use prometheus_client::registry::Registry;
use regcreds_heal::{HealMetrics, HealSettings, Healer};
use regcreds_propagator::{Desired, Settings};
use tokio::{sync::watch, task::JoinHandle};
use tracing::{info, warn};

use crate::rbac::allowed_in;

/// Healing as configured, with its metrics registered.
pub struct Healing {
    settings: Option<HealSettings>,
    metrics: HealMetrics,
}

/// The running healer; stopped when dropped (the propagator has stopped, so must healing).
pub struct RunningHealer(JoinHandle<()>);

impl RunningHealer {
    /// Stops healing and waits until the task has ended, so that no deletion is in flight when the
    /// Lease goes to another replica.
    pub async fn stop(mut self) {
        self.0.abort();
        let _ = (&mut self.0).await;
    }
}

impl Drop for RunningHealer {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl Healing {
    /// Registers the metrics; `settings` is `None` when healing is off.
    pub fn register(settings: Option<HealSettings>, registry: &mut Registry) -> Self {
        let metrics = HealMetrics::register(registry);
        metrics.set_enabled(false);
        Self { settings, metrics }
    }

    /// Turns healing off, saying so once, when RBAC lacks a permission it needs.
    pub async fn check_permissions(&mut self, client: &Client) {
        let Some(settings) = &self.settings else {
            return;
        };
        let mut missing = Vec::new();
        for (verb, resource) in settings.permissions() {
            if !allowed_in(client, verb, "", resource, None).await {
                missing.push(format!("{verb} {resource}"));
            }
        }
        if missing.is_empty() {
            return;
        }
        warn!(
            missing = %missing.join(", "),
            "pod healing is off for lack of permission: RBAC does not allow {} cluster-wide. Grant them \
             (Helm: healPods.enabled=true; kustomize: the component deploy/components/heal-pods) or unset REGCREDS_HEAL_PODS.",
            missing.join(", ")
        );
        self.settings = None;
    }

    /// Starts the healer if it is on, for the namespaces in scope and the Secrets of this instance
    /// (`propagation.instance_id`). Call in the leader only.
    pub fn start(
        self,
        client: &Client,
        propagation: &Settings,
        desired: watch::Receiver<Desired>,
    ) -> Option<RunningHealer> {
        let settings = self.settings?;
        info!(
            rate = settings.cluster_rate.per_second,
            burst = settings.cluster_rate.burst,
            namespace_rate = settings.namespace_rate.per_second,
            namespace_burst = settings.namespace_rate.burst,
            after_credential_change = settings.after_credential_change,
            instance = %propagation.instance_id,
            "healing pods that cannot pull for lack of a managed Secret"
        );
        let healer = Healer::new(
            client.clone(),
            settings,
            propagation.scope.clone(),
            propagation.instance_id.clone(),
            desired,
        )
        .with_metrics(self.metrics)
        .with_instance(propagation.instance.clone());
        Some(RunningHealer(tokio::spawn(healer.run(std::future::pending()))))
    }
}
