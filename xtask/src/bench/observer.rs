//! Timestamps from watches: when each namespace's `default` ServiceAccount appeared, when it first
//! referenced the pull secret, and when each content of the pull secret was first seen.
//!
//! ```text
//!  apiserver ──watch Secrets (managed-by=regcreds)──────────┐
//!            ──watch ServiceAccounts (name=default)──────────┴─► Instant::now() ─► Timelines (per namespace)
//!                                                                                     ▲ wait_count() polls memory
//! ```
//!
//! Timestamps are taken when an event arrives, so their precision does not depend on how often the
//! bench looks; looking is an in-memory scan, not an API request. Which credential a Secret holds is
//! decided once, when its event arrives (one of [`MARKERS`]), so that a scan costs a lookup per
//! namespace: the bench scans while regcreds works, and must not take the CPU regcreds and the
//! apiserver compete for (with a substring search per namespace per scan, it took 8% of the machine at
//! 10,000 namespaces, and only while regcreds — not the floor — was being measured).

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, MutexGuard, PoisonError},
    time::Duration,
};

use anyhow::{Result, bail};
use futures::StreamExt;
use k8s_openapi::api::core::v1::{Secret, ServiceAccount};
use kube::{
    Api, Client, ResourceExt,
    runtime::{WatchStreamExt, watcher},
};
use tokio::{task::JoinHandle, time::Instant};

use super::progress;

/// Name of the pull secret regcreds writes (its default) and the floor client writes too.
pub const SECRET_NAME: &str = "image-pull-secret";
/// Label selector of the Secrets to watch: regcreds' own, and the floor's (which copies them exactly).
const SECRET_SELECTOR: &str = "app.kubernetes.io/managed-by=regcreds";
/// How many times each side rotates: one rotation at N = 100 lasts a few etcd commits (~70 ms), and
/// one slow apiserver moment doubles it, so a single sample is mostly noise; the report takes the
/// median.
pub const ROTATIONS: usize = 5;
/// In regcreds' credentials before the rotations.
pub const REGCREDS_V1: &str = "regcreds-bench-v1";
/// In regcreds' credentials after each rotation.
pub const REGCREDS_ROTATED: [&str; ROTATIONS] = [
    "regcreds-bench-v2",
    "regcreds-bench-v3",
    "regcreds-bench-v4",
    "regcreds-bench-v5",
    "regcreds-bench-v6",
];
/// In the floor's credentials before its rotations.
pub const FLOOR_V1: &str = "floor-bench-v1";
/// In the floor's credentials after each rotation.
pub const FLOOR_ROTATED: [&str; ROTATIONS] = [
    "floor-bench-v2",
    "floor-bench-v3",
    "floor-bench-v4",
    "floor-bench-v5",
    "floor-bench-v6",
];
/// Every marker the bench puts into a credential.
const MARKERS: [&str; 2 + 2 * ROTATIONS] = [
    REGCREDS_V1,
    REGCREDS_ROTATED[0],
    REGCREDS_ROTATED[1],
    REGCREDS_ROTATED[2],
    REGCREDS_ROTATED[3],
    REGCREDS_ROTATED[4],
    FLOOR_V1,
    FLOOR_ROTATED[0],
    FLOOR_ROTATED[1],
    FLOOR_ROTATED[2],
    FLOOR_ROTATED[3],
    FLOOR_ROTATED[4],
];
/// How long the watches may take to list what exists.
const SYNC_TIMEOUT: Duration = Duration::from_secs(60);
/// How often [`Observer::wait_count`] scans the timelines (cheap: memory only).
const SCAN_INTERVAL: Duration = Duration::from_millis(20);
/// [`Observer::wait_count`] gives up when its count has not changed for this long.
const STALL_AFTER: Duration = Duration::from_secs(30);
/// How often [`Observer::wait_count`] reports progress.
const PROGRESS_INTERVAL: Duration = Duration::from_secs(5);

/// What the watches saw in one namespace, as first-seen times.
#[derive(Debug, Default)]
pub struct Timeline {
    /// The `default` ServiceAccount exists.
    pub account: Option<Instant>,
    /// The `default` ServiceAccount references [`SECRET_NAME`].
    pub referenced: Option<Instant>,
    /// Each distinct content of [`SECRET_NAME`] (by the marker it held, if any), with when it was first
    /// seen.
    contents: Vec<(Instant, Option<&'static str>)>,
}

impl Timeline {
    /// When the pull secret first held bytes containing `marker`.
    pub fn secret_with(&self, marker: &str) -> Option<Instant> {
        self.contents
            .iter()
            .find(|(_, held)| *held == Some(marker))
            .map(|(at, _)| *at)
    }

    /// When the namespace could first pull with `marker`'s credentials: the Secret holds them and the
    /// `default` ServiceAccount references it.
    pub fn ready(&self, marker: &str) -> Option<Instant> {
        Some(self.secret_with(marker)?.max(self.referenced?))
    }

