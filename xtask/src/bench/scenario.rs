//! One namespace count, start to finish, on its own control plane.
//!
//! ```text
//!  control plane ─► watches (Observer) ─► N namespaces set=regcreds ─► their `default` SAs exist
//!    ─► the control plane is quiet ─► 10 s background rate ─► start regcreds ─► all N ready
//!    ─► 5 s settle ─► steady window (60 s)
//!    ─► rotations, regcreds and the floor taking turns on the N namespaces (scenario/rotation.rs)
//!    ─► 200 × (create namespace ─► ready) ─► SIGTERM
//!    ─► N namespaces set=floor ─► their SAs exist ─► quiet ─► floor: apply + reference
//! ```
//!
//! regcreds is stopped before the floor's initial writes, so the floor has the machine to itself and
//! regcreds' namespace selector (`regcreds-bench/set=regcreds`) keeps it away from the floor's
//! namespaces anyway.

mod rotation;

use std::{
    future::Future,
    path::{Path, PathBuf},
    time::{Duration, SystemTime},
};

use anyhow::{Context, Result};
use kube::Client;
use regcreds_testkit::{ControlPlane, ControlPlaneOptions, counting_client};
use tokio::time::Instant;

use self::rotation::FloorRotations;
use super::{
    cluster::{self, Rate, ReadsWrites, Requests, SET_LABEL},
    floor,
    machine::Machine,
    observer::{Marker, Observer, Side, Timeline, Timelines, rotations},
    process::{Launch, Regcreds, proc_usage},
    progress,
    report::{Floor, Initial, Latency, Results, RotationSample, Steady},
    stats::Percentiles,
};

/// Quiet window before regcreds starts, to measure the background request rate.
const BACKGROUND_WINDOW: Duration = Duration::from_secs(10);
/// After convergence, before counting requests and the steady window: trailing no-op reconciles.
const SETTLE: Duration = Duration::from_secs(5);
/// One new-namespace sample.
const SAMPLE_TIMEOUT: Duration = Duration::from_secs(30);
/// The control plane counts as quiet once its processes use less than this share of one core...
const QUIET_CPU: f64 = 0.15;
/// ...over this long.
const QUIET_WINDOW: Duration = Duration::from_secs(2);
/// regcreds' own namespace (its Lease lives there; it never writes pull secrets into it).
const SYSTEM_NAMESPACE: &str = "regcreds-bench-system";

/// What every namespace count shares.
pub struct Settings {
    pub binary: PathBuf,
    pub concurrency: u16,
    pub samples: usize,
    pub steady: Duration,
    /// `target/bench`; each count gets `n<N>/` with regcreds' log and config file.
    pub out_dir: PathBuf,
    /// How the control plane is started (a controller manager fast enough for thousands of namespaces).
    pub control_plane: ControlPlaneOptions,
}

/// Runs every phase for `n` namespaces; fills in `machine.kubernetes` from the control plane.
pub async fn run(n: usize, settings: &Settings, machine: &mut Machine) -> Result<Results> {
    let load = super::machine::load_1min();
    let dir = settings.out_dir.join(format!("n{n}"));
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    progress(&format!("N={n}: starting a fresh control plane"));
    let cp = ControlPlane::start_with(settings.control_plane).await?;
    let client = cp.client();
    machine.kubernetes = client.apiserver_version().await?.git_version;
    let observer = Observer::start(&client).await?;
    let bench = Bench {
        n,
        settings,
        cp: &cp,
        client,
        observer,
        dir,
    };
    let results = bench.run().await;
    cp.shutdown(Duration::from_secs(5));
    results.map(|r| Results {
        load: (load, super::machine::load_1min()),
        ..r
    })
}

/// One namespace count's shared state.
struct Bench<'a> {
    n: usize,
    settings: &'a Settings,
    cp: &'a ControlPlane,
    client: Client,
    observer: Observer,
    dir: PathBuf,
}

