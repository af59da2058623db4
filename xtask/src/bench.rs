//! `cargo xtask bench`: regcreds against the physical limit of the machine it runs on.
//!
//! ```text
//!  cargo build --release -p regcreds ──► target/release/regcreds
//!  for each N in --namespaces:  scenario::run (fresh control plane; see bench/scenario.rs)
//!      regcreds as a process ─┐                         ┌─► observer: watch timestamps
//!      bare kube client (floor)┴─► kube-apiserver ──────┼─► apiserver_request_total
//!                                                       └─► regcreds /metrics, /proc/<pid>
//!  report::render ──► stdout and target/bench/latest.md
//! ```
//!
//! Progress goes to stderr as `[bench] ...` lines. Every wait is bounded; all traffic is to 127.0.0.1.

mod cluster;
mod floor;
mod machine;
mod observer;
mod process;
mod report;
mod scenario;
mod stats;

use std::{path::PathBuf, time::Duration};

use anyhow::{Context, Result};

use crate::shell::{self, cargo};

/// Options of `bench`.
#[derive(clap::Args)]
pub struct Args {
    /// Namespace counts to measure, each on a fresh control plane.
    #[arg(long, value_delimiter = ',', default_value = "100,1000,2000",
          value_parser = clap::value_parser!(u16).range(1..=10_000))]
    namespaces: Vec<u16>,
    /// Namespaces reconciled at the same time, by regcreds (`REGCREDS_CONCURRENCY`) and the floor client.
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u16).range(1..=256))]
    concurrency: u16,
    /// New namespaces created one at a time to measure latency percentiles.
    #[arg(long, default_value_t = 200, value_parser = clap::value_parser!(u16).range(1..=1000))]
    samples: u16,
    /// Length of the steady-state window, in seconds.
    #[arg(long, default_value_t = 60, value_parser = clap::value_parser!(u64).range(5..=600))]
    steady_seconds: u64,
    /// Use this regcreds binary instead of building `target/release/regcreds`.
    #[arg(long)]
    binary: Option<PathBuf>,
}

/// Builds regcreds, measures every namespace count and writes the report (also a partial one).
pub fn run(args: Args) -> Result<()> {
    let binary = match &args.binary {
        Some(binary) => binary.clone(),
        None => build_release()?,
    };
    let out_dir = target_dir().join("bench");
    std::fs::create_dir_all(&out_dir).with_context(|| format!("creating {}", out_dir.display()))?;
    let mut machine = machine::Machine::probe(&binary);
    let settings = scenario::Settings {
        binary,
        concurrency: args.concurrency,
        samples: usize::from(args.samples),
        steady: Duration::from_secs(args.steady_seconds),
        out_dir: out_dir.clone(),
    };
    let runtime = tokio::runtime::Runtime::new()?;
    let mut results = Vec::new();
    let mut failure = None;
    for &n in &args.namespaces {
        match runtime.block_on(scenario::run(usize::from(n), &settings, &mut machine)) {
            Ok(result) => results.push(result),
            Err(error) => {
                failure = Some(error.context(format!("benchmark with {n} namespaces")));
                break;
            }
        }
    }
    if !results.is_empty() {
        write_report(&report::render(&machine, &results, args.concurrency), &out_dir)?;
    }
    failure.map_or(Ok(()), Err)
}

/// Prints a progress line on stderr.
fn progress(message: &str) {
    eprintln!("[bench] {message}");
}

/// `cargo build --release -p regcreds`; returns the binary.
fn build_release() -> Result<PathBuf> {
    progress("building regcreds (release)");
    shell::run(cargo().args(["build", "--release", "-p", "regcreds", "--bin", "regcreds"]))?;
    Ok(target_dir().join("release").join("regcreds"))
}

/// `$CARGO_TARGET_DIR`, else `<workspace>/target`.
fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| shell::repo_root().join("target"), PathBuf::from)
}

fn write_report(markdown: &str, out_dir: &std::path::Path) -> Result<()> {
    let path = out_dir.join("latest.md");
    std::fs::write(&path, markdown).with_context(|| format!("writing {}", path.display()))?;
    println!("{markdown}");
    progress(&format!("report written to {}", path.display()));
    Ok(())
}
