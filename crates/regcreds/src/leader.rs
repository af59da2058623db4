//! Leader election with a Lease: every replica runs, only the holder mints and writes. A standby takes
//! over once the holder stops renewing (lease duration), and a leader that loses the lease exits so that
//! it restarts cleanly as a standby instead of racing the new leader.

use kube::Client;
use kube_lease_manager::{LeaseManager, LeaseManagerBuilder};
use tokio::{sync::watch, task::JoinHandle};
use tracing::info;

/// Lease settings.
#[derive(Debug, Clone)]
pub struct LeaseSettings {
    /// Namespace of the Lease (regcreds' own).
    pub namespace: String,
    /// Lease name.
    pub name: String,
    /// This replica's identity (pod name).
    pub identity: String,
    /// Seconds a leader may go without renewing before a standby takes over.
    pub duration_seconds: u64,
}

/// The lease while held: `lost` resolves when leadership ends.
pub struct Leadership {
    state: watch::Receiver<bool>,
    _task: JoinHandle<kube_lease_manager::Result<LeaseManager>>,
}

impl Leadership {
    /// Resolves when this replica is no longer the leader.
    pub async fn lost(mut self) {
        while *self.state.borrow_and_update() {
            if self.state.changed().await.is_err() {
                return;
            }
        }
    }
}

/// The Lease's field manager: one per replica. kube-lease-manager takes a free Lease with a server-side
/// apply of `holderIdentity`; two replicas applying under the same manager at the same moment both
/// succeed (no conflict within one manager) and both believe they lead until the next renewal — seen
/// as two replicas healing pods at once after a two-replica install. With distinct managers the second
/// apply gets 409 and that replica stays a standby.
fn field_manager(identity: &str) -> String {
    // NB: the apiserver refuses field managers longer than 128 characters.
    format!("regcreds.dev/leader-election/{identity}")
        .chars()
        .take(128)
        .collect()
}

/// Waits until this replica holds the lease.
pub async fn acquire(client: Client, settings: &LeaseSettings) -> anyhow::Result<Leadership> {
    let manager = LeaseManagerBuilder::new(client, &settings.name)
        .with_namespace(&settings.namespace)
        .with_identity(&settings.identity)
        .with_duration(settings.duration_seconds)
        .with_grace((settings.duration_seconds / 3).max(1))
        .with_field_manager(field_manager(&settings.identity))
        .build()
        .await?;
    let (mut state, task) = manager.watch().await;
    if !*state.borrow_and_update() {
        info!(lease = %settings.name, namespace = %settings.namespace, identity = %settings.identity, "standing by: another replica holds the lease");
    }
    while !*state.borrow_and_update() {
        state.changed().await?;
    }
    info!(lease = %settings.name, identity = %settings.identity, "acquired the lease; this replica writes");
    Ok(Leadership { state, _task: task })
}

#[cfg(test)]
mod tests {
    use super::field_manager;

    #[test]
    fn each_replica_applies_the_lease_under_its_own_field_manager() {
        assert_ne!(field_manager("regcreds-7d9-a"), field_manager("regcreds-7d9-b"));
        assert!(field_manager(&"x".repeat(300)).chars().count() <= 128);
    }
}
