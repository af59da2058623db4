//! Starting `tests/fixtures/moto_ecr.py` for one test and reading what it saw.
//!
//! The fixture binds a free loopback port and prints `READY <port>`; it exits when its stdin closes, so
//! dropping [`Moto`] (or the test process dying) stops it. A missing Python or moto fails the test with
//! a hint: these tests must never pass by skipping.

#![allow(dead_code)]

use std::{
    io::{BufRead, BufReader},
    path::{Path, PathBuf},
    process::{Child, ChildStdin, Command, Stdio},
    sync::mpsc,
    time::Duration,
};

/// The Python interpreter with moto: `REGCREDS_PYTHON`, else the venv setup-test-deps.sh creates.
pub fn python() -> PathBuf {
    if let Some(path) = std::env::var_os("REGCREDS_PYTHON") {
        return PathBuf::from(path);
    }
    let home = std::env::var_os("HOME").expect("HOME is not set; set REGCREDS_PYTHON to a python with moto");
    let venv = Path::new(&home).join(".cache/regcreds/venv/bin/python");
    assert!(
        venv.exists(),
        "no test python at {}: run xtask/scripts/setup-test-deps.sh or set REGCREDS_PYTHON",
        venv.display()
    );
    venv
}

/// A running fixture with its request log.
pub struct Moto {
    child: Child,
    _stdin: ChildStdin,
    /// `http://127.0.0.1:<port>`.
    pub url: String,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

/// One logged request.
#[derive(Debug, Clone, serde::Deserialize)]
pub struct Request {
    /// `X-Amz-Target` (JSON protocols), empty for STS.
    pub target: String,
    /// `Action=` of a form body (STS), if any.
    pub action: Option<String>,
    /// Region of the SigV4 credential scope; `None` for unsigned calls.
    pub region: Option<String>,
    /// Access key ID that signed the request; `None` for unsigned calls.
    pub access_key_id: Option<String>,
    /// The raw body.
    pub body: String,
}

impl Moto {
    /// Starts the fixture with extra environment (`ECR_TOKEN_TTL`, `ECR_FAIL_REGIONS`, ...).
    pub fn start(env: &[(&str, &str)]) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let log = dir.path().join("requests.jsonl");
        // NB: a file, not a pipe: werkzeug logs every request to stderr and a full pipe would stall it.
        let stderr_path = dir.path().join("stderr.txt");
        let stderr = std::fs::File::create(&stderr_path).expect("stderr file");
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/moto_ecr.py");
        let python = python();
        let mut child = Command::new(&python)
            .arg(&script)
            .env("ECR_REQUEST_LOG", &log)
            .envs(env.iter().copied())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {} {}: {e}", python.display(), script.display()));
        let stdin = child.stdin.take().expect("stdin");
        let port = wait_ready(&mut child, &stderr_path);
        Self {
            child,
            _stdin: stdin,
            url: format!("http://127.0.0.1:{port}"),
            log,
            _dir: dir,
        }
    }

    /// Every request so far, in order.
    pub fn requests(&self) -> Vec<Request> {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        text.lines()
            .map(|line| serde_json::from_str(line).expect("log line"))
            .collect()
    }

    /// The ECR GetAuthorizationToken requests so far.
    pub fn ecr_token_requests(&self) -> Vec<Request> {
        self.requests()
            .into_iter()
            .filter(|r| r.target == "AmazonEC2ContainerRegistry_V20150921.GetAuthorizationToken")
            .collect()
    }
}

/// Reads `READY <port>`; on failure shows the fixture's stderr (e.g. "No module named moto").
fn wait_ready(child: &mut Child, stderr_path: &Path) -> u16 {
    let stdout = child.stdout.take().expect("stdout");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let _ = BufReader::new(stdout).read_line(&mut line);
        let _ = tx.send(line);
    });
    let line = rx.recv_timeout(Duration::from_secs(60)).unwrap_or_default();
    match line.trim().strip_prefix("READY ").and_then(|p| p.parse().ok()) {
        Some(port) => port,
        None => {
            let _ = child.kill();
            let _ = child.wait();
            let stderr = std::fs::read_to_string(stderr_path).unwrap_or_default();
            panic!(
                "moto fixture did not start (is moto installed? run xtask/scripts/setup-test-deps.sh):\n{stderr}"
            );
        }
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
