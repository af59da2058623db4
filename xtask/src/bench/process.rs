//! regcreds as a child process: configured like a Deployment would be (environment only), observed
//! through its admin `/metrics` and `/proc/<pid>`, stopped with SIGTERM.

use std::{
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::Duration,
};

use anyhow::{Context, Result, bail};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
    time::Instant,
};

/// How long regcreds may take to exit after SIGTERM before it is killed.
const STOP_GRACE: Duration = Duration::from_secs(20);
/// One scrape of the admin endpoint.
const SCRAPE_TIMEOUT: Duration = Duration::from_secs(5);

/// What regcreds is told: everything the bench varies.
pub struct Launch<'a> {
    pub binary: &'a Path,
    pub kubeconfig: &'a Path,
    pub dockerconfig: &'a Path,
    /// regcreds' own namespace (holds its Lease).
    pub system_namespace: &'a str,
    pub selector: &'a str,
    pub concurrency: u16,
    pub log: &'a Path,
}

/// A running regcreds; killed if dropped without [`Regcreds::stop`].
pub struct Regcreds {
    child: Child,
    admin_port: u16,
    log: PathBuf,
    /// When it was spawned.
    pub started: Instant,
}

/// regcreds' own counters from `/metrics`.
#[derive(Debug, Clone, Copy, Default)]
pub struct Counters {
    /// `regcreds_secrets_written_total`, all actions.
    pub secret_writes: f64,
    /// `regcreds_serviceaccounts_written_total`.
    pub account_writes: f64,
    /// `regcreds_provider_mints_total`, all providers.
    pub mints: f64,
}

impl Counters {
    /// Secret plus ServiceAccount writes.
    pub fn writes(&self) -> f64 {
        self.secret_writes + self.account_writes
    }
}

/// Resource usage from `/proc/<pid>`.
#[derive(Debug, Clone, Copy, Default)]
pub struct Usage {
    /// Peak resident set (`VmHWM`), KiB.
    pub peak_rss_kib: u64,
    /// User plus system CPU time.
    pub cpu: Duration,
}

impl Regcreds {
    /// Starts `regcreds run` with a dockerconfigjson file re-read every second.
    pub fn spawn(launch: &Launch<'_>) -> Result<Self> {
        let [admin_port] = regcreds_testkit::free_ports()?;
        let log = std::fs::File::create(launch.log)
            .with_context(|| format!("creating {}", launch.log.display()))?;
        let child = Command::new(launch.binary)
            .arg("run")
            .env_clear()
            .env("KUBECONFIG", launch.kubeconfig)
            .env("REGCREDS_DOCKERCONFIGJSON_PATH", launch.dockerconfig)
            // Every second: a rewrite is noticed within 1 s, and 60 s of steady state are 60 refreshes.
            .env("REGCREDS_DOCKERCONFIGJSON_SCHEDULE", "*/1 * * * * *")
            .env("REGCREDS_ADMIN_ADDR", format!("127.0.0.1:{admin_port}"))
            .env("REGCREDS_NAMESPACE", launch.system_namespace)
            .env("REGCREDS_NAMESPACE_SELECTOR", launch.selector)
            .env("REGCREDS_CONCURRENCY", launch.concurrency.to_string())
            .env("REGCREDS_LOG_FORMAT", "json")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .with_context(|| format!("starting {}", launch.binary.display()))?;
        Ok(Self {
            child,
            admin_port,
            log: launch.log.to_path_buf(),
            started: Instant::now(),
        })
    }

    /// An error with the log tail if regcreds has exited.
    pub fn check_running(&mut self) -> Result<()> {
        if let Some(status) = self.child.try_wait()? {
            bail!("regcreds exited ({status}); log tail:\n{}", self.log_tail(20));
        }
        Ok(())
    }

    /// Its counters, scraped from the admin endpoint.
    pub async fn counters(&self) -> Result<Counters> {
        let text = tokio::time::timeout(SCRAPE_TIMEOUT, scrape(self.admin_port))
            .await
            .context("scraping regcreds' /metrics timed out")??;
        Ok(Counters {
            secret_writes: sum_metric(&text, "regcreds_secrets_written_total"),
            account_writes: sum_metric(&text, "regcreds_serviceaccounts_written_total"),
            mints: sum_metric(&text, "regcreds_provider_mints_total"),
        })
    }

    /// Its process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Peak RSS and CPU time so far.
    pub fn usage(&self) -> Result<Usage> {
        proc_usage(self.child.id())
    }

