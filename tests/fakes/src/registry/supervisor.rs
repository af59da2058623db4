//! The registry process, tied to the test process by a pipe.

use std::{
    path::Path,
    process::{Child, ChildStdin, Command, Stdio},
    time::{Duration, Instant},
};

/// Runs `docker-registry serve` under a tiny shell that kills it when its stdin closes.
///
/// Drop closes stdin explicitly; if the test process dies instead (panic=abort, SIGKILL, a killed
/// `cargo test`), the kernel closes the pipe and the same thing happens, so no registry outlives its
/// test. The shell then deletes the fixture directory too, which `TempDir` cannot do for a killed
/// process. (`PR_SET_PDEATHSIG` would need `unsafe` and fires when the spawning *thread* exits, which in
/// a test harness is too early.)
#[derive(Debug)]
pub(super) struct Supervisor {
    child: Child,
    stdin: Option<ChildStdin>,
}

impl Supervisor {
    const SCRIPT: &'static str = r#"docker-registry serve "$1" </dev/null >>"$2" 2>&1 &
pid=$!
cat >/dev/null
kill "$pid" 2>/dev/null
wait "$pid"
rm -rf "$3""#;

    pub(super) fn spawn(dir: &Path) -> Self {
        let mut child = Command::new("sh")
            .arg("-c")
            .arg(Self::SCRIPT)
            .arg("regcreds-registry")
            .arg(dir.join("config.yml"))
            .arg(dir.join("registry.log"))
            .arg(dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn sh for docker-registry");
        let stdin = child.stdin.take();
        Self { child, stdin }
    }

    pub(super) fn exited(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(Some(_)))
    }
}

impl Drop for Supervisor {
    fn drop(&mut self) {
        // EOF on the shell's stdin is what makes it kill the registry.
        drop(self.stdin.take());
        let deadline = Instant::now() + Duration::from_secs(5);
        while !self.exited() {
            if Instant::now() > deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}
