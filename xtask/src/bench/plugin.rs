//! `cargo xtask bench --sections plugin`: regcreds as the kubelet's image credential provider, against
//! cloud-provider-aws' `ecr-credential-provider` asking the same moto for the same token.
//!
//! ```text
//!  cases::peer ── cached build of k8s.io/cloud-provider-aws@v1.37.1 (xtask/scripts/ecr-credential-provider-build.sh)
//!  cases::World ── moto (ECR) over http and over https, the GitHub/Quay fake, on 127.0.0.1 (tests/fixtures;
//!                  each moto loads its ECR backend before it listens)
//!  for each round: for each case: spawn → request on stdin → stdout read, process exited  (timed)
//!                  then moto alone: one GetAuthorizationToken on a new connection (timed)
//!  table::render ──► the report's plugin section
//! ```
//!
//! What is timed is what the kubelet times: `kubelet_credential_provider_plugin_duration` is observed
//! around `cmd.Run()` (k8s.io/kubernetes v1.37.2, `pkg/credentialprovider/plugin/plugin.go`,
//! `execPlugin.runPlugin`): from starting the process, whose stdin holds the request, until it has
//! exited and its stdout and stderr are drained. The cases take turns, one answer each per round, so
//! that every plugin meets the same machine; the first round's answers are reported apart (cold).

mod cases;
mod fixture;
mod table;

use std::{
    io::Write,
    path::PathBuf,
    process::{Command, Output, Stdio},
    time::{Duration, Instant},
};

use anyhow::{Context, Result, bail};

use self::cases::{Case, Peer, World};
pub use self::{cases::Kind, table::render};
use super::{machine::load_1min, process::children_cpu, progress};

/// Options of the plugin section.
pub struct Settings {
    /// The regcreds release binary.
    pub regcreds: PathBuf,
    /// A prebuilt `ecr-credential-provider` instead of the cached build.
    pub peer: Option<PathBuf>,
    /// Answers per case.
    pub runs: usize,
    /// Scratch directory (servers' files, an empty HOME); removed afterwards.
    pub work_dir: PathBuf,
}

/// Everything the plugin section measured.
#[derive(Debug, Clone)]
pub struct Results {
    pub runs: usize,
    pub cases: Vec<Measured>,
    /// moto's own answer to the same GetAuthorizationToken on a new connection, without a plugin.
    pub moto: Vec<Duration>,
    pub peer: Option<Peer>,
    /// regcreds' binary size.
    pub regcreds_bytes: u64,
    /// What is missing and why (a server or the peer that did not start).
    pub notes: Vec<String>,
    /// 1-minute load average at the start and end of the section.
    pub load: (f64, f64),
}

/// One case's answers.
#[derive(Debug, Clone)]
pub struct Measured {
    pub kind: Kind,
    pub label: String,
    pub endpoint: &'static str,
    /// The first answer's wall time (`None` if it failed).
    pub cold: Option<Duration>,
    /// The other answers' wall times (failures left out).
    pub warm: Vec<Duration>,
    pub failures: usize,
    /// Exit status and stderr of the first failure.
    pub first_failure: Option<String>,
    /// Requests the endpoint logged during this case's execs, and how many execs that was (`None`:
    /// no endpoint).
    pub requests: Option<(usize, usize)>,
    /// User + system CPU of all this case's plugin processes.
    pub cpu: Duration,
    /// How many processes that CPU time is for.
    pub execs: usize,
    /// What the first good answer said.
    pub answer: Option<Answer>,
}

impl Measured {
    /// Answers that succeeded.
    pub fn answered(&self) -> usize {
        self.warm.len() + usize::from(self.cold.is_some())
    }
}

/// The parts of a CredentialProviderResponse the report shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    pub cache_key_type: String,
    /// `None`: absent, the CredentialProviderConfig's `defaultCacheDuration` applies.
    pub cache_duration: Option<String>,
    /// The `auth` map's keys.
    pub auth_keys: Vec<String>,
}

