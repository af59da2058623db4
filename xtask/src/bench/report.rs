//! The results of one run and their Markdown table: one column per namespace count, one row per
//! measurement, the machine in the header and the method in footnotes.

use std::{fmt::Write as _, time::Duration};

use super::{
    cluster::{ReadsWrites, Requests},
    machine::Machine,
    observer::Incomplete,
    process::Usage,
    stats::{Percentiles, dur, ratio},
};

/// Everything measured for one namespace count.
#[derive(Debug, Clone)]
pub struct Results {
    pub namespaces: usize,
    /// Creating the N namespaces and waiting for their `default` ServiceAccounts (not measured).
    pub setup: Duration,
    pub initial: Initial,
    pub steady: Steady,
    pub rotation: Rotation,
    pub latency: Latency,
    /// regcreds' usage at the end of its run (before SIGTERM).
    pub usage: Usage,
    pub floor: Floor,
    /// 1-minute load average when this count started and ended: other work on the machine skews it.
    pub load: (f64, f64),
}

/// regcreds' initial convergence over namespaces that existed before it started.
#[derive(Debug, Clone)]
pub struct Initial {
    /// Process start → the last namespace has the Secret and the `default` reference (of those that did).
    pub total: Duration,
    /// Set when not every namespace became ready: a finding, reported in the table.
    pub incomplete: Option<Incomplete>,
    /// Process start → the first Secret.
    pub startup: Duration,
    /// apiserver requests per namespace, background subtracted.
    pub requests: Requests,
    /// Background requests per second (measured before regcreds started).
    pub background: ReadsWrites,
    /// regcreds' own write counters per namespace.
    pub own_writes: f64,
    /// CPU time from process start to convergence.
    pub cpu: Duration,
    /// CPU time of the control plane's processes over the same span.
    pub control_plane: Duration,
}

/// The quiet window after convergence.
#[derive(Debug, Clone, Copy)]
pub struct Steady {
    pub window: Duration,
    /// Secret + ServiceAccount writes by regcreds' own counters.
    pub own_writes: f64,
    /// Writes on secrets + serviceaccounts the apiserver served (anyone's).
    pub apiserver_writes: u64,
    pub mints: f64,
    /// Schedule ticks (whole seconds) in the window.
    pub ticks: u64,
    pub cpu: Duration,
}

/// Rewrites of the dockerconfigjson file ([`super::observer::rotations`] of them), each fanned out to every namespace.
#[derive(Debug, Clone)]
pub struct Rotation {
    /// Each rotation, in order.
    pub samples: Vec<RotationSample>,
    /// apiserver requests per namespace and rotation, background subtracted.
    pub requests: Requests,
    /// CPU time of the control plane's processes from a rewrite to its last Secret, per rotation.
    pub control_plane: Duration,
    /// regcreds' CPU time per rotation (from the first rewrite to the end of the last settle).
    pub cpu: Duration,
}

/// One rewrite of the dockerconfigjson file.
#[derive(Debug, Clone, Copy)]
pub struct RotationSample {
    /// Rewrite → the last Secret holds the new bytes.
    pub total: Duration,
    /// Rewrite → regcreds logged the new mint (`None` if the log line was not found).
    pub detection: Option<Duration>,
}

impl RotationSample {
    /// Mint → last Secret: the part of a rotation the floor is comparable with.
    pub fn fan_out(&self) -> Duration {
        self.total.saturating_sub(self.detection.unwrap_or_default())
    }
}

impl Rotation {
    /// The sample with the median fan-out.
    pub fn median(&self) -> RotationSample {
        let mut samples = self.samples.clone();
        samples.sort_by_key(RotationSample::fan_out);
        samples[samples.len() / 2]
    }

    /// The median fan-out.
    pub fn fan_out(&self) -> Duration {
        self.median().fan_out()
    }

    /// Every fan-out.
    pub fn fan_outs(&self) -> Vec<Duration> {
        self.samples.iter().map(RotationSample::fan_out).collect()
    }

    /// The median over rotations `k` of regcreds' fan-out `k` / the floor's rotation `k`: the two took
    /// turns, so each pair met the same apiserver. `None` without pairs.
    pub fn paired_ratio(&self, floor: &[Duration]) -> Option<f64> {
        let mut ratios: Vec<f64> = self
            .fan_outs()
            .iter()
            .zip(floor)
            .filter(|(_, floor)| !floor.is_zero())
            .map(|(own, floor)| own.as_secs_f64() / floor.as_secs_f64())
            .collect();
        ratios.sort_by(f64::total_cmp);
        ratios.get(ratios.len() / 2).copied()
    }
}

