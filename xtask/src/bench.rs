//! `cargo xtask bench`: regcreds against the physical limit of the machine it runs on, and as the
//! kubelet's image credential provider against the cloud's own plugin.
//!
//! ```text
//!  cargo build --release -p regcreds ──► target/release/regcreds
//!  --sections plugin:  plugin::run (bench/plugin.rs)
//!      regcreds credential-provider ─┐  one new process per answer, taking turns
//!      ecr-credential-provider (Go) ─┴─► moto / GitHub-Quay fake on 127.0.0.1
//!  --sections cluster: for each N in --namespaces:  scenario::run (fresh control plane; see bench/scenario.rs)
//!      regcreds as a process ─┐                         ┌─► observer: watch timestamps
//!      bare kube client (floor)┴─► kube-apiserver ──────┼─► apiserver_request_total
//!                                                       └─► regcreds /metrics, /proc/<pid>
//!  plugin::render, report::render ──► stdout and target/bench/latest.md
//! ```
//!
//! Progress goes to stderr as `[bench] ...` lines. Every wait is bounded; all traffic is to 127.0.0.1.
//! With `--readme`, each section's table also replaces its own block of README.md (between the
//! `bench:begin`/`bench:end` and the `bench-plugin:begin`/`bench-plugin:end` markers), so the published
//! numbers are always a real run's output. The plugin section's peer, cloud-provider-aws'
//! `ecr-credential-provider`, is built from its Go module once (cached under `~/.cache/regcreds`); it is
//! a bench tool only, never part of `cargo xtask test`.

mod cluster;
mod floor;
mod machine;
mod observer;
mod plugin;
mod process;
mod report;
mod scenario;
mod stats;

use std::{path::PathBuf, time::Duration};

use anyhow::{Context, Result};

use crate::shell::{self, cargo};

/// What `bench` measures.
#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Section {
    /// regcreds on a control plane against a bare client doing the same writes (minutes per N).
    Cluster,
    /// The kubelet's wait per answer of `regcreds credential-provider`, beside cloud-provider-aws'
    /// `ecr-credential-provider` (under a minute).
    Plugin,
}

/// Options of `bench`.
#[derive(clap::Args)]
pub struct Args {
    /// Sections to run, in this order: `plugin` first (short), then `cluster`.
    #[arg(long, value_enum, value_delimiter = ',', default_value = "plugin,cluster")]
    sections: Vec<Section>,
    /// Plugin section: answers per plugin (the first is reported as cold, the rest as warm).
    #[arg(long, default_value_t = 200, value_parser = clap::value_parser!(u16).range(2..=10_000))]
    plugin_runs: u16,
    /// Plugin section: use this `ecr-credential-provider` instead of the cached build of
    /// k8s.io/cloud-provider-aws (built on first use with Go).
    #[arg(long)]
    ecr_credential_provider: Option<PathBuf>,
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
    /// Also replace each section's table in README.md (between `<!-- bench:begin -->` and
    /// `<!-- bench:end -->`, `<!-- bench-plugin:begin -->` and `<!-- bench-plugin:end -->`) with this run's.
    #[arg(long)]
    readme: bool,
}

/// Set in the environment of the release build of the bench that a dev build starts.
const RELEASE_MARKER: &str = "REGCREDS_BENCH_RELEASE";

/// Builds regcreds, runs the sections and writes the report (also a partial one).
pub fn run(args: Args) -> Result<()> {
    // NB: the floor client and the watches that time everything run inside this process. Built in the
    // dev profile they would spend several times the CPU a real client spends, on the same two cores
    // as the apiserver: the floor would look slower than it is. So the cluster bench always runs as
    // release. The plugin section alone does not need it: what it times is child processes, and the
    // bench's part inside the timed span (spawn, pipe reads, wait) is the standard library's code,
    // which is optimised in every profile.
    if cfg!(debug_assertions)
        && std::env::var_os(RELEASE_MARKER).is_none()
        && args.sections.contains(&Section::Cluster)
    {
        return rerun_as_release();
    }
    let binary = match &args.binary {
        Some(binary) => binary.clone(),
        None => build_release()?,
    };
    let out_dir = target_dir().join("bench");
    std::fs::create_dir_all(&out_dir).with_context(|| format!("creating {}", out_dir.display()))?;
    let mut machine = machine::Machine::probe(&binary);
    let mut reports = Vec::new();
    let mut failures = Vec::new();
    if args.sections.contains(&Section::Plugin) {
        let settings = plugin::Settings {
            regcreds: binary.clone(),
            peer: args.ecr_credential_provider.clone(),
            runs: usize::from(args.plugin_runs),
            work_dir: out_dir.join("plugin-work"),
        };
        match plugin::run(&settings) {
            Ok(results) => reports.push((PLUGIN_MARKERS, plugin::render(&machine, &results), true)),
            Err(error) => failures.push(error.context("plugin section")),
        }
    }
    if args.sections.contains(&Section::Cluster) {
        match cluster_section(&args, binary, &out_dir, &mut machine) {
            (Some(markdown), failure) => {
                reports.push((CLUSTER_MARKERS, markdown, failure.is_none()));
                failures.extend(failure);
            }
            (None, failure) => failures.extend(failure),
        }
    }
    if !reports.is_empty() {
        let all: Vec<&str> = reports.iter().map(|(_, markdown, _)| markdown.as_str()).collect();
        write_report(&all.join("\n"), &out_dir)?;
    }
    if args.readme {
        for (markers, markdown, complete) in &reports {
            if *complete {
                update_readme(*markers, markdown)?;
            }
        }
    }
    let mut failures = failures.into_iter();
    failures.next().map_or(Ok(()), |first| {
        failures.for_each(|other| progress(&format!("also failed: {other:#}")));
        Err(first)
    })
}

