//! The patched moto ECR (and STS) server, `tests/fixtures/moto_ecr.py`: a child process that prints
//! `READY <port>` once listening and exits when its stdin closes (so a test that dies leaves nothing).

use std::{
    io::{BufRead, BufReader},
    net::IpAddr,
    path::Path,
    process::{Child, ChildStdin, Command, Stdio},
    time::Duration,
};

use crate::binaries;

/// A running moto; stopped on drop.
pub struct Moto {
    child: Child,
    _stdin: ChildStdin,
    host: IpAddr,
    /// Its port.
    pub port: u16,
}

impl Moto {
    /// Starts moto on 127.0.0.1:`port` (0 = any free port) with `env` (ECR_TOKEN_TTL, ECR_PASSWORD, ...).
    pub fn start(port: u16, env: &[(&str, &str)]) -> Self {
        Self::start_on([127, 0, 0, 1].into(), port, env)
    }

    /// Starts moto on `host`:`port` (a node test binds the node's address, which pods reach).
    /// Retries a few times: a port just released may still be busy for a moment.
    pub fn start_on(host: IpAddr, port: u16, env: &[(&str, &str)]) -> Self {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/moto_ecr.py");
        let mut last_error = String::new();
        for _ in 0..20 {
            let stderr = tempfile::NamedTempFile::new().expect("temp file");
            let mut child = Command::new(binaries::python())
                .arg(&script)
                .args(["--host", &host.to_string(), "--port", &port.to_string()])
                .envs(env.iter().copied())
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(stderr.reopen().expect("reopen"))
                .spawn()
                .expect("python starts");
            let stdin = child.stdin.take().expect("stdin");
            let mut line = String::new();
            let _ = BufReader::new(child.stdout.take().expect("stdout")).read_line(&mut line);
            if let Some(port) = line.trim().strip_prefix("READY ").and_then(|p| p.parse().ok()) {
                return Self {
                    child,
                    _stdin: stdin,
                    host,
                    port,
                };
            }
            let _ = child.kill();
            let _ = child.wait();
            last_error = std::fs::read_to_string(stderr.path()).unwrap_or_default();
            std::thread::sleep(Duration::from_millis(500));
        }
        panic!("moto did not start on {host}:{port}:\n{last_error}");
    }

    /// `http://<host>:<port>`.
    pub fn url(&self) -> String {
        format!("http://{}:{}", self.host, self.port)
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The environment that enables the ecr provider against moto on `url`.
pub fn ecr_env(url: &str) -> Vec<(&'static str, String)> {
    vec![
        ("REGCREDS_ECR_REGIONS", "us-east-1".into()),
        ("REGCREDS_ECR_ENDPOINT_URL", url.into()),
        ("REGCREDS_ECR_TIMEOUT_SECONDS", "5".into()),
        ("AWS_ACCESS_KEY_ID", "AKIDTESTING".into()),
        ("AWS_SECRET_ACCESS_KEY", "test-secret-key".into()),
        ("AWS_EC2_METADATA_DISABLED", "true".into()),
    ]
}