    /// When the pull secret first appeared at all.
    pub fn first_secret(&self) -> Option<Instant> {
        self.contents.first().map(|(at, _)| *at)
    }
}

/// Timelines of every namespace, by name.
pub type Timelines = HashMap<String, Timeline>;

/// Two watches feeding [`Timelines`]; stopped when dropped.
pub struct Observer {
    timelines: Arc<Mutex<Timelines>>,
    tasks: Vec<JoinHandle<()>>,
}

impl Observer {
    /// Starts both watches and returns once each has listed what exists.
    pub async fn start(client: &Client) -> Result<Self> {
        let timelines = Arc::new(Mutex::new(Timelines::new()));
        let (synced_tx, mut synced) = tokio::sync::mpsc::channel(2);
        let secrets = Api::<Secret>::all(client.clone());
        let secret_config = watcher::Config::default().labels(SECRET_SELECTOR);
        let accounts = Api::<ServiceAccount>::all(client.clone());
        let account_config = watcher::Config::default().fields("metadata.name=default");
        let tasks = vec![
            spawn_watch(
                secrets,
                secret_config,
                timelines.clone(),
                synced_tx.clone(),
                record_secret,
            ),
            spawn_watch(
                accounts,
                account_config,
                timelines.clone(),
                synced_tx,
                record_account,
            ),
        ];
        let observer = Self { timelines, tasks };
        for _ in 0..2 {
            match tokio::time::timeout(SYNC_TIMEOUT, synced.recv()).await {
                Ok(Some(())) => {}
                _ => bail!("the bench's watches did not sync within {SYNC_TIMEOUT:?}"),
            }
        }
        Ok(observer)
    }

    /// Runs `read` on the timelines.
    pub fn read<T>(&self, read: impl FnOnce(&Timelines) -> T) -> T {
        read(&lock(&self.timelines))
    }

    /// Waits until `count` reaches `total`, printing `[bench] <label> <count>/<total>` every 5 s.
    ///
    /// Gives up after `timeout`, or earlier when the count has not moved for 30 s.
    pub async fn wait_count(
        &self,
        label: &str,
        total: usize,
        timeout: Duration,
        count: impl Fn(&Timelines) -> usize,
    ) -> Result<(), Incomplete> {
        let started = Instant::now();
        let (mut reported, mut last_change, mut last) = (started, started, 0);
        loop {
            let done = self.read(&count);
            if done >= total {
                return Ok(());
            }
            if done != last {
                (last, last_change) = (done, Instant::now());
            }
            let stalled = last_change.elapsed() >= STALL_AFTER;
            if stalled || started.elapsed() > timeout {
                let label = label.to_string();
                return Err(Incomplete {
                    label,
                    done,
                    total,
                    stalled,
                });
            }
            if reported.elapsed() >= PROGRESS_INTERVAL {
                progress(&format!("{label} {done}/{total}"));
                reported = Instant::now();
            }
            tokio::time::sleep(SCAN_INTERVAL).await;
        }
    }
}

/// A wait that ended before everything was done.
#[derive(Debug, Clone)]
pub struct Incomplete {
    label: String,
    /// How many were done.
    pub done: usize,
    /// How many were expected.
    pub total: usize,
    /// Whether it gave up because nothing moved (rather than at the overall timeout).
    pub stalled: bool,
}

impl std::fmt::Display for Incomplete {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let why = if self.stalled {
            format!("no progress for {}s", STALL_AFTER.as_secs())
        } else {
            "timed out".to_string()
        };
        write!(f, "{}: only {}/{} ({why})", self.label, self.done, self.total)
    }
}

impl std::error::Error for Incomplete {}

impl Drop for Observer {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

fn lock(timelines: &Mutex<Timelines>) -> MutexGuard<'_, Timelines> {
    timelines.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Feeds every applied object of one watch into `record`, and says once when the first list is done.
fn spawn_watch<K>(
    api: Api<K>,
    config: watcher::Config,
    timelines: Arc<Mutex<Timelines>>,
    synced: tokio::sync::mpsc::Sender<()>,
    record: fn(&mut Timelines, K, Instant),
) -> JoinHandle<()>
where
    K: kube::Resource + Clone + std::fmt::Debug + serde::de::DeserializeOwned + Send + 'static,
{
    tokio::spawn(async move {
        let mut events = std::pin::pin!(watcher(api, config).default_backoff());
        while let Some(event) = events.next().await {
            let at = Instant::now();
            match event {
                Ok(watcher::Event::Apply(object) | watcher::Event::InitApply(object)) => {
                    record(&mut lock(&timelines), object, at)
                }
                Ok(watcher::Event::InitDone) => {
                    let _ = synced.try_send(());
                }
                // Deletions do not matter (the bench deletes nothing), and errors are retried with backoff.
                Ok(_) | Err(_) => {}
            }
        }
    })
}

fn record_secret(timelines: &mut Timelines, secret: Secret, at: Instant) {
    if secret.name_any() != SECRET_NAME {
        return;
    }
    let Some(namespace) = secret.namespace() else {
        return;
    };
    let bytes = secret
        .data
        .and_then(|mut data| data.remove(".dockerconfigjson"))
        .map(|b| b.0)
        .unwrap_or_default();
    let held = marker_in(&bytes);
    let timeline = timelines.entry(namespace).or_default();
    if !timeline.contents.iter().any(|(_, seen)| *seen == held) {
        timeline.contents.push((at, held));
    }
}

/// Which of [`MARKERS`] `bytes` contain.
fn marker_in(bytes: &[u8]) -> Option<&'static str> {
    MARKERS.into_iter().find(|marker| {
        let marker = marker.as_bytes();
        bytes.windows(marker.len()).any(|w| w == marker)
    })
}

fn record_account(timelines: &mut Timelines, account: ServiceAccount, at: Instant) {
    let Some(namespace) = account.namespace() else {
        return;
    };
    let references = account
        .image_pull_secrets
        .iter()
        .flatten()
        .any(|r| r.name == SECRET_NAME);
    let timeline = timelines.entry(namespace).or_default();
    timeline.account.get_or_insert(at);
    if references {
        timeline.referenced.get_or_insert(at);
    }
}