    /// SIGTERM, then up to 20 s for a clean exit (SIGKILL after); returns the final usage.
    pub fn stop(mut self) -> Result<Usage> {
        let usage = self.usage()?;
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = std::time::Instant::now() + STOP_GRACE;
        while std::time::Instant::now() < deadline {
            if self.child.try_wait()?.is_some() {
                return Ok(usage);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        eprintln!("[bench] regcreds did not exit within {STOP_GRACE:?} of SIGTERM; killing it");
        Ok(usage)
    }

    fn log_tail(&self, lines: usize) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }
}

impl Drop for Regcreds {
    fn drop(&mut self) {
        // After a clean stop this is a no-op; after an error it makes sure nothing outlives the bench.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `GET /metrics` over plain HTTP/1.1; the admin endpoint closes the connection after answering.
async fn scrape(port: u16) -> Result<String> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).await?;
    stream
        .write_all(b"GET /metrics HTTP/1.1\r\nhost: localhost\r\nconnection: close\r\n\r\n")
        .await?;
    let mut response = String::new();
    stream.read_to_string(&mut response).await?;
    match response.split_once("\r\n\r\n") {
        Some((head, body)) if head.starts_with("HTTP/1.1 200") => Ok(body.to_string()),
        _ => bail!(
            "unexpected /metrics response: {}",
            response.lines().next().unwrap_or("")
        ),
    }
}

/// Sum of every sample of `name` (any labels) in a Prometheus/OpenMetrics text exposition.
fn sum_metric(text: &str, name: &str) -> f64 {
    text.lines()
        .filter_map(|line| line.strip_prefix(name))
        .filter(|rest| rest.starts_with('{') || rest.starts_with(' '))
        .filter_map(|rest| rest.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// `VmHWM` from `/proc/<pid>/status` and utime + stime from `/proc/<pid>/stat`.
pub fn proc_usage(pid: u32) -> Result<Usage> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let peak_rss_kib = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .context("no VmHWM in /proc/<pid>/status")?;
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    Ok(Usage {
        peak_rss_kib,
        cpu: cpu_time(&stat).context("malformed /proc/<pid>/stat")?,
    })
}

/// utime + stime (fields 14 and 15) of a `/proc/<pid>/stat` line, at the usual 100 ticks per second.
fn cpu_time(stat: &str) -> Option<Duration> {
    stat_ticks(stat, 14, 15)
}

/// The CPU time (user + system) of this process's children that have been waited for: cutime + cstime,
/// fields 16 and 17 of `/proc/self/stat`. The kernel keeps the exact sum; only its reading is in ticks,
/// so the difference over many children is exact to a tick.
pub fn children_cpu() -> Option<Duration> {
    stat_ticks(&std::fs::read_to_string("/proc/self/stat").ok()?, 16, 17)
}

/// The sum of two tick fields (1-based, as proc(5) numbers them) of a `/proc/<pid>/stat` line.
fn stat_ticks(stat: &str, first: usize, second: usize) -> Option<Duration> {
    // The command name (field 2) may contain spaces and parentheses; fields after it are plain, the
    // first of them being field 3.
    let after_name = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    let field = |n: usize| fields.get(n.checked_sub(3)?)?.parse::<u64>().ok();
    let ticks = field(first)? + field(second)?;
    Some(Duration::from_millis(ticks * 1000 / CLOCK_TICKS_PER_SECOND))
}

/// `sysconf(_SC_CLK_TCK)`: 100 on every Linux architecture regcreds ships for (it is a kernel ABI constant
/// for user space, `USER_HZ`).
const CLOCK_TICKS_PER_SECOND: u64 = 100;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sums_metric_samples_across_labels_only_for_that_name() {
        let text = "# TYPE regcreds_secrets_written counter\n\
            regcreds_secrets_written_total{action=\"created\"} 2000\n\
            regcreds_secrets_written_total{action=\"updated\"} 5\n\
            regcreds_secrets_written_total_other 7\n\
            regcreds_serviceaccounts_written_total 2000\n# EOF\n";
        assert_eq!(sum_metric(text, "regcreds_secrets_written_total"), 2005.0);
        assert_eq!(sum_metric(text, "regcreds_serviceaccounts_written_total"), 2000.0);
        assert_eq!(sum_metric(text, "regcreds_provider_mints_total"), 0.0);
    }

    #[test]
    fn cpu_time_skips_a_command_name_with_spaces() {
        let stat = "42 (reg creds) S 1 42 42 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 8 0 1 2 3";
        assert_eq!(cpu_time(stat), Some(Duration::from_secs(3)));
    }

    #[test]
    fn childrens_cpu_time_is_cutime_plus_cstime() {
        let stat = "42 (reg creds) S 1 42 42 0 -1 4194560 100 0 0 0 250 50 120 30 20 0 8 0 1 2 3";
        assert_eq!(stat_ticks(stat, 16, 17), Some(Duration::from_millis(1500)));
        assert_eq!(stat_ticks("42 (x) S 1", 16, 17), None);
        assert!(children_cpu().is_some(), "this test's own /proc/self/stat");
    }
}