/// Runs the plugin section.
pub fn run(settings: &Settings) -> Result<Results> {
    let load_start = load_1min();
    let mut notes = Vec::new();
    let peer = match cases::peer(settings.peer.as_deref()) {
        Ok(peer) => {
            progress(&format!("peer: {} ({})", peer.version, peer.binary.display()));
            Some(peer)
        }
        Err(error) => {
            let note = format!("ecr-credential-provider could not be built or run, no peer row: {error:#}");
            progress(&note);
            notes.push(note);
            None
        }
    };
    let world = World::start(&settings.work_dir)?;
    notes.extend(world.notes.iter().cloned());
    let mut moto = Vec::new();
    let cases = world.cases(&settings.regcreds, peer.as_ref());
    let mut measured: Vec<Measured> = cases.iter().map(Measured::empty).collect();
    progress(&format!(
        "{} answers from each of {} plugin cases, taking turns",
        settings.runs,
        cases.len()
    ));
    for round in 0..settings.runs {
        for (case, result) in cases.iter().zip(&mut measured) {
            result.record(case, round == 0, exec(case)?);
        }
        if let Some(port) = world.moto_port() {
            moto.push(fixture::moto_round_trip(port)?);
        }
        if (round + 1) % 50 == 0 {
            progress(&format!("plugin round {}/{}", round + 1, settings.runs));
        }
    }
    for result in &measured {
        if let Some(failure) = &result.first_failure {
            progress(&format!(
                "{}: {} of {} answers failed; first: {failure}",
                result.label, result.failures, settings.runs
            ));
        }
    }
    Ok(Results {
        runs: settings.runs,
        cases: measured,
        moto,
        peer,
        regcreds_bytes: std::fs::metadata(&settings.regcreds).map_or(0, |m| m.len()),
        notes,
        load: (load_start, load_1min()),
    })
}

/// One exec as the kubelet does it, timed; with the endpoint's requests and the CPU it cost.
struct Exec {
    wall: Duration,
    output: Output,
    requests: Option<usize>,
    cpu: Option<Duration>,
}