/// The median of `samples` (which must not be empty).
pub fn median(samples: &[Duration]) -> Duration {
    let mut sorted = samples.to_vec();
    sorted.sort();
    sorted[sorted.len() / 2]
}

/// `median (min–max)` of `samples`.
fn spread(samples: &[Duration]) -> String {
    let (min, max) = (
        samples.iter().min().copied().unwrap_or_default(),
        samples.iter().max().copied().unwrap_or_default(),
    );
    format!("{} ({}–{})", dur(median(samples)), dur(min), dur(max))
}

/// New namespaces created one at a time while regcreds runs.
#[derive(Debug, Clone, Copy)]
pub struct Latency {
    /// Create → Secret present and referenced by `default`.
    pub ready: Percentiles,
    /// Create → `default` exists (kube-controller-manager's part).
    pub account: Percentiles,
    /// Samples that did not complete within the per-sample timeout.
    pub timeouts: usize,
}

/// The same writes by a bare client.
#[derive(Debug, Clone)]
pub struct Floor {
    /// Creating its N namespaces and waiting for their `default` ServiceAccounts (not measured).
    pub setup: Duration,
    pub initial: Duration,
    /// Each rotation, in order.
    pub rotations: Vec<Duration>,
    /// Requests per namespace for the initial writes, counted by the client itself.
    pub requests: ReadsWrites,
    /// The same, as the apiserver counted them (background subtracted).
    pub apiserver: Requests,
    /// apiserver requests per namespace and rotation.
    pub rotation_requests: Requests,
    /// CPU time of the control plane's processes during the initial writes.
    pub control_plane: Duration,
    /// The same during a rotation (mean).
    pub rotation_control_plane: Duration,
    /// CPU time of the bench process during both floor phases.
    pub client_cpu: Duration,
}

/// The whole report.
pub fn render(machine: &Machine, results: &[Results], concurrency: u16) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "# regcreds benchmark\n");
    let _ = writeln!(out, "{}\n", machine.describe());
    let _ = writeln!(
        out,
        "Reconcile concurrency {concurrency} (regcreds' `REGCREDS_CONCURRENCY` and the floor client). \
         Each column ran on a fresh control plane.\n"
    );
    out.push_str(&table(results));
    out.push_str(FOOTNOTES);
    out
}

fn table(results: &[Results]) -> String {
    let mut out = String::from("| measurement |");
    for r in results {
        let _ = write!(out, " N = {} |", r.namespaces);
    }
    out.push_str("\n|---|");
    out.push_str(&"---:|".repeat(results.len()));
    out.push('\n');
    for (label, cell) in ROWS {
        let _ = write!(out, "| {label} |");
        let mut previous = None;
        for r in results {
            let _ = write!(out, " {} |", cell(r, previous));
            previous = Some(r);
        }
        out.push('\n');
    }
    out
}

/// A cell from its column's results and the previous column's (for growth between counts).
type Cell = fn(&Results, Option<&Results>) -> String;

