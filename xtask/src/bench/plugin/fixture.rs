//! The local endpoints the plugins answer from: the test kit's Python fixtures (`tests/fixtures/`), started
//! the way the tests start them (`READY <port>` on stdout, exit when stdin closes), but returning errors
//! instead of panicking so that one missing fake costs its rows, not the section. And moto's own answer
//! time, without any plugin process: one GetAuthorizationToken over a fresh connection.

use std::{
    ffi::OsString,
    io::{BufRead, BufReader, Read, Write},
    net::TcpStream,
    path::{Path, PathBuf},
    process::{Child, ChildStdin, Command, Stdio},
    sync::mpsc,
    time::{Duration, Instant},
};

use anyhow::{Context, Result, bail};
use regcreds_testkit::binaries::{PYTHON_ENV, venv_dir};

use crate::shell::repo_root;

/// How long a fixture may take to print `READY <port>` (moto imports for a few seconds).
const READY_TIMEOUT: Duration = Duration::from_secs(60);

/// A running fixture; stopped on drop (its stdin closes, and it is killed).
pub struct Fixture {
    child: Child,
    _stdin: ChildStdin,
    /// The loopback port it listens on.
    pub port: u16,
}

impl Fixture {
    /// `python tests/fixtures/<script> <args>` with `env`; stderr goes to `stderr` (a file: a server
    /// writing to an unread pipe stalls once it is full).
    pub fn start(script: &str, args: &[OsString], env: &[(&str, OsString)], stderr: &Path) -> Result<Self> {
        let python = python()?;
        let script = repo_root().join("tests/fixtures").join(script);
        let stderr_file =
            std::fs::File::create(stderr).with_context(|| format!("creating {}", stderr.display()))?;
        let mut child = Command::new(&python)
            .arg(&script)
            .args(args)
            .envs(env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(stderr_file)
            .spawn()
            .with_context(|| format!("starting {} {}", python.display(), script.display()))?;
        let stdin = child.stdin.take().context("fixture stdin")?;
        let stdout = child.stdout.take().context("fixture stdout")?;
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            let _ = tx.send(line);
        });
        let line = rx.recv_timeout(READY_TIMEOUT).unwrap_or_default();
        match ready_port(&line) {
            Some(port) => Ok(Self {
                child,
                _stdin: stdin,
                port,
            }),
            None => {
                let _ = child.kill();
                let _ = child.wait();
                let log = std::fs::read_to_string(stderr).unwrap_or_default();
                bail!(
                    "{} did not print READY within {READY_TIMEOUT:?} (test deps missing? run \
                     xtask/scripts/setup-test-deps.sh):\n{}",
                    script.display(),
                    log.trim_end()
                )
            }
        }
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `python tests/fixtures/<script> <args>` to completion (e.g. `fake_cloud.py genkey DIR`).
pub fn run_script(script: &str, args: &[OsString]) -> Result<()> {
    let python = python()?;
    let output = Command::new(&python)
        .arg(repo_root().join("tests/fixtures").join(script))
        .args(args)
        .output()
        .with_context(|| format!("running {} {script}", python.display()))?;
    if !output.status.success() {
        bail!(
            "{script} failed ({}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim_end()
        );
    }
    Ok(())
}

/// The test venv's Python: `$REGCREDS_PYTHON`, else `~/.cache/regcreds/venv/bin/python`.
fn python() -> Result<PathBuf> {
    let python = std::env::var_os(PYTHON_ENV).map_or_else(|| venv_dir().join("bin/python"), PathBuf::from);
    if !python.exists() {
        bail!(
            "{} does not exist: run xtask/scripts/setup-test-deps.sh or set ${PYTHON_ENV}",
            python.display()
        );
    }
    Ok(python)
}

/// The port of a fixture's `READY <port>` line.
fn ready_port(line: &str) -> Option<u16> {
    line.trim().strip_prefix("READY ")?.parse().ok()
}

/// The GetAuthorizationToken both ECR plugins send, as moto needs it: the service and region come from
/// the SigV4 credential scope, whose signature moto does not check.
fn get_authorization_token(port: u16) -> String {
    let body = "{}";
    format!(
        "POST / HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\
         Content-Type: application/x-amz-json-1.1\r\n\
         X-Amz-Target: AmazonEC2ContainerRegistry_V20150921.GetAuthorizationToken\r\n\
         Authorization: AWS4-HMAC-SHA256 Credential=AKIDTESTING/20260101/us-east-1/ecr/aws4_request, \
         SignedHeaders=host, Signature=0\r\n\
         Content-Length: {}\r\n\r\n{body}",
        body.len()
    )
}

/// One GetAuthorizationToken on a new connection to moto, timed from connect to the last byte of the
/// answer's body (which must be a 200 with `authorizationData`). Like the plugins' HTTP clients, it
/// reads `Content-Length` bytes and hangs up, rather than asking the server to close and waiting for it.
pub fn moto_round_trip(port: u16) -> Result<Duration> {
    let started = Instant::now();
    let mut stream = TcpStream::connect(("127.0.0.1", port)).context("connecting to moto")?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    stream.write_all(get_authorization_token(port).as_bytes())?;
    let mut received = Vec::new();
    let mut chunk = [0; 8192];
    while response_length(&received).is_none_or(|total| received.len() < total) {
        let n = stream.read(&mut chunk).context("reading moto's answer")?;
        if n == 0 {
            break;
        }
        received.extend_from_slice(&chunk[..n]);
    }
    let elapsed = started.elapsed();
    let answer = String::from_utf8_lossy(&received);
    if !(answer.starts_with("HTTP/1.1 200") && answer.contains("authorizationData")) {
        bail!(
            "moto answered GetAuthorizationToken with: {}",
            answer.lines().next().unwrap_or("nothing")
        );
    }
    Ok(elapsed)
}

/// The length of a whole HTTP/1.1 response (head and `Content-Length` body), once its head has arrived.
fn response_length(received: &[u8]) -> Option<usize> {
    let head_end = received.windows(4).position(|w| w == b"\r\n\r\n")? + 4;
    let head = String::from_utf8_lossy(&received[..head_end]);
    let body = head.lines().find_map(|line| {
        let (name, value) = line.split_once(':')?;
        name.eq_ignore_ascii_case("content-length")
            .then(|| value.trim().parse::<usize>().ok())?
    })?;
    Some(head_end + body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_port_of_the_ready_line() {
        assert_eq!(ready_port("READY 5000\n"), Some(5000));
        assert_eq!(ready_port("Traceback (most recent call last):"), None);
        assert_eq!(ready_port(""), None);
    }

    #[test]
    fn a_response_is_complete_after_its_content_length() {
        let head = b"HTTP/1.1 200 OK\r\nServer: Werkzeug\r\ncontent-length: 5\r\n\r\n";
        assert_eq!(response_length(head), Some(head.len() + 5));
        assert_eq!(response_length(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n"), None);
        assert_eq!(
            response_length(b"HTTP/1.1 200 OK\r\n\r\n"),
            None,
            "no length: read to the end"
        );
    }

    #[test]
    fn the_raw_request_declares_its_body_length() {
        let request = get_authorization_token(5000);
        let (head, body) = request.split_once("\r\n\r\n").expect("head and body");
        assert!(head.contains("Content-Length: 2"), "{head}");
        assert_eq!(body, "{}");
        assert!(head.contains("/us-east-1/ecr/aws4_request"));
    }
}
