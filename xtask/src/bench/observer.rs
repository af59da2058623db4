//! Timestamps from watches: when each namespace's `default` ServiceAccount appeared, when it first
//! referenced the pull secret, and when each content of the pull secret was first seen.
//!
//! ```text
//!  apiserver ──watch Secrets (managed-by in (regcreds, floor))┐
//!            ──watch ServiceAccounts (name=default)──────────┴─► Instant::now() ─► Timelines (per namespace)
//!                                                                                     ▲ wait_count() polls memory
//! ```
//!
//! Timestamps are taken when an event arrives, so their precision does not depend on how often the
//! bench looks; looking is an in-memory scan, not an API request. Which credential a Secret holds is
//! decided once, when its event arrives (its [`Marker`]), so that a scan costs a comparison per
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
/// The Secret the floor rotates in regcreds' namespaces, next to regcreds' [`SECRET_NAME`] (same length,
/// so the same bytes).
pub const ROTATED_SECRET_NAME: &str = "floor-pull-secret";
/// `app.kubernetes.io/managed-by` of the floor's Secrets: not regcreds', so regcreds never watches them.
pub const FLOOR_MANAGED_BY: &str = "regcreds-bench-floor";
/// Label selector of the Secrets to watch: regcreds' own, and the floor's.
const SECRET_SELECTOR: &str = "app.kubernetes.io/managed-by in (regcreds,regcreds-bench-floor)";
/// Who wrote a credential: regcreds or the floor client (their markers differ so that one watch tells
/// them apart).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    Regcreds,
    Floor,
}

impl Side {
    fn prefix(self) -> &'static str {
        match self {
            Side::Regcreds => "regcreds-bench-v",
            Side::Floor => "floor-bench-v",
        }
    }
}

/// What the bench puts into a credential (as its password) to recognise it in a watched Secret:
/// version 1 before the rotations, 2, 3, ... after each.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Marker {
    pub side: Side,
    pub version: u16,
}

impl Marker {
    /// The credential each side starts from.
    pub const fn initial(side: Side) -> Self {
        Self { side, version: 1 }
    }

    /// The credential after rotation `index` (0-based).
    pub fn rotated(side: Side, index: usize) -> Self {
        let version = u16::try_from(index + 2).expect("fewer than 65,534 rotations");
        Self { side, version }
    }

    /// The marker `bytes` contain, if any: a prefix and the digits after it.
    fn find_in(bytes: &[u8]) -> Option<Self> {
        [Side::Regcreds, Side::Floor].into_iter().find_map(|side| {
            let prefix = side.prefix().as_bytes();
            let at = bytes.windows(prefix.len()).position(|w| w == prefix)? + prefix.len();
            let digits = bytes[at..].iter().take_while(|b| b.is_ascii_digit()).count();
            let version = std::str::from_utf8(&bytes[at..at + digits]).ok()?.parse().ok()?;
            Some(Self { side, version })
        })
    }
}

impl std::fmt::Display for Marker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}{}", self.side.prefix(), self.version)
    }
}

/// How many times each side rotates at `n` namespaces. A rotation at N = 100 lasts a few etcd commit
/// rounds (60–100 ms), and an apiserver garbage collection in that window makes it half as long again:
/// the samples come out in two groups, and only many of them give a stable median. From a few thousand
/// namespaces on a rotation lasts seconds and averages such moments out by itself, but one slow
/// sample per side (an etcd compaction, say) still moves a median of five: seven it is.
pub fn rotations(n: usize) -> usize {
    if n <= 500 { 15 } else { 7 }
}
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
    /// Each distinct content of a watched pull secret (by the marker it held, if any), with when it was
    /// first seen. Markers tell regcreds' Secret from the floor's in the same namespace.
    contents: Vec<(Instant, Option<Marker>)>,
}

impl Timeline {
    /// When the pull secret first held bytes containing `marker`.
    pub fn secret_with(&self, marker: Marker) -> Option<Instant> {
        self.contents
            .iter()
            .find(|(_, held)| *held == Some(marker))
            .map(|(at, _)| *at)
    }

    /// When the namespace could first pull with `marker`'s credentials: the Secret holds them and the
    /// `default` ServiceAccount references it.
    pub fn ready(&self, marker: Marker) -> Option<Instant> {
        Some(self.secret_with(marker)?.max(self.referenced?))
    }

    /// When `side`'s pull secret first appeared.
    pub fn first_secret(&self, side: Side) -> Option<Instant> {
        self.contents
            .iter()
            .find(|(_, held)| held.is_some_and(|marker| marker.side == side))
            .map(|(at, _)| *at)
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
    if ![SECRET_NAME, ROTATED_SECRET_NAME].contains(&secret.name_any().as_str()) {
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
    let held = Marker::find_in(&bytes);
    let timeline = timelines.entry(namespace).or_default();
    if !timeline.contents.iter().any(|(_, seen)| *seen == held) {
        timeline.contents.push((at, held));
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_marker_is_found_again_in_the_document_that_carries_it() {
        for marker in [
            Marker::initial(Side::Regcreds),
            Marker::rotated(Side::Regcreds, 13),
            Marker::rotated(Side::Floor, 0),
        ] {
            let document = format!(r#"{{"auths":{{"h":{{"password":"{marker}"}}}}}}"#);
            assert_eq!(Marker::find_in(document.as_bytes()), Some(marker));
        }
        assert_eq!(Marker::rotated(Side::Floor, 9).to_string(), "floor-bench-v11");
        assert_eq!(Marker::find_in(b"no marker here"), None);
    }
}