/// Row labels and how each cell is computed.
const ROWS: &[(&str, Cell)] = &[
    (
        "Setup, not measured: N namespaces + their `default` SAs + a quiet control plane (regcreds' set / the floor's)",
        |r, _| format!("{} / {}", dur(r.setup), dur(r.floor.setup)),
    ),
    (
        "**Initial convergence**, regcreds (process start → last namespace ready)",
        |r, _| dur(r.initial.total),
    ),
    ("  of which start-up (process start → first Secret)", |r, _| {
        dur(r.initial.startup)
    }),
    ("Initial convergence, floor (bare client, same writes)", |r, _| {
        dur(r.floor.initial)
    }),
    (
        "  control plane CPU (apiserver + etcd + controller manager) meanwhile, regcreds / floor",
        |r, _| {
            format!(
                "{:.2} / {:.2} s",
                r.initial.control_plane.as_secs_f64(),
                r.floor.control_plane.as_secs_f64()
            )
        },
    ),
    ("  **regcreds / floor** (without start-up)", |r, _| {
        if r.initial.incomplete.is_some() {
            return "n/a".to_string();
        }
        let total = r.initial.total.as_secs_f64();
        let floor = r.floor.initial.as_secs_f64();
        let work = total - r.initial.startup.as_secs_f64();
        format!("**{}** ({})", ratio(total, floor), ratio(work, floor))
    }),
    ("API requests / namespace, regcreds: reads + writes ¹", |r, _| {
        requests(r.initial.requests.totals())
    }),
    ("  by verb and resource", |r, _| {
        r.initial.requests.breakdown(0.005)
    }),
    (
        "  background subtracted (reads + writes per second, before regcreds)",
        |r, _| requests(r.initial.background),
    ),
    ("  writes / namespace by regcreds' own counters", |r, _| {
        format!("{:.2}", r.initial.own_writes)
    }),
    ("API requests / namespace, floor: reads + writes ²", |r, _| {
        requests(r.floor.requests)
    }),
    (
        "  by verb and resource (apiserver, background subtracted)",
        |r, _| r.floor.apiserver.breakdown(0.005),
    ),
    (
        "**New namespace** → Secret + `default` reference, p50 / p90 / p99 ³",
        |r, _| r.latency.ready.display(),
    ),
    (
        "  new namespace → `default` SA created by kube-controller-manager",
        |r, _| r.latency.account.display(),
    ),
    ("  samples (timed out)", |r, _| {
        format!("{} ({})", r.latency.ready.count, r.latency.timeouts)
    }),
    (
        "**Rotation**: rotations per side (taking turns, each timed alone) ⁵",
        |r, _| format!("{} / {}", r.rotation.samples.len(), r.floor.rotations.len()),
    ),
    ("  file rewrite → last Secret updated (median)", |r, _| {
        dur(r.rotation.median().total)
    }),
    (
        "  of which detection (rewrite → mint; schedule every 1 s)",
        |r, _| r.rotation.median().detection.map_or("n/a".into(), dur),
    ),
    (
        "  fan-out (mint → last Secret updated), median (min–max)",
        |r, _| spread(&r.rotation.fan_outs()),
    ),
    ("Rotation, floor (bare client), median (min–max)", |r, _| {
        spread(&r.floor.rotations)
    }),
    ("  **regcreds fan-out / floor** (medians)", |r, _| {
        let fan_out = r.rotation.fan_out().as_secs_f64();
        let floor = median(&r.floor.rotations).as_secs_f64();
        format!("**{}**", ratio(fan_out, floor))
    }),
    (
        "  median of the ratios of each turn pair (regcreds fan-out k / floor k)",
        |r, _| {
            r.rotation
                .paired_ratio(&r.floor.rotations)
                .map_or("n/a".into(), |paired| ratio(paired, 1.0))
        },
    ),
    (
        "  API requests / namespace per rotation, regcreds / floor ¹",
        |r, _| {
            format!(
                "{} / {}",
                requests(r.rotation.requests.totals()),
                requests(r.floor.rotation_requests.totals())
            )
        },
    ),
    ("  by verb and resource, regcreds", |r, _| {
        r.rotation.requests.breakdown(0.005)
    }),
    ("  control plane CPU per rotation, regcreds / floor", |r, _| {
        format!(
            "{:.2} / {:.2} s",
            r.rotation.control_plane.as_secs_f64(),
            r.floor.rotation_control_plane.as_secs_f64()
        )
    }),
    (
        "**Steady state**: writes in the window, regcreds' counters / apiserver ⁴",
        |r, _| {
            let s = &r.steady;
            format!(
                "{:.0} / {} in {:.0} s",
                s.own_writes,
                s.apiserver_writes,
                s.window.as_secs_f64()
            )
        },
    ),
    ("Provider mints per refresh (mints / schedule ticks)", |r, _| {
        let s = &r.steady;
        let per = if s.ticks > 0 {
            s.mints / s.ticks as f64
        } else {
            0.0
        };
        format!("{per:.2} ({:.0} / {})", s.mints, s.ticks)
    }),
    ("regcreds peak RSS (VmHWM)", |r, _| {
        format!("{:.1} MiB", r.usage.peak_rss_kib as f64 / 1024.0)
    }),
    (
        "  growth per 1,000 namespaces (from the previous column)",
        |r, previous| {
            let Some(p) = previous.filter(|p| p.namespaces < r.namespaces) else {
                return "–".to_string();
            };
            let kib = r.usage.peak_rss_kib as f64 - p.usage.peak_rss_kib as f64;
            let per_thousand = kib / 1024.0 / (r.namespaces - p.namespaces) as f64 * 1000.0;
            format!("{per_thousand:.2} MiB")
        },
    ),
    (
        "regcreds CPU: convergence / steady window / per rotation / whole run",
        |r, _| {
            format!(
                "{:.2} / {:.2} / {:.2} / {:.2} s",
                r.initial.cpu.as_secs_f64(),
                r.steady.cpu.as_secs_f64(),
                r.rotation.cpu.as_secs_f64(),
                r.usage.cpu.as_secs_f64()
            )
        },
    ),
    ("Floor client CPU (bench process, both floor phases)", |r, _| {
        format!("{:.2} s", r.floor.client_cpu.as_secs_f64())
    }),
    ("Machine load (1-min load average at start / end)", |r, _| {
        format!("{:.2} / {:.2}", r.load.0, r.load.1)
    }),
];

