//! `regcreds run` as a child process, the way a Deployment runs it: environment in, the admin endpoint
//! (probes, `/metrics`) on a free loopback port, the log in a file, SIGTERM to stop. Every e2e suite
//! that runs the controller uses this one wrapper; one-shot commands (`check`, `mint`, `cleanup`) use
//! [`regcreds_command`] directly.
//!
//! The process dies with the test process (`PR_SET_PDEATHSIG`, see `child.rs`) and is killed when its
//! handle is dropped (a failed assertion), so none outlives its test.

use std::{
    ffi::OsStr,
    fs::File,
    path::{Path, PathBuf},
    process::{Command, ExitStatus, Stdio},
    time::Duration,
};

use crate::{admin_get, child, free_port, metric_sum, regcreds_command, scrape, wait_for};

/// How long [`Regcreds::stop`] waits for a clean exit after SIGTERM.
const STOP_TIMEOUT: Duration = Duration::from_secs(30);

/// A running `regcreds run`, killed on drop.
pub struct Regcreds {
    child: std::process::Child,
    /// Admin endpoint port (`REGCREDS_ADMIN_ADDR=127.0.0.1:<port>`).
    pub admin_port: u16,
    /// Its stderr: the log.
    pub log: PathBuf,
}

impl Regcreds {
    /// The usual test instance: [`regcreds_command`] with leader election off and JSON logs, then `env`
    /// (which may override those two).
    pub fn spawn<K, V>(kubeconfig: &Path, env: &[(K, V)], log: PathBuf) -> Self
    where
        K: AsRef<OsStr>,
        V: AsRef<OsStr>,
    {
        let mut cmd = regcreds_command(kubeconfig);
        cmd.env("REGCREDS_LEADER_ELECTION", "false")
            .env("REGCREDS_LOG_FORMAT", "json")
            .envs(env.iter().map(|(k, v)| (k, v)));
        Self::start(cmd, log)
    }

    /// `cmd` (a [`regcreds_command`] with the test's variables, no arguments) as `regcreds run`, with
    /// its admin endpoint on a free port and stderr written to `log`.
    pub fn start(mut cmd: Command, log: PathBuf) -> Self {
        let admin_port = free_port();
        let stderr = File::create(&log).unwrap_or_else(|e| panic!("creating {}: {e}", log.display()));
        cmd.arg("run")
            .env("REGCREDS_ADMIN_ADDR", format!("127.0.0.1:{admin_port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr);
        let child = child::spawn_tied(cmd).expect("regcreds starts");
        Self {
            child,
            admin_port,
            log,
        }
    }

    /// The OS process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// `GET path` on the admin endpoint: (status, body), `None` while nothing answers.
    pub fn admin_get(&self, path: &str) -> Option<(u16, String)> {
        admin_get(self.admin_port, path)
    }

    /// `/readyz` status code.
    pub fn readyz(&self) -> Option<u16> {
        self.admin_get("/readyz").map(|(status, _)| status)
    }

    /// The `/metrics` text, if the admin endpoint answers.
    pub fn metrics(&self) -> Option<String> {
        scrape(self.admin_port)
    }

    /// [`metric_sum`] over a fresh scrape (0 if the endpoint does not answer).
    pub fn metric(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.metrics().map_or(0.0, |text| metric_sum(&text, name, labels))
    }

    /// The log so far.
    pub fn logs(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Whether the log so far contains `needle`.
    pub fn log_has(&self, needle: &str) -> bool {
        self.logs().contains(needle)
    }

    /// Waits until the log contains `needle`.
    pub async fn wait_log(&self, needle: &str, timeout: Duration) {
        wait_for(&format!("log line {needle:?}"), timeout, || async {
            self.log_has(needle).then_some(())
        })
        .await;
    }

    /// Whether it has exited (and how).
    pub fn exited(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// Sends SIGTERM (a pod's deletion), without waiting.
    pub fn terminate(&self) {
        child::send_sigterm(self.pid());
    }

    /// Waits (<= `timeout`, else panics) for it to exit.
    pub async fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
        wait_for("regcreds to exit", timeout, || {
            let exited = self.child.try_wait().ok().flatten();
            async move { exited }
        })
        .await
    }

    /// SIGTERM, then waits (<= 30 s) for it to exit.
    pub async fn stop(mut self) -> ExitStatus {
        self.terminate();
        self.wait_exit(STOP_TIMEOUT).await
    }

    /// SIGKILL and reap: the process dies without shutting down (a node failure).
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Regcreds {
    fn drop(&mut self) {
        self.kill();
    }
}