impl Bench<'_> {
    async fn run(&self) -> Result<Results> {
        cluster::create_namespace(&self.client, SYSTEM_NAMESPACE, "system").await?;
        let (set, setup) = self.namespaces("bench-r", "regcreds").await?;
        self.say("measuring the background request rate for 10 s");
        let background = Rate::measure(self.cp, BACKGROUND_WINDOW).await?;
        let (mut regcreds, initial) = self.converge(&set, &background).await?;
        let steady = self.steady(&regcreds).await?;
        let (floor_client, _) = counting_client(self.cp.kubeconfig_path()).await?;
        guard(&mut regcreds, self.seed_floor(&floor_client, &set)).await?;
        let pid = regcreds.pid();
        let rotated = self.rotate_both(&set, &floor_client, pid, &background);
        let (rotation, floor_rotations) = guard(&mut regcreds, rotated).await?;
        let latency = guard(&mut regcreds, self.latency()).await?;
        let usage = regcreds.stop()?;
        let floor = self.floor(&background, floor_rotations).await?;
        Ok(Results {
            namespaces: self.n,
            setup,
            initial,
            steady,
            rotation,
            latency,
            usage,
            floor,
            load: (0.0, 0.0),
        })
    }

    fn say(&self, message: &str) {
        progress(&format!("N={}: {message}", self.n));
    }

    /// Rotations per side at this namespace count.
    fn rotations(&self) -> usize {
        rotations(self.n)
    }

    /// Creates `n` namespaces in `set` and waits until kube-controller-manager gave each its `default`.
    /// Returns them and how long that took (setup, not part of any measurement).
    async fn namespaces(&self, prefix: &str, set: &str) -> Result<(Vec<String>, Duration)> {
        let started = Instant::now();
        let names = cluster::names(prefix, self.n);
        let label = format!("N={} ({set})", self.n);
        cluster::create_namespaces(&self.client, &names, set, &label).await?;
        let waiting = format!("{label}: default ServiceAccounts (kube-controller-manager)");
        let timeout = bound(self.n, 60, 250);
        self.observer
            .wait_count(&waiting, names.len(), timeout, |t| {
                count(t, &names, |tl| tl.account)
            })
            .await?;
        self.wait_quiet(bound(self.n, 30, 10)).await;
        let setup = started.elapsed();
        self.say(&format!("setup ({set}): {}", super::stats::dur(setup)));
        Ok((names, setup))
    }

    /// Waits (at most `timeout`) until the control plane uses less than [`QUIET_CPU`] of a core over
    /// [`QUIET_WINDOW`].
    ///
    /// Why: new namespaces keep kube-controller-manager busy after the last `default` ServiceAccount
    /// exists (each namespace's `kube-root-ca.crt` ConfigMap, its garbage collector's graph): at 10,000
    /// namespaces the control plane still used 0.6 of a core for the next 2 to 4 s. regcreds' initial
    /// convergence came after the 10 s background window, but the floor's started at once and shared
    /// the apiserver with that work, which flattered regcreds.
    async fn wait_quiet(&self, timeout: Duration) {
        let started = Instant::now();
        loop {
            let before = control_plane_cpu(self.cp);
            tokio::time::sleep(QUIET_WINDOW).await;
            let busy =
                control_plane_cpu(self.cp).saturating_sub(before).as_secs_f64() / QUIET_WINDOW.as_secs_f64();
            let waited = super::stats::dur(started.elapsed());
            if busy < QUIET_CPU {
                self.say(&format!("control plane quiet ({busy:.2} cores) after {waited}"));
                return;
            }
            if started.elapsed() > timeout {
                self.say(&format!(
                    "WARNING: control plane still busy ({busy:.2} cores) after {waited}; measuring anyway"
                ));
                return;
            }
            self.say(&format!("control plane busy ({busy:.2} cores), waiting"));
        }
    }

    /// Starts regcreds over the existing `set` and waits until every namespace is ready.
    async fn converge(&self, set: &[String], background: &Rate) -> Result<(Regcreds, Initial)> {
        let config = self.dir.join("dockerconfig.json");
        write_dockerconfig(&config, Marker::initial(Side::Regcreds))?;
        let before = Requests::now(self.cp).await?;
        let counted_from = Instant::now();
        let control_plane_before = control_plane_cpu(self.cp);
        let selector = format!("{SET_LABEL}=regcreds");
        let mut regcreds = Regcreds::spawn(&Launch {
            binary: &self.settings.binary,
            kubeconfig: self.cp.kubeconfig_path(),
            dockerconfig: &config,
            system_namespace: SYSTEM_NAMESPACE,
            selector: &selector,
            concurrency: self.settings.concurrency,
            log: &regcreds_log(&self.dir),
        })?;
        self.say("regcreds started");
        let label = format!("N={}: regcreds converging", self.n);
        let waiting = self
            .observer
            .wait_count(&label, set.len(), bound(self.n, 120, 100), |t| {
                count(t, set, |tl| tl.ready(Marker::initial(Side::Regcreds)))
            });
        // Not converging is a result, not a reason to stop: the table says so and the run goes on.
        let incomplete = guard(&mut regcreds, async { Ok(waiting.await.err()) }).await?;
        if let Some(incomplete) = &incomplete {
            self.say(&format!(
                "WARNING: {incomplete}; see {}",
                regcreds_log(&self.dir).display()
            ));
        }
        let cpu = regcreds.usage()?.cpu;
        let control_plane = control_plane_cpu(self.cp).saturating_sub(control_plane_before);
        let (total, startup) = self.observer.read(|t| {
            let last = latest(t, set, |tl| tl.ready(Marker::initial(Side::Regcreds)));
            let first = earliest(t, set, |tl| tl.first_secret(Side::Regcreds));
            (since(regcreds.started, last), since(regcreds.started, first))
        });
        self.say(&format!(
            "last namespace ready after {}",
            super::stats::dur(total)
        ));
        tokio::time::sleep(SETTLE).await;
        let requests = Requests::now(self.cp)
            .await?
            .since(&before)
            .minus(background, counted_from.elapsed())
            .per(self.n as f64);
        let own_writes = regcreds.counters().await?.writes() / self.n as f64;
        let initial = Initial {
            total,
            incomplete,
            startup,
            requests,
            background: background.0.totals(),
            own_writes,
            cpu,
            control_plane,
        };
        Ok((regcreds, initial))
    }

    /// Nothing changes for the window: counts writes (regcreds' and the apiserver's) and mints.
    async fn steady(&self, regcreds: &Regcreds) -> Result<Steady> {
        let window = self.settings.steady;
        self.say(&format!("steady state for {}s", window.as_secs()));
        // The schedule fires on whole seconds: reading the counters half-way between two ticks makes a
        // window of whole seconds hold exactly that many ticks.
        sleep_to_half_second().await;
        let started = Instant::now();
        let (counters, writes, cpu) = (
            regcreds.counters().await?,
            cluster::steady_writes(self.cp).await?,
            regcreds.usage()?.cpu,
        );
        tokio::time::sleep_until(started + window).await;
        let (counters_after, writes_after, cpu_after) = (
            regcreds.counters().await?,
            cluster::steady_writes(self.cp).await?,
            regcreds.usage()?.cpu,
        );
        Ok(Steady {
            window: started.elapsed(),
            own_writes: counters_after.writes() - counters.writes(),
            apiserver_writes: writes_after - writes,
            mints: counters_after.mints - counters.mints,
            ticks: window.as_secs(),
            cpu: cpu_after.saturating_sub(cpu),
        })
    }

    /// One rewrite, to credentials holding `marker`, until every Secret holds them.
    async fn rotate_once(&self, set: &[String], log: &Path, marker: Marker) -> Result<RotationSample> {
        self.say(&format!("rotating: rewriting the dockerconfigjson ({marker})"));
        let (rewritten, rewritten_wall) = (Instant::now(), SystemTime::now());
        write_dockerconfig(&self.dir.join("dockerconfig.json"), marker)?;
        let label = format!("N={}: rotation to {marker}", self.n);
        self.observer
            .wait_count(&label, set.len(), bound(self.n, 120, 100), |t| {
                count(t, set, |tl| tl.secret_with(marker))
            })
            .await?;
        let total = self
            .observer
            .read(|t| since(rewritten, latest(t, set, |tl| tl.secret_with(marker))));
        let detection = mint_logged_after(log, rewritten_wall)
            .and_then(|minted| minted.duration_since(rewritten_wall).ok());
        let sample = RotationSample { total, detection };
        let fan_out = super::stats::dur(sample.fan_out());
        self.say(&format!(
            "rotated in {} (fan-out {fan_out})",
            super::stats::dur(total)
        ));
        Ok(sample)
    }

    /// Creates namespaces one at a time and times each until it is ready.
    async fn latency(&self) -> Result<Latency> {
        // New namespaces get the credentials of the last rotation.
        let current = Marker::rotated(Side::Regcreds, self.rotations() - 1);
        let (mut ready, mut account, mut timeouts) = (Vec::new(), Vec::new(), 0);
        for i in 0..self.settings.samples {
            let name = format!("bench-l-{i:04}");
            let created = Instant::now();
            cluster::create_namespace(&self.client, &name, "regcreds").await?;
            let label = format!("N={}: new namespace {name}", self.n);
            let names = std::slice::from_ref(&name);
            let waiting = self.observer.wait_count(&label, 1, SAMPLE_TIMEOUT, |t| {
                count(t, names, |tl| tl.account.and(tl.ready(current)))
            });
            if waiting.await.is_err() {
                timeouts += 1;
                continue;
            }
            self.observer.read(|t| {
                let tl = &t[&name];
                ready.extend(tl.ready(current).map(|at| at - created));
                account.extend(tl.account.map(|at| at - created));
            });
            if (i + 1) % 50 == 0 {
                self.say(&format!(
                    "new-namespace latency {}/{}",
                    i + 1,
                    self.settings.samples
                ));
            }
        }
        Ok(Latency {
            ready: Percentiles::of(&ready),
            account: Percentiles::of(&account),
            timeouts,
        })
    }

    /// The same initial writes by a bare client on a fresh set of namespaces; its `rotations` were
    /// measured before, in turns with regcreds'.
    async fn floor(&self, background: &Rate, rotations: FloorRotations) -> Result<Floor> {
        let (set, setup) = self.namespaces("bench-f", "floor").await?;
        let (client, counter) = counting_client(self.cp.kubeconfig_path()).await?;
        let concurrency = usize::from(self.settings.concurrency);
        let cpu_before = proc_usage(std::process::id())?.cpu;
        self.say("floor: applying Secrets and updating ServiceAccounts");
        let v1 = document(Marker::initial(Side::Floor));
        let before = Requests::now(self.cp).await?;
        let control_plane_before = control_plane_cpu(self.cp);
        let started = Instant::now();
        let writes = floor::propagate(&client, &set, v1.as_bytes(), concurrency);
        bounded(self.n, writes).await?;
        let requests = ReadsWrites {
            reads: counter.reads() as f64 / self.n as f64,
            writes: counter.writes() as f64 / self.n as f64,
        };
        let initial = self
            .wait_floor(&set, started, Marker::initial(Side::Floor), |tl| {
                tl.ready(Marker::initial(Side::Floor))
            })
            .await?;
        let control_plane = control_plane_cpu(self.cp).saturating_sub(control_plane_before);
        let apiserver = self.requests_since(&before, background, started).await?;
        let client_cpu = proc_usage(std::process::id())?.cpu.saturating_sub(cpu_before);
        Ok(Floor {
            setup,
            initial,
            rotations: rotations.samples,
            requests,
            apiserver,
            rotation_requests: rotations.requests,
            control_plane,
            rotation_control_plane: rotations.control_plane,
            client_cpu: client_cpu + rotations.cpu,
        })
    }

    /// apiserver requests per namespace since `before` (taken at `started`), background subtracted.
    async fn requests_since(
        &self,
        before: &Requests,
        background: &Rate,
        started: Instant,
    ) -> Result<Requests> {
        Ok(Requests::now(self.cp)
            .await?
            .since(before)
            .minus(background, started.elapsed())
            .per(self.n as f64))
    }

    /// Waits until the observer saw `done` in every namespace of `set`; the time from `started`.
    async fn wait_floor(
        &self,
        set: &[String],
        started: Instant,
        version: Marker,
        done: impl Fn(&Timeline) -> Option<Instant> + Copy,
    ) -> Result<Duration> {
        let label = format!("N={}: floor {version} observed", self.n);
        self.observer
            .wait_count(&label, set.len(), bound(self.n, 60, 10), |t| count(t, set, done))
            .await?;
        Ok(self.observer.read(|t| since(started, latest(t, set, done))))
    }
}