fn requests(r: ReadsWrites) -> String {
    format!("{:.2} + {:.2} = {:.2}", r.reads, r.writes, r.reads + r.writes)
}

const FOOTNOTES: &str = "
Ready = the namespace's `image-pull-secret` holds the current credentials **and** its `default`
ServiceAccount lists it in `imagePullSecrets`. Times come from watch events received by the bench
(Secrets labelled `app.kubernetes.io/managed-by` `regcreds` or `regcreds-bench-floor`, ServiceAccounts
named `default`).

1. Delta of `apiserver_request_total` on namespaces, secrets, serviceaccounts, leases and events from
   regcreds' start until 5 s after convergence (for the rotations: from each side's rewrite until 5 s after
   its last Secret, summed over that side's turns and divided by their number), minus the background rate
   (kube-controller-manager and the bench's own watches) measured over 10 s just before regcreds started. Reads are GET, LIST and WATCH (a watch is counted
   when it ends); writes are POST, PUT, PATCH, APPLY and DELETE. Start-up lists and Lease renewals
   (leader election) are included.
2. Counted by the floor client itself: one apply, one get, one update per namespace (a naive client
   reads the ServiceAccount before updating it). The apiserver's count of the same phase follows.
3. Namespaces created one at a time while regcreds runs (N + samples namespaces exist by the end).
   regcreds cannot be faster than the `default` ServiceAccount's creation: it only references it.
4. After convergence and 5 s of settling, nothing changes for the window: regcreds' own
   `regcreds_secrets_written_total` + `regcreds_serviceaccounts_written_total`, and the apiserver's
   writes on secrets and serviceaccounts by anyone. Both should be 0.
5. Both sides rotate in the same N namespaces on the same control plane, taking turns (who goes first
   alternates), with 5 s of settling after each turn: regcreds its `image-pull-secret` (file rewrite →
   mint → fan-out), the floor client its own `floor-pull-secret` (one apply per namespace), which
   regcreds, idle meanwhile, does not watch. Timed one after the other, minutes apart, the two met a
   different apiserver (etcd compactions, heap growth) and the ratio moved by ±20 % between runs.
";

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(total_ms: u64, detection_ms: u64) -> RotationSample {
        RotationSample {
            total: Duration::from_millis(total_ms),
            detection: Some(Duration::from_millis(detection_ms)),
        }
    }

    /// Fan-outs 100, 300, 200 ms; totals 900, 400, 600 ms.
    fn three_rotations() -> Rotation {
        Rotation {
            samples: vec![sample(900, 800), sample(400, 100), sample(600, 400)],
            requests: Requests::default(),
            control_plane: Duration::ZERO,
            cpu: Duration::ZERO,
        }
    }

    #[test]
    fn the_median_rotation_is_the_one_with_the_median_fan_out_not_the_median_total() {
        let rotation = three_rotations();
        assert_eq!(rotation.fan_out(), Duration::from_millis(200));
        assert_eq!(rotation.median().total, Duration::from_millis(600));
    }

    #[test]
    fn the_paired_ratio_compares_each_rotation_with_the_floor_rotation_it_took_turns_with() {
        // Against the floor's 200, 200, 100 ms: ratios 0.5, 1.5, 2.0.
        let rotation = three_rotations();
        let floor = [200, 200, 100].map(Duration::from_millis);
        let paired = rotation.paired_ratio(&floor).expect("three pairs");
        assert!((paired - 1.5).abs() < 1e-9, "{paired}");
        assert_eq!(rotation.paired_ratio(&[]), None);
    }

    #[test]
    fn spread_shows_median_then_range() {
        let samples = [90, 70, 80].map(Duration::from_millis);
        assert_eq!(spread(&samples), "80 ms (70 ms–90 ms)");
    }
}
