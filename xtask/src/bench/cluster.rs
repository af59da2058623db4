//! The bench's own cluster traffic: creating labelled namespaces, and reading the apiserver's request
//! counters (`apiserver_request_total`, through the test kit's `request_count`).

use std::{collections::BTreeMap, time::Duration};

use anyhow::{Context, Result};
use futures::{StreamExt, TryStreamExt, stream};
use k8s_openapi::api::core::v1::Namespace;
use kube::{
    Api, Client,
    api::{ObjectMeta, PostParams},
};
use regcreds_testkit::{ControlPlane, sum_requests};
use tokio::time::Instant;

use super::progress;

/// Label on every namespace the bench creates; its value says which set it belongs to.
pub const SET_LABEL: &str = "regcreds-bench/set";
/// Namespaces created at the same time (the apiserver, not the bench, should be the limit).
const CREATE_CONCURRENCY: usize = 32;

/// Read verbs of `apiserver_request_total` (a watch counts once, when it ends).
const READ_VERBS: &[&str] = &["GET", "LIST", "WATCH"];
/// Write verbs; `APPLY` is server-side apply.
const WRITE_VERBS: &[&str] = &["POST", "PUT", "PATCH", "APPLY", "DELETE"];
/// Every resource regcreds touches: its scope, its objects, its Lease, its Events.
const REGCREDS_RESOURCES: &[&str] = &["namespaces", "secrets", "serviceaccounts", "leases", "events"];
/// The resources whose writes must stop once everything is converged.
const STEADY_RESOURCES: &[&str] = &["secrets", "serviceaccounts"];

/// `<prefix>-0000`, `<prefix>-0001`, ...
pub fn names(prefix: &str, count: usize) -> Vec<String> {
    (0..count).map(|i| format!("{prefix}-{i:04}")).collect()
}

/// Creates one namespace labelled `regcreds-bench/set=<set>`; an existing one is fine.
pub async fn create_namespace(client: &Client, name: &str, set: &str) -> Result<()> {
    let namespace = Namespace {
        metadata: ObjectMeta {
            name: Some(name.to_string()),
            labels: Some(BTreeMap::from([(SET_LABEL.to_string(), set.to_string())])),
            ..Default::default()
        },
        ..Default::default()
    };
    match Api::<Namespace>::all(client.clone())
        .create(&PostParams::default(), &namespace)
        .await
    {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(status)) if status.code == 409 => Ok(()),
        Err(error) => Err(error).with_context(|| format!("creating namespace {name}")),
    }
}

/// Creates `names` 32 at a time, reporting progress every 10 %.
pub async fn create_namespaces(client: &Client, names: &[String], set: &str, label: &str) -> Result<()> {
    let step = (names.len() / 10).max(1);
    let mut done = 0;
    let mut creations = stream::iter(names)
        .map(|name| create_namespace(client, name, set))
        .buffer_unordered(CREATE_CONCURRENCY);
    while let Some(()) = creations.try_next().await? {
        done += 1;
        if done % step == 0 || done == names.len() {
            progress(&format!("{label}: creating namespaces {done}/{}", names.len()));
        }
    }
    Ok(())
}

/// Requests split into reads and writes.
#[derive(Debug, Clone, Copy, Default)]
pub struct ReadsWrites {
    pub reads: f64,
    pub writes: f64,
}

/// What the apiserver served on [`REGCREDS_RESOURCES`], by `(verb, resource)`.
#[derive(Debug, Clone, Default)]
pub struct Requests {
    counts: BTreeMap<(&'static str, &'static str), f64>,
}

impl Requests {
    /// Counts since the apiserver started.
    pub async fn now(cp: &ControlPlane) -> Result<Self> {
        let text = cp.metrics_text().await?;
        let mut counts = BTreeMap::new();
        for &resource in REGCREDS_RESOURCES {
            for &verb in READ_VERBS.iter().chain(WRITE_VERBS) {
                let count = sum_requests(&text, &[verb], Some(resource));
                counts.insert((verb, resource), count as f64);
            }
        }
        Ok(Self { counts })
    }

    /// `self - earlier`, per kind.
    pub fn since(&self, earlier: &Self) -> Self {
        self.zip(earlier, |now, then| now - then)
    }

    /// `self - rate × duration` per kind, never below zero: what is left after the background.
    pub fn minus(&self, rate: &Rate, over: Duration) -> Self {
        let secs = over.as_secs_f64();
        self.zip(&rate.0, |count, per_sec| (count - per_sec * secs).max(0.0))
    }

