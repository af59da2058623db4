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
//! With `--readme`, the table also replaces the one between the `bench:begin`/`bench:end` markers of
//! README.md, so the published numbers are always a real run's output.

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
    #[arg(long, value_delimiter = ',', default_value = "100,2000,10000",
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
    /// kube-controller-manager's API QPS: it creates each namespace's `default` ServiceAccount, and at
    /// its default of 20 creating 10,000 namespaces would take many minutes of setup.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u32).range(1..))]
    kcm_qps: u32,
    /// kube-controller-manager's API burst.
    #[arg(long, default_value_t = 2000, value_parser = clap::value_parser!(u32).range(1..))]
    kcm_burst: u32,
    /// Also replace the benchmark table in README.md (between `<!-- bench:begin -->` and
    /// `<!-- bench:end -->`) with this run's.
    #[arg(long)]
    readme: bool,
}

/// Set in the environment of the release build of the bench that a dev build starts.
const RELEASE_MARKER: &str = "REGCREDS_BENCH_RELEASE";

/// Builds regcreds, measures every namespace count and writes the report (also a partial one).
pub fn run(args: Args) -> Result<()> {
    // NB: the floor client and the watches that time everything run inside this process. Built in the
    // dev profile they would spend several times the CPU a real client spends, on the same two cores
    // as the apiserver: the floor would look slower than it is. So the bench always runs as release.
    if cfg!(debug_assertions) && std::env::var_os(RELEASE_MARKER).is_none() {
        return rerun_as_release();
    }
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
        control_plane: regcreds_testkit::ControlPlaneOptions {
            kcm_api_qps: Some(args.kcm_qps),
            kcm_api_burst: Some(args.kcm_burst),
            ..Default::default()
        },
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
        let markdown = report::render(&machine, &results, args.concurrency);
        write_report(&markdown, &out_dir)?;
        if args.readme && failure.is_none() {
            update_readme(&markdown)?;
        }
    }
    failure.map_or(Ok(()), Err)
}

const README_BEGIN: &str = "<!-- bench:begin (generated by `cargo xtask bench --readme`) -->";
const README_END: &str = "<!-- bench:end -->";

/// Replaces the generated section of README.md with `markdown` (without its title line).
fn update_readme(markdown: &str) -> Result<()> {
    let path = shell::repo_root().join("README.md");
    let readme = std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let updated = replace_section(&readme, markdown).with_context(|| {
        format!(
            "{} has no `{README_BEGIN}` … `{README_END}` section",
            path.display()
        )
    })?;
    std::fs::write(&path, updated).with_context(|| format!("writing {}", path.display()))?;
    progress(&format!("benchmark section of {} updated", path.display()));
    Ok(())
}

fn replace_section(readme: &str, markdown: &str) -> Option<String> {
    let begin = readme.find(README_BEGIN)? + README_BEGIN.len();
    let end = begin + readme[begin..].find(README_END)?;
    let body = markdown
        .lines()
        .skip_while(|line| line.starts_with("# ") || line.is_empty())
        .collect::<Vec<_>>()
        .join("\n");
    Some(format!(
        "{}\n\n{}\n\n{}",
        &readme[..begin],
        body.trim_end(),
        &readme[end..]
    ))
}

/// Prints a progress line on stderr.
fn progress(message: &str) {
    eprintln!("[bench] {message}");
}

/// Builds the bench in release and runs it with this process's arguments.
fn rerun_as_release() -> Result<()> {
    progress("building the bench itself (release), so that the floor client runs at full speed");
    shell::run(cargo().args(["build", "--release", "-p", "xtask"]))?;
    let status = std::process::Command::new(target_dir().join("release").join("xtask"))
        .args(std::env::args_os().skip(1))
        .env(RELEASE_MARKER, "1")
        .status()
        .context("running the release build of the bench")?;
    if !status.success() {
        anyhow::bail!("the benchmark failed ({status})");
    }
    Ok(())
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_readme_section_is_replaced_without_the_report_title() {
        let readme = format!("intro\n{README_BEGIN}\nold table\n{README_END}\noutro\n");
        let updated =
            replace_section(&readme, "# regcreds benchmark\n\nMachine: x\n\n| a |\n").expect("section");
        assert_eq!(
            updated,
            format!("intro\n{README_BEGIN}\n\nMachine: x\n\n| a |\n\n{README_END}\noutro\n")
        );
        assert!(replace_section("no markers", "x").is_none());
    }
}