/// CPU time used so far by the control plane's processes (kube-apiserver, etcd, controller manager).
fn control_plane_cpu(cp: &ControlPlane) -> Duration {
    cp.processes()
        .iter()
        .filter_map(|(_, pid, _)| proc_usage(*pid).ok())
        .map(|usage| usage.cpu)
        .sum()
}

/// Runs `work`, failing early (with regcreds' log tail) if regcreds exits meanwhile.
async fn guard<T>(regcreds: &mut Regcreds, work: impl Future<Output = Result<T>>) -> Result<T> {
    let exited = async {
        loop {
            tokio::time::sleep(Duration::from_millis(500)).await;
            regcreds.check_running()?;
        }
    };
    tokio::select! {
        result = work => result,
        error = exited => error,
    }
}

/// The floor client's work, with the same time bound regcreds gets.
async fn bounded(namespaces: usize, work: impl Future<Output = Result<()>>) -> Result<()> {
    tokio::time::timeout(bound(namespaces, 120, 100), work)
        .await
        .context("the floor client timed out")?
}

/// Namespaces of `names` for which `at` has happened.
fn count(t: &Timelines, names: &[String], at: impl Fn(&Timeline) -> Option<Instant>) -> usize {
    names.iter().filter(|n| t.get(*n).and_then(&at).is_some()).count()
}