    /// `self + other`, per kind.
    pub fn plus(&self, other: &Self) -> Self {
        let mut sum = self.clone();
        for (kind, count) in &other.counts {
            *sum.counts.entry(*kind).or_default() += count;
        }
        sum
    }

    /// Every count divided by `divisor` (per namespace, per second).
    pub fn per(&self, divisor: f64) -> Self {
        let divisor = divisor.max(f64::MIN_POSITIVE);
        self.zip(&Self::default(), |count, _| count / divisor)
    }

    /// Sums of read and write verbs.
    pub fn totals(&self) -> ReadsWrites {
        let sum = |verbs: &[&str]| {
            self.counts
                .iter()
                .filter(|((verb, _), _)| verbs.contains(verb))
                .map(|(_, count)| count)
                .sum()
        };
        ReadsWrites {
            reads: sum(READ_VERBS),
            writes: sum(WRITE_VERBS),
        }
    }

    /// `GET serviceaccounts 1.66, APPLY secrets 1.00, ...`: kinds of at least `min`, largest first.
    pub fn breakdown(&self, min: f64) -> String {
        let mut kinds: Vec<_> = self.counts.iter().filter(|(_, count)| **count >= min).collect();
        kinds.sort_by(|a, b| b.1.total_cmp(a.1));
        let kinds: Vec<String> = kinds
            .into_iter()
            .map(|((verb, resource), count)| format!("{verb} {resource} {count:.2}"))
            .collect();
        kinds.join(", ")
    }

    fn zip(&self, other: &Self, combine: impl Fn(f64, f64) -> f64) -> Self {
        let counts = self
            .counts
            .iter()
            .map(|(kind, &count)| {
                (
                    *kind,
                    combine(count, other.counts.get(kind).copied().unwrap_or(0.0)),
                )
            })
            .collect();
        Self { counts }
    }
}

/// Background requests per second (kube-controller-manager, the bench's watches), by kind.
#[derive(Debug, Clone, Default)]
pub struct Rate(pub Requests);

impl Rate {
    /// Measures the background over a quiet `window` in which regcreds is not running.
    pub async fn measure(cp: &ControlPlane, window: Duration) -> Result<Self> {
        let start = Requests::now(cp).await?;
        let started = Instant::now();
        tokio::time::sleep(window).await;
        let delta = Requests::now(cp).await?.since(&start);
        Ok(Self(delta.per(started.elapsed().as_secs_f64())))
    }
}

/// Writes on [`STEADY_RESOURCES`] since the apiserver started, by anyone.
pub async fn steady_writes(cp: &ControlPlane) -> Result<u64> {
    let text = cp.metrics_text().await?;
    Ok(STEADY_RESOURCES
        .iter()
        .map(|resource| sum_requests(&text, WRITE_VERBS, Some(resource)))
        .sum())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn requests(counts: &[((&'static str, &'static str), f64)]) -> Requests {
        Requests {
            counts: counts.iter().copied().collect(),
        }
    }

    #[test]
    fn subtracts_the_background_per_kind_and_splits_reads_from_writes() {
        let before = requests(&[(("GET", "secrets"), 10.0), (("APPLY", "secrets"), 0.0)]);
        let after = requests(&[(("GET", "secrets"), 230.0), (("APPLY", "secrets"), 100.0)]);
        let background = Rate(requests(&[(("GET", "secrets"), 2.0)]));
        let delta = after
            .since(&before)
            .minus(&background, Duration::from_secs(10))
            .per(100.0);
        let totals = delta.totals();
        assert_eq!((totals.reads, totals.writes), (2.0, 1.0));
        assert_eq!(delta.breakdown(0.5), "GET secrets 2.00, APPLY secrets 1.00");
    }

    #[test]
    fn sums_add_up_per_kind_including_kinds_only_one_side_has() {
        let a = requests(&[(("PATCH", "secrets"), 3.0)]);
        let b = requests(&[(("PATCH", "secrets"), 2.0), (("GET", "leases"), 1.0)]);
        let sum = Requests::default().plus(&a).plus(&b);
        assert_eq!(sum.breakdown(0.0), "PATCH secrets 5.00, GET leases 1.00");
    }

    #[test]
    fn the_background_never_makes_a_count_negative() {
        let delta = requests(&[(("PUT", "serviceaccounts"), 1.0)]).minus(
            &Rate(requests(&[(("PUT", "serviceaccounts"), 5.0)])),
            Duration::from_secs(1),
        );
        assert_eq!(delta.totals().writes, 0.0);
    }
}