fn exec(case: &Case) -> Result<Exec> {
    let request = request_json(case.image);
    let logged_before = case.request_log.as_deref().map(count_lines);
    let cpu_before = children_cpu();
    let mut command = Command::new(&case.program);
    command
        .args(&case.args)
        .env_clear()
        .envs(case.env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let started = Instant::now();
    let mut child = command
        .spawn()
        .with_context(|| format!("starting {}", case.program.display()))?;
    let mut stdin = child.stdin.take().context("plugin stdin")?;
    // A plugin that exits without reading makes this fail (EPIPE); its exit status tells why.
    let _ = stdin.write_all(request.as_bytes());
    drop(stdin);
    let output = child.wait_with_output().context("waiting for the plugin")?;
    let wall = started.elapsed();
    let cpu = children_cpu()
        .zip(cpu_before)
        .map(|(after, before)| after.saturating_sub(before));
    let requests = case
        .request_log
        .as_deref()
        .map(count_lines)
        .zip(logged_before)
        .map(|(after, before)| after.saturating_sub(before));
    Ok(Exec {
        wall,
        output,
        requests,
        cpu,
    })
}

impl Measured {
    fn empty(case: &Case) -> Self {
        Self {
            kind: case.kind,
            label: case.label.clone(),
            endpoint: case.endpoint,
            cold: None,
            warm: Vec::new(),
            failures: 0,
            first_failure: None,
            requests: case.request_log.as_ref().map(|_| (0, 0)),
            cpu: Duration::ZERO,
            execs: 0,
            answer: None,
        }
    }

    fn record(&mut self, case: &Case, first: bool, exec: Exec) {
        self.execs += 1;
        self.cpu += exec.cpu.unwrap_or_default();
        if let (Some((total, execs)), Some(requests)) = (&mut self.requests, exec.requests) {
            *total += requests;
            *execs += 1;
        }
        let answer = if exec.output.status.success() {
            parse_answer(&exec.output.stdout)
        } else {
            Err(anyhow::anyhow!(
                "{} exited with {}: {}",
                case.program.display(),
                exec.output.status,
                String::from_utf8_lossy(&exec.output.stderr).trim_end()
            ))
        };
        match answer {
            Ok(answer) => {
                if first {
                    self.cold = Some(exec.wall);
                } else {
                    self.warm.push(exec.wall);
                }
                self.answer.get_or_insert(answer);
            }
            Err(error) => {
                self.failures += 1;
                self.first_failure.get_or_insert_with(|| format!("{error:#}"));
            }
        }
    }
}

/// The CredentialProviderRequest the kubelet writes for `image` (no ServiceAccount token: no case
/// configures `tokenAttributes`).
fn request_json(image: &str) -> String {
    serde_json::json!({
        "kind": "CredentialProviderRequest",
        "apiVersion": "credentialprovider.kubelet.k8s.io/v1",
        "image": image,
    })
    .to_string()
}

/// Checks that `stdout` is a CredentialProviderResponse with credentials, and keeps what the report
/// shows of it (never the credentials).
fn parse_answer(stdout: &[u8]) -> Result<Answer> {
    let response: serde_json::Value =
        serde_json::from_slice(stdout).context("stdout is not one JSON document")?;
    if response["kind"] != "CredentialProviderResponse"
        || response["apiVersion"] != "credentialprovider.kubelet.k8s.io/v1"
    {
        bail!(
            "not a credentialprovider.kubelet.k8s.io/v1 CredentialProviderResponse: kind {}, apiVersion {}",
            response["kind"],
            response["apiVersion"]
        );
    }
    let auth_keys: Vec<String> = response["auth"]
        .as_object()
        .map(|auth| auth.keys().cloned().collect())
        .unwrap_or_default();
    if auth_keys.is_empty() {
        bail!("the answer has no credentials (no `auth` entry)");
    }
    Ok(Answer {
        cache_key_type: response["cacheKeyType"].as_str().unwrap_or("").to_string(),
        cache_duration: response["cacheDuration"].as_str().map(String::from),
        auth_keys,
    })
}

/// Lines of a file (0 if it does not exist yet).
fn count_lines(path: &std::path::Path) -> usize {
    std::fs::read(path).map_or(0, |bytes| bytes.iter().filter(|&&b| b == b'\n').count())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_request_is_the_kubelets_v1_request() {
        let request: serde_json::Value =
            serde_json::from_str(&request_json("quay.example.com/a:1")).expect("JSON");
        assert_eq!(request["kind"], "CredentialProviderRequest");
        assert_eq!(request["apiVersion"], "credentialprovider.kubelet.k8s.io/v1");
        assert_eq!(request["image"], "quay.example.com/a:1");
    }

    #[test]
    fn an_answer_keeps_cache_fields_and_registry_keys_not_credentials() {
        let peer = br#"{"kind":"CredentialProviderResponse","apiVersion":"credentialprovider.kubelet.k8s.io/v1","cacheKeyType":"Registry","cacheDuration":"6h0m0s","auth":{"123456789012.dkr.ecr.us-east-1.amazonaws.com":{"username":"AWS","password":"pw"}}}"#;
        let answer = parse_answer(peer).expect("a good answer");
        assert_eq!(
            answer,
            Answer {
                cache_key_type: "Registry".into(),
                cache_duration: Some("6h0m0s".into()),
                auth_keys: vec!["123456789012.dkr.ecr.us-east-1.amazonaws.com".into()],
            }
        );
        let no_duration = br#"{"apiVersion":"credentialprovider.kubelet.k8s.io/v1","kind":"CredentialProviderResponse","cacheKeyType":"Registry","auth":{"r:5000":{"username":"u","password":"p"}}}"#;
        assert_eq!(parse_answer(no_duration).expect("good").cache_duration, None);
    }

    #[test]
    fn an_answer_without_credentials_or_of_another_kind_is_a_failure() {
        let empty = br#"{"kind":"CredentialProviderResponse","apiVersion":"credentialprovider.kubelet.k8s.io/v1","cacheKeyType":"Registry","cacheDuration":"0s"}"#;
        assert!(parse_answer(empty).is_err());
        let other = br#"{"kind":"CredentialProviderRequest","apiVersion":"credentialprovider.kubelet.k8s.io/v1","auth":{"r":{}}}"#;
        assert!(parse_answer(other).is_err());
        assert!(parse_answer(b"I1206 log line").is_err());
    }

    #[test]
    fn the_first_answer_is_cold_and_failures_are_counted_apart() {
        let case = Case {
            kind: Kind::Static,
            label: "x".into(),
            endpoint: "none",
            program: "/bin/true".into(),
            args: Vec::new(),
            env: Vec::new(),
            image: "r/a:1",
            request_log: Some("/nonexistent".into()),
        };
        let good = br#"{"kind":"CredentialProviderResponse","apiVersion":"credentialprovider.kubelet.k8s.io/v1","auth":{"r":{}}}"#;
        let exec = |ms: u64, stdout: &[u8], requests: usize| Exec {
            wall: Duration::from_millis(ms),
            output: Output {
                status: std::process::ExitStatus::default(),
                stdout: stdout.to_vec(),
                stderr: Vec::new(),
            },
            requests: Some(requests),
            cpu: Some(Duration::from_millis(10)),
        };
        let mut measured = Measured::empty(&case);
        measured.record(&case, true, exec(30, good, 1));
        measured.record(&case, false, exec(10, good, 1));
        measured.record(&case, false, exec(12, b"", 0));
        assert_eq!(measured.cold, Some(Duration::from_millis(30)));
        assert_eq!(measured.warm, vec![Duration::from_millis(10)]);
        assert_eq!((measured.failures, measured.answered()), (1, 2));
        assert_eq!(measured.requests, Some((2, 3)));
        assert_eq!((measured.cpu, measured.execs), (Duration::from_millis(30), 3));
        assert!(measured.first_failure.is_some());
    }
}
