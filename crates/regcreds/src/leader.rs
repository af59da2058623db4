//! Leader election with a Lease: every replica runs, only the holder mints and writes.
//!
//! ```text
//!  standby ──build LeaseManager──▶ changed() ─────────────── acquired ──▶ leader (renews; `lost` on loss)
//!     ▲                              │ holder releases the Lease                  │ SIGTERM: stop writing,
//!     └── rebuild (fresh read) ◀─────┘ (seen by a watch on the Lease)            ▼ then release()
//!                                                                         holderIdentity cleared
//! ```
//!
//! A leader that shuts down (`kubectl rollout restart`, a scale-down) releases the Lease once it has
//! stopped writing, and standbys watch the Lease, so one takes over within about a second instead of
//! after the lease duration. A replica of the same revision as the leader that released it lets a newer
//! one go first, so during a rolling restart the new pods — with the new credential — take over rather
//! than an old sibling about to be replaced. A leader that dies without releasing is replaced once the
//! Lease expires; a leader that loses the lease exits, so that it restarts cleanly as a standby.

use std::time::{Duration, SystemTime};

use futures::{Stream, StreamExt, future, stream};
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use kube::{
    Api, Client,
    api::{DeleteParams, Preconditions},
    runtime::{WatchStreamExt, watcher},
};
use kube_lease_manager::{LeaseManager, LeaseManagerBuilder};
use tokio::{
    sync::{oneshot, watch},
    task::JoinHandle,
};
use tracing::{info, warn};

/// Pause after a failed attempt to read or take the Lease (apiserver unreachable, ...).
const RETRY: Duration = Duration::from_secs(2);

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
    /// Whether RBAC allows watching the Lease: without it a standby notices a release only when the
    /// lease duration has passed.
    pub watch_allowed: bool,
}

/// The lease while held.
pub struct Leadership {
    state: watch::Receiver<bool>,
    task: JoinHandle<kube_lease_manager::Result<LeaseManager>>,
    forwarders: Vec<JoinHandle<()>>,
    lease: String,
}

impl Leadership {
    /// Resolves (sends) when this replica is no longer the leader.
    pub fn lost(&mut self) -> oneshot::Receiver<()> {
        let (lost, signal) = oneshot::channel();
        let mut state = self.state.clone();
        self.forwarders.push(tokio::spawn(async move {
            while *state.borrow_and_update() {
                if state.changed().await.is_err() {
                    break;
                }
            }
            let _ = lost.send(());
        }));
        signal
    }

