//! Child processes that cannot outlive the process that started them.
//!
//! Every control-plane process is forked with `prctl(PR_SET_PDEATHSIG, SIGKILL)`, so the kernel kills
//! it when its parent dies — normal exit, panic, `process::exit` from the test harness, or `kill -9`.
//! The death signal fires when the *thread* that forked the child exits, not the process, and the test
//! harness runs each test on its own short-lived thread. So all forks happen on one dedicated spawner
//! thread that lives as long as the process.
//!
//! The temporary directory of a control plane is removed by its `Drop`, and otherwise (the process was
//! killed, or the shared control plane lives in a `static` that is never dropped) by a janitor: a tiny
//! `sh` loop that waits for this process to disappear and then deletes the directory. It ignores
//! SIGINT/SIGTERM/SIGHUP so a Ctrl-C to the terminal's process group does not stop it before it cleans.
//! The control-plane processes themselves get their own process group, so a Ctrl-C reaches only us.

use std::{
    fs::File,
    io,
    path::{Path, PathBuf},
    process::{Command, ExitStatus, Stdio},
    sync::{OnceLock, mpsc},
    time::{Duration, Instant},
};

use anyhow::{Context, Result};

/// A request to the spawner thread: the command and where to send the spawned child.
type SpawnJob = (Command, mpsc::Sender<io::Result<std::process::Child>>);

/// A running control-plane process whose output goes to a log file.
#[derive(Debug)]
pub(crate) struct Child {
    name: &'static str,
    inner: std::process::Child,
    log: PathBuf,
}

impl Child {
    /// Starts `cmd` with stdout and stderr appended to `log`; it dies with this process.
    pub(crate) fn spawn(name: &'static str, mut cmd: Command, log: &Path) -> Result<Self> {
        let file = File::options().create(true).append(true).open(log)?;
        cmd.stdin(Stdio::null()).stdout(file.try_clone()?).stderr(file);
        // Own process group: a Ctrl-C in the terminal reaches only us, and we stop the children in
        // order (controller manager, apiserver, etcd) instead of all of them racing to exit.
        std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
        die_with_parent(&mut cmd);
        let inner = spawn_on_spawner_thread(cmd).with_context(|| format!("starting {name}"))?;
        Ok(Self {
            name,
            inner,
            log: log.to_path_buf(),
        })
    }

    /// The program's short name, e.g. `kube-apiserver`.
    pub(crate) fn name(&self) -> &'static str {
        self.name
    }

    /// The OS process id.
    pub(crate) fn pid(&self) -> u32 {
        self.inner.id()
    }

    /// The log file the process writes to.
    pub(crate) fn log(&self) -> &Path {
        &self.log
    }

    /// `Some(status)` if the process has exited.
    pub(crate) fn exited(&mut self) -> Option<ExitStatus> {
        self.inner.try_wait().ok().flatten()
    }

    /// SIGTERM, up to `grace` for a clean exit, then SIGKILL; always reaps the process.
    pub(crate) fn stop(&mut self, grace: Duration) {
        if self.exited().is_some() {
            return;
        }
        if !grace.is_zero() {
            send_sigterm(self.pid());
            let deadline = Instant::now() + grace;
            while Instant::now() < deadline {
                if self.exited().is_some() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        let _ = self.inner.kill();
        let _ = self.inner.wait();
    }

    /// The last `lines` lines of the log, for startup-failure messages.
    pub(crate) fn log_tail(&self, lines: usize) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        self.stop(Duration::ZERO);
    }
}

/// Spawns `cmd` with inherited stdio, killed by the kernel when this process dies (see the module docs).
pub(crate) fn spawn_tied(mut cmd: Command) -> io::Result<std::process::Child> {
    die_with_parent(&mut cmd);
    spawn_on_spawner_thread(cmd)
}

/// Starts the janitor that deletes `dir` once this process is gone (see the module docs).
pub(crate) fn spawn_janitor(dir: &Path) -> io::Result<std::process::Child> {
    const SCRIPT: &str = r#"trap '' INT TERM HUP
while kill -0 "$1" 2>/dev/null; do sleep 1; done
rm -rf -- "$2" 2>/dev/null || { sleep 1; rm -rf -- "$2"; }"#;
    Command::new("sh")
        .args(["-c", SCRIPT, "regcreds-testkit-janitor"])
        .arg(std::process::id().to_string())
        .arg(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
}

/// Forks `cmd` on the process-lifetime spawner thread, so the death signal is tied to the process.
fn spawn_on_spawner_thread(cmd: Command) -> io::Result<std::process::Child> {
    static SPAWNER: OnceLock<mpsc::Sender<SpawnJob>> = OnceLock::new();
    let spawner = SPAWNER.get_or_init(|| {
        let (tx, rx) = mpsc::channel::<SpawnJob>();
        std::thread::Builder::new()
            .name("regcreds-testkit-spawner".into())
            .spawn(move || {
                for (mut cmd, reply) in rx {
                    let _ = reply.send(cmd.spawn());
                }
            })
            .expect("spawning the process-spawner thread");
        tx
    });
    let (reply, result) = mpsc::channel();
    spawner
        .send((cmd, reply))
        .map_err(|_| io::Error::other("spawner thread is gone"))?;
    result
        .recv()
        .map_err(|_| io::Error::other("spawner thread is gone"))?
}

/// Makes the kernel SIGKILL the child when the forking thread (the spawner) dies.
#[allow(unsafe_code)]
fn die_with_parent(cmd: &mut Command) {
    use std::os::unix::process::CommandExt;
    let parent = std::process::id();
    // SAFETY: the hook runs between fork and exec and calls only async-signal-safe functions
    // (prctl, getppid); it allocates nothing.
    unsafe {
        cmd.pre_exec(move || {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                return Err(io::Error::last_os_error());
            }
            // The parent may have died between fork and prctl; then nobody would send the signal.
            if libc::getppid() as u32 != parent {
                return Err(io::Error::other("parent exited during spawn"));
            }
            Ok(())
        });
    }
}

/// Asks `pid` to shut down cleanly.
#[allow(unsafe_code)]
pub(crate) fn send_sigterm(pid: u32) {
    // SAFETY: plain syscall on a pid we own and have not reaped yet, so it cannot be reused.
    unsafe {
        libc::kill(pid as libc::pid_t, libc::SIGTERM);
    }
}