fn latest(t: &Timelines, names: &[String], at: impl Fn(&Timeline) -> Option<Instant>) -> Option<Instant> {
    names.iter().filter_map(|n| t.get(n).and_then(&at)).max()
}

fn earliest(t: &Timelines, names: &[String], at: impl Fn(&Timeline) -> Option<Instant>) -> Option<Instant> {
    names.iter().filter_map(|n| t.get(n).and_then(&at)).min()
}

fn since(start: Instant, end: Option<Instant>) -> Duration {
    end.map_or(Duration::ZERO, |end| end.saturating_duration_since(start))
}

/// A timeout of `base_secs` plus `per_namespace_ms` for each namespace.
fn bound(namespaces: usize, base_secs: u64, per_namespace_ms: u64) -> Duration {
    Duration::from_secs(base_secs) + Duration::from_millis(per_namespace_ms * namespaces as u64)
}

fn regcreds_log(dir: &Path) -> PathBuf {
    dir.join("regcreds.log")
}

/// Sleeps until the wall clock is half-way through a second.
async fn sleep_to_half_second() {
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default();
    let into_second = Duration::from_nanos(u64::from(now.subsec_nanos()));
    let half = Duration::from_millis(500);
    let wait = if into_second <= half {
        half - into_second
    } else {
        Duration::from_secs(1) + half - into_second
    };
    tokio::time::sleep(wait).await;
}

