//! Rotations: regcreds and the floor take turns on the same namespaces of the same control plane.
//!
//! ```text
//!  floor: apply floor-pull-secret (v1) into regcreds' N namespaces ─► observed ─► settle   (not measured)
//!  for each rotation k (the side that goes first alternates):
//!      regcreds: rewrite the dockerconfigjson ─► every image-pull-secret holds v(k) ─► settle
//!      floor:    apply floor-pull-secret v(k) in every namespace ─► every one observed ─► settle
//! ```
//!
//! Why turns rather than one side after the other: from a few thousand namespaces on, a rotation is
//! bound by the apiserver's CPU, and the apiserver changes over a run (etcd compacts every 5 minutes,
//! its history and heap grow, garbage collections come and go). Timed minutes apart, the two sides met
//! different apiservers, and the ratio moved by ±20 % between runs of the same code; taking turns, both
//! meet the same one. regcreds runs, idle, through the floor's turns: the floor's Secrets are not
//! labelled as regcreds', so regcreds' watch never sees them, and the floor writes nothing else.

use std::{future::Future, time::Duration};

use anyhow::Result;
use kube::Client;
use tokio::time::Instant;

use super::{Bench, SETTLE, bounded, control_plane_cpu, document, regcreds_log};
use crate::bench::{
    cluster::{Rate, Requests},
    floor,
    observer::{Marker, ROTATED_SECRET_NAME, Side},
    process::proc_usage,
    report::Rotation,
};

/// The floor's rotations, measured like regcreds'.
pub(super) struct FloorRotations {
    /// Start of the writes → last Secret observed, each rotation in order.
    pub samples: Vec<Duration>,
    /// apiserver requests per namespace and rotation, background subtracted.
    pub requests: Requests,
    /// CPU time of the control plane's processes per rotation (mean).
    pub control_plane: Duration,
    /// CPU time of the bench process (the floor client and the bench's watches) over all its turns.
    pub cpu: Duration,
}

/// What one side's turns cost, summed over them.
#[derive(Default)]
struct Tally {
    /// From each turn's start until the end of the settle after it, background subtracted.
    requests: Requests,
    /// From each turn's start until its last Secret.
    control_plane: Duration,
    /// The side's process, like `requests`.
    cpu: Duration,
}

impl Bench<'_> {
    /// Creates the floor's own Secret in every namespace of `set`, so that its rotations are updates as
    /// regcreds' are (a first apply is a create).
    pub(super) async fn seed_floor(&self, client: &Client, set: &[String]) -> Result<()> {
        let marker = Marker::initial(Side::Floor);
        self.say("floor: creating its own Secret in regcreds' namespaces (not measured)");
        self.rotate_floor_once(client, set, marker).await?;
        tokio::time::sleep(SETTLE).await;
        Ok(())
    }

    /// [`super::rotations`] rotations per side, in turns, on `set`. `regcreds_pid` is the running
    /// regcreds; `client` is the floor's.
    pub(super) async fn rotate_both(
        &self,
        set: &[String],
        client: &Client,
        regcreds_pid: u32,
        background: &Rate,
    ) -> Result<(Rotation, FloorRotations)> {
        let log = regcreds_log(&self.dir);
        let (mut regcreds, mut floor) = (Tally::default(), Tally::default());
        let (mut samples, mut floor_samples) = (Vec::new(), Vec::new());
        for index in 0..self.rotations() {
            // Alternating who goes first: neither side always follows the other's trailing work.
            let regcreds_first = index % 2 == 0;
            for regcreds_turn in [regcreds_first, !regcreds_first] {
                if regcreds_turn {
                    let marker = Marker::rotated(Side::Regcreds, index);
                    let rotated = self.rotate_once(set, &log, marker);
                    samples.push(
                        self.turn(&mut regcreds, regcreds_pid, background, rotated)
                            .await?,
                    );
                } else {
                    let marker = Marker::rotated(Side::Floor, index);
                    let rotated = self.rotate_floor_once(client, set, marker);
                    let bench = std::process::id();
                    floor_samples.push(self.turn(&mut floor, bench, background, rotated).await?);
                }
            }
        }
        let rotations = self.rotations();
        let per_write = (self.n * rotations) as f64;
        let regcreds = Rotation {
            samples,
            requests: regcreds.requests.per(per_write),
            control_plane: regcreds.control_plane / rotations as u32,
            cpu: regcreds.cpu / rotations as u32,
        };
        let floor = FloorRotations {
            samples: floor_samples,
            requests: floor.requests.per(per_write),
            control_plane: floor.control_plane / rotations as u32,
            cpu: floor.cpu,
        };
        Ok((regcreds, floor))
    }

    /// Runs one side's rotation and the settle after it, adding what it cost to `tally`.
    async fn turn<T>(
        &self,
        tally: &mut Tally,
        pid: u32,
        background: &Rate,
        rotation: impl Future<Output = Result<T>>,
    ) -> Result<T> {
        let before = Requests::now(self.cp).await?;
        let started = Instant::now();
        let (cpu_before, control_plane_before) = (proc_usage(pid)?.cpu, control_plane_cpu(self.cp));
        let sample = rotation.await?;
        tally.control_plane += control_plane_cpu(self.cp).saturating_sub(control_plane_before);
        tokio::time::sleep(SETTLE).await;
        tally.cpu += proc_usage(pid)?.cpu.saturating_sub(cpu_before);
        let requests = Requests::now(self.cp).await?.since(&before);
        tally.requests = tally
            .requests
            .plus(&requests.minus(background, started.elapsed()));
        Ok(sample)
    }

    /// The floor applies its Secret holding `marker` in every namespace of `set`; the time until the
    /// last one was observed.
    async fn rotate_floor_once(&self, client: &Client, set: &[String], marker: Marker) -> Result<Duration> {
        let started = Instant::now();
        let data = document(marker);
        let concurrency = usize::from(self.settings.concurrency);
        let writes = floor::rotate(client, set, ROTATED_SECRET_NAME, data.as_bytes(), concurrency);
        bounded(self.n, writes).await?;
        let rotation = self
            .wait_floor(set, started, marker, |tl| tl.secret_with(marker))
            .await?;
        self.say(&format!(
            "floor: rotated to {marker} in {}",
            super::super::stats::dur(rotation)
        ));
        Ok(rotation)
    }
}