    /// Hands the Lease back so that a standby takes over at once. Call it only once this replica has
    /// stopped writing. Waits at most `timeout`; if the release fails, the Lease simply expires.
    pub async fn release(self, timeout: Duration) {
        let Self {
            state,
            task,
            forwarders,
            lease,
        } = self;
        for forwarder in forwarders {
            forwarder.abort();
            let _ = forwarder.await;
        }
        // NB: kube-lease-manager's watch task releases the Lease and ends once every receiver is gone.
        drop(state);
        match tokio::time::timeout(timeout, task).await {
            Ok(Ok(Ok(_))) => info!(%lease, "released the lease"),
            Ok(Ok(Err(error))) => {
                warn!(%lease, %error, "could not release the lease; a standby takes over when it expires")
            }
            Ok(Err(error)) => {
                warn!(%lease, %error, "lease task failed; a standby takes over when it expires")
            }
            Err(_) => warn!(%lease, "releasing the lease timed out; a standby takes over when it expires"),
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
    report_holder(&client, settings).await;
    let leadership = take(client, settings).await?;
    info!(lease = %settings.name, identity = %settings.identity, "acquired the lease; this replica writes");
    Ok(leadership)
}

/// Waits until `settings.identity` holds the lease, saying nothing on success (`regcreds cleanup` takes
/// the Lease of the instance it cleans up this way, so that its controllers stand by meanwhile).
pub async fn take(client: Client, settings: &LeaseSettings) -> anyhow::Result<Leadership> {
    let mut releases = Box::pin(releases(client.clone(), settings));
    loop {
        // NB: a fresh manager reads the Lease at once; a long-lived one would sleep until the expiry it
        // last saw, missing a release.
        let manager = match build(client.clone(), settings).await {
            Ok(manager) => manager,
            Err(error) => {
                warn!(%error, lease = %settings.name, "cannot read the lease; retrying");
                tokio::time::sleep(RETRY).await;
                continue;
            }
        };
        tokio::select! {
            changed = manager.changed() => match changed {
                Ok(true) => {
                    let (state, task) = manager.watch().await;
                    return Ok(Leadership { state, task, forwarders: Vec::new(), lease: settings.name.clone() });
                }
                Ok(false) => {}
                Err(error) => {
                    warn!(%error, lease = %settings.name, "cannot take the lease; retrying");
                    tokio::time::sleep(RETRY).await;
                }
            },
            Some(previous) = releases.next() => {
                let older_sibling = previous.as_deref().and_then(revision) == revision(&settings.identity);
                info!(lease = %settings.name, previous = previous.as_deref().unwrap_or("?"), "the leader released the lease");
                if older_sibling {
                    // Let a replica of a newer revision (a rolling restart's new pod) take it first: a
                    // third of the lease duration is a generous head start on a loaded node, and still
                    // well before the Lease would have expired.
                    tokio::time::sleep(Duration::from_secs((settings.duration_seconds / 3).max(2))).await;
                }
            }
        }
    }
}

async fn build(client: Client, settings: &LeaseSettings) -> kube_lease_manager::Result<LeaseManager> {
    LeaseManagerBuilder::new(client, &settings.name)
        .with_namespace(&settings.namespace)
        .with_identity(&settings.identity)
        .with_duration(settings.duration_seconds)
        .with_grace((settings.duration_seconds / 3).max(1))
        .with_field_manager(field_manager(&settings.identity))
        .build()
        .await
}

/// Someone else holding a Lease that has not expired.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Holder {
    /// The holder's identity (a pod name).
    pub identity: String,
    /// Time since the holder last renewed the Lease.
    pub renewed_ago: Duration,
}

/// Who else holds the Lease now, if anyone: `None` when it is free, expired, missing or ours.
pub async fn live_holder(client: &Client, settings: &LeaseSettings) -> kube::Result<Option<Holder>> {
    let api: Api<Lease> = Api::namespaced(client.clone(), &settings.namespace);
    let Some(lease) = api.get_opt(&settings.name).await? else {
        return Ok(None);
    };
    Ok(other_live_holder(
        lease.spec.unwrap_or_default(),
        &settings.identity,
        SystemTime::now(),
    ))
}

fn other_live_holder(spec: LeaseSpec, identity: &str, now: SystemTime) -> Option<Holder> {
    let (Some(renewed), Some(seconds)) = (spec.renew_time, spec.lease_duration_seconds) else {
        return None;
    };
    let renewed = SystemTime::from(renewed.0);
    let live = renewed + Duration::from_secs(seconds.max(0) as u64) > now;
    let holder = spec.holder_identity.filter(|h| live && h != identity)?;
    Some(Holder {
        identity: holder,
        renewed_ago: now.duration_since(renewed).unwrap_or_default(),
    })
}

/// Deletes the Lease once it is free (released, or never taken), so that nothing of an uninstalled
/// instance stays behind; a Lease someone took again meanwhile is left alone. Returns whether it went.
pub async fn delete_if_free(client: &Client, settings: &LeaseSettings) -> kube::Result<bool> {
    let api: Api<Lease> = Api::namespaced(client.clone(), &settings.namespace);
    let Some(lease) = api.get_opt(&settings.name).await? else {
        return Ok(false);
    };
    if lease
        .spec
        .as_ref()
        .and_then(|s| s.holder_identity.as_ref())
        .is_some()
    {
        return Ok(false);
    }
    // NB: the precondition makes the delete fail (409) if a controller took the Lease after the read.
    let params = DeleteParams {
        preconditions: Some(Preconditions {
            resource_version: lease.metadata.resource_version.clone(),
            uid: lease.metadata.uid.clone(),
        }),
        ..DeleteParams::default()
    };
    match api.delete(&settings.name, &params).await {
        Ok(_) => Ok(true),
        Err(kube::Error::Api(status)) if status.code == 404 || status.code == 409 => Ok(false),
        Err(error) => Err(error),
    }
}

/// Says once who leads when this replica starts as a standby.
async fn report_holder(client: &Client, settings: &LeaseSettings) {
    if let Ok(Some(Holder { identity: holder, .. })) = live_holder(client, settings).await {
        info!(lease = %settings.name, namespace = %settings.namespace, identity = %settings.identity, %holder, "standing by: another replica holds the lease");
    }
}

/// Each time the Lease's holder releases it: the previous holder. Empty without watch rights.
fn releases(client: Client, settings: &LeaseSettings) -> impl Stream<Item = Option<String>> + Send {
    if !settings.watch_allowed {
        return stream::pending().left_stream();
    }
    let api: Api<Lease> = Api::namespaced(client, &settings.namespace);
    let config = watcher::Config::default().fields(&format!("metadata.name={}", settings.name));
    watcher(api, config)
        .default_backoff()
        .applied_objects()
        .filter_map(|lease| future::ready(lease.ok()))
        .scan(None::<Option<String>>, |last, lease| {
            let holder = lease.spec.and_then(|s| s.holder_identity);
            // NB: the watch starts after this replica said it stands by; a release in between shows as a
            // first sight of no holder, and counts (from an unknown previous holder).
            let released = match (&*last, &holder) {
                (Some(Some(previous)), None) => Some(Some(previous.clone())),
                (None, None) => Some(None),
                _ => None,
            };
            *last = Some(holder);
            future::ready(Some(released))
        })
        .filter_map(future::ready)
        .right_stream()
}

/// The revision part of a pod name: `regcreds-7d9f8b6c4` of `regcreds-7d9f8b6c4-x2k5p`.
fn revision(pod: &str) -> Option<&str> {
    pod.rsplit_once('-').map(|(revision, _)| revision)
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, SystemTime};