/// A one-registry dockerconfigjson whose password is `marker`.
///
/// The registry is a loopback port where nothing listens: regcreds checks each new credential against
/// its registry, and that check should fail fast and stay on this machine.
fn document(marker: Marker) -> String {
    format!(r#"{{"auths":{{"127.0.0.1:9":{{"username":"puller","password":"{marker}"}}}}}}"#)
}

/// Replaces the file atomically (write, then rename), so regcreds never reads half a document.
fn write_dockerconfig(path: &Path, marker: Marker) -> Result<()> {
    let partial = path.with_extension("tmp");
    std::fs::write(&partial, document(marker)).with_context(|| format!("writing {}", partial.display()))?;
    std::fs::rename(&partial, path).with_context(|| format!("renaming to {}", path.display()))?;
    Ok(())
}

/// When regcreds logged "minted new credentials" at or after `after` (from its JSON log).
fn mint_logged_after(log: &Path, after: SystemTime) -> Option<SystemTime> {
    let text = std::fs::read_to_string(log).ok()?;
    text.lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter(|entry| entry["message"] == "minted new credentials")
        .filter_map(|entry| chrono::DateTime::parse_from_rfc3339(entry["timestamp"].as_str()?).ok())
        .map(SystemTime::from)
        .find(|at| *at >= after)
}