/// Every namespace count in turn: the report of those measured (if any), and the first failure.
fn cluster_section(
    args: &Args,
    binary: PathBuf,
    out_dir: &std::path::Path,
    machine: &mut machine::Machine,
) -> (Option<String>, Option<anyhow::Error>) {
    let settings = scenario::Settings {
        binary,
        concurrency: args.concurrency,
        samples: usize::from(args.samples),
        steady: Duration::from_secs(args.steady_seconds),
        out_dir: out_dir.to_path_buf(),
        control_plane: regcreds_testkit::ControlPlaneOptions {
            kcm_api_qps: Some(args.kcm_qps),
            kcm_api_burst: Some(args.kcm_burst),
            ..Default::default()
        },
    };
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(error) => return (None, Some(error.into())),
    };
    let mut results = Vec::new();
    let mut failure = None;
    for &n in &args.namespaces {
        match runtime.block_on(scenario::run(usize::from(n), &settings, machine)) {
            Ok(result) => results.push(result),
            Err(error) => {
                failure = Some(error.context(format!("benchmark with {n} namespaces")));
                break;
            }
        }
    }
    let report = (!results.is_empty()).then(|| report::render(machine, &results, args.concurrency));
    (report, failure)
}

/// The begin and end markers of a generated block of README.md.
type Markers = (&'static str, &'static str);

/// The cluster section's block.
const CLUSTER_MARKERS: Markers = (
    "<!-- bench:begin (generated by `cargo xtask bench --readme`) -->",
    "<!-- bench:end -->",
);
/// The plugin section's block.
const PLUGIN_MARKERS: Markers = (
    "<!-- bench-plugin:begin (generated by `cargo xtask bench --sections plugin --readme`) -->",
    "<!-- bench-plugin:end -->",
);

/// Replaces a generated block of README.md with `markdown` (without its title line).
fn update_readme(markers: Markers, markdown: &str) -> Result<()> {
    let path = shell::repo_root().join("README.md");
    let readme = std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let updated = replace_section(&readme, markers, markdown).with_context(|| {
        format!(
            "{} has no `{}` … `{}` section",
            path.display(),
            markers.0,
            markers.1
        )
    })?;
    std::fs::write(&path, updated).with_context(|| format!("writing {}", path.display()))?;
    progress(&format!(
        "benchmark block {} of {} updated",
        markers.0,
        path.display()
    ));
    Ok(())
}

fn replace_section(readme: &str, (begin_marker, end_marker): Markers, markdown: &str) -> Option<String> {
    let begin = readme.find(begin_marker)? + begin_marker.len();
    let end = begin + readme[begin..].find(end_marker)?;
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
        let (begin, end) = CLUSTER_MARKERS;
        let readme = format!("intro\n{begin}\nold table\n{end}\noutro\n");
        let updated = replace_section(
            &readme,
            CLUSTER_MARKERS,
            "# regcreds benchmark\n\nMachine: x\n\n| a |\n",
        )
        .expect("section");
        assert_eq!(
            updated,
            format!("intro\n{begin}\n\nMachine: x\n\n| a |\n\n{end}\noutro\n")
        );
        assert!(replace_section("no markers", CLUSTER_MARKERS, "x").is_none());
    }

    #[test]
    fn each_section_replaces_only_its_own_block() {
        let (begin, end) = CLUSTER_MARKERS;
        let (plugin_begin, plugin_end) = PLUGIN_MARKERS;
        let readme = format!("{begin}\ncluster\n{end}\nmiddle\n{plugin_begin}\nold plugin\n{plugin_end}\n");
        let updated = replace_section(&readme, PLUGIN_MARKERS, "# plugin\n\n| p |\n").expect("plugin block");
        assert_eq!(
            updated,
            format!("{begin}\ncluster\n{end}\nmiddle\n{plugin_begin}\n\n| p |\n\n{plugin_end}\n")
        );
    }
}