    use k8s_openapi::{apimachinery::pkg::apis::meta::v1::MicroTime, jiff::Timestamp};

    use super::{Holder, LeaseSpec, field_manager, other_live_holder, revision};

    fn held_by(holder: &str, renewed: SystemTime) -> LeaseSpec {
        LeaseSpec {
            holder_identity: Some(holder.into()),
            renew_time: Some(MicroTime(Timestamp::try_from(renewed).expect("timestamp"))),
            lease_duration_seconds: Some(15),
            ..LeaseSpec::default()
        }
    }

    #[test]
    fn a_live_lease_names_its_holder_but_an_expired_released_or_own_one_does_not() {
        let now = SystemTime::now();
        let three_ago = now - Duration::from_secs(3);
        assert_eq!(
            other_live_holder(held_by("regcreds-7d9f8b6c4-x2k5p", three_ago), "cleanup", now),
            Some(Holder {
                identity: "regcreds-7d9f8b6c4-x2k5p".into(),
                renewed_ago: Duration::from_secs(3),
            })
        );
        let expired = held_by("regcreds-7d9f8b6c4-x2k5p", now - Duration::from_secs(16));
        assert_eq!(other_live_holder(expired, "cleanup", now), None);
        assert_eq!(
            other_live_holder(held_by("cleanup", three_ago), "cleanup", now),
            None
        );
        let released = LeaseSpec {
            holder_identity: None,
            ..held_by("x", three_ago)
        };
        assert_eq!(other_live_holder(released, "cleanup", now), None);
    }

    #[test]
    fn replicas_of_one_revision_share_it_and_a_new_revision_differs() {
        let old = revision("regcreds-7d9f8b6c4-x2k5p");
        assert_eq!(old, revision("regcreds-7d9f8b6c4-b8q4z"));
        assert_ne!(old, revision("regcreds-5c7b9d6f8-x2k5p"));
    }

    #[test]
    fn each_replica_applies_the_lease_under_its_own_field_manager() {
        assert_ne!(field_manager("regcreds-7d9-a"), field_manager("regcreds-7d9-b"));
        assert!(field_manager(&"x".repeat(300)).chars().count() <= 128);
    }
}
