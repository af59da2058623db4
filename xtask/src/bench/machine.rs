//! What the numbers were measured on: CPU, cores, memory and load, Kubernetes and regcreds versions.

use std::{path::Path, process::Command};

/// The header of a report.
#[derive(Debug, Clone, Default)]
pub struct Machine {
    pub cpu: String,
    pub cores: usize,
    pub memory_gib: f64,
    /// `/proc/loadavg` when the bench started: other work on the machine skews every number.
    pub load: String,
    pub kubernetes: String,
    pub regcreds: String,
}

impl Machine {
    /// Reads `/proc` and asks `binary --version`; `kubernetes` is filled in once a control plane runs.
    pub fn probe(binary: &Path) -> Self {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
        let loadavg = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
        Self {
            cpu: field(&cpuinfo, "model name").unwrap_or("unknown CPU").to_string(),
            cores: std::thread::available_parallelism().map_or(0, usize::from),
            memory_gib: field(&meminfo, "MemTotal")
                .and_then(|v| v.trim_end_matches("kB").trim().parse::<f64>().ok())
                .map_or(0.0, |kib| kib / 1024.0 / 1024.0),
            load: loadavg.split_whitespace().take(3).collect::<Vec<_>>().join(" "),
            kubernetes: "unknown".to_string(),
            regcreds: version(binary),
        }
    }

    /// Two Markdown lines.
    pub fn describe(&self) -> String {
        format!(
            "Machine: {}, {} cores, {:.1} GiB RAM, load average at start {}.  \n\
             Kubernetes {} (kube-apiserver, etcd, kube-controller-manager on 127.0.0.1); {} (release build).",
            self.cpu, self.cores, self.memory_gib, self.load, self.kubernetes, self.regcreds
        )
    }
}

/// The 1-minute load average.
pub fn load_1min() -> f64 {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|l| l.split_whitespace().next()?.parse().ok())
        .unwrap_or(0.0)
}

/// The value of the first `key: value` line of a `/proc` file.
fn field<'a>(text: &'a str, key: &str) -> Option<&'a str> {
    text.lines().find_map(|line| {
        let (k, v) = line.split_once(':')?;
        (k.trim() == key).then(|| v.trim())
    })
}

/// `regcreds 0.1.0`, plus the commit it was built from when this is a git checkout.
fn version(binary: &Path) -> String {
    let run = |cmd: &mut Command| {
        cmd.output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
    };
    let version = run(Command::new(binary).arg("--version")).unwrap_or_else(|| "regcreds (unknown)".into());
    let root = crate::shell::repo_root();
    let Some(commit) = run(Command::new("git")
        .args(["rev-parse", "--short", "HEAD"])
        .current_dir(&root))
    else {
        return version;
    };
    // Uncommitted changes to the crates mean the binary is not exactly that commit.
    let clean = Command::new("git")
        .args(["diff", "--quiet", "HEAD", "--", "crates", "Cargo.lock"])
        .current_dir(&root)
        .status()
        .is_ok_and(|s| s.success());
    let dirty = if clean { "" } else { " + uncommitted changes" };
    format!("{version}, commit {commit}{dirty}")
}
