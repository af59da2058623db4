//! `cargo xtask <task>`: regcreds' developer and CI tasks.
//!
//! - `controlplane build` ([`controlplane_build`]): build etcd, kube-apiserver,
//!   kube-controller-manager and a node's parts (kubelet, kube-scheduler, kube-proxy, containerd,
//!   pause) from source once, into `~/.cache/regcreds`.
//! - `controlplane up [--node]` ([`controlplane_up`]): run that control plane (with a node) in the
//!   foreground.
//! - `test` ([`test`]): install test dependencies, lint, and run every test (what CI runs).
//! - `bench` ([`bench`]): measure regcreds against a bare client doing the same writes.
//! - `demo` ([`demo`]): regcreds end to end on this machine, step by step.
//! - `image` ([`image`]): the container image without Docker (OCI layout; `--push` with skopeo).
//! - `chart-readme [--check]` ([`chart_readme`]): the Helm chart's README from its values.yaml comments.

mod bench;
mod chart_readme;
mod controlplane_build;
mod controlplane_up;
mod demo;
mod image;
mod shell;
mod test;

use clap::{Parser, Subcommand};

/// regcreds' task runner.
#[derive(Parser)]
#[command(name = "cargo xtask", bin_name = "cargo xtask", about)]
struct Cli {
    #[command(subcommand)]
    task: Task,
}

#[derive(Subcommand)]
enum Task {
    /// A local Kubernetes control plane (etcd, kube-apiserver, kube-controller-manager).
    #[command(subcommand)]
    Controlplane(Controlplane),
    /// Install test dependencies, check formatting and lints, run all tests.
    Test(test::Args),
    /// Benchmark a release build against the floor (a bare client doing the same writes).
    Bench(bench::Args),
    /// Show regcreds end to end: control plane, private registry, propagated Secret, a real pull.
    Demo(demo::Args),
    /// Build the regcreds image from the release binary without Docker; optionally push it.
    Image(image::Args),
    /// Write the Helm chart's README from values.yaml's `# --` comments (`--check`: fail if stale).
    ChartReadme(chart_readme::Args),
}

#[derive(Subcommand)]
enum Controlplane {
    /// Build the pinned control-plane and node binaries from the Go module proxy (cached; needs Go).
    Build,
    /// Run a control plane in the foreground and write an admin kubeconfig; Ctrl-C stops it.
    Up(controlplane_up::Args),
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().task {
        Task::Controlplane(Controlplane::Build) => controlplane_build::run().map(drop),
        Task::Controlplane(Controlplane::Up(args)) => controlplane_up::run(args),
        Task::Test(args) => test::run(args),
        Task::Bench(args) => bench::run(args),
        Task::Demo(args) => demo::run(args),
        Task::Image(args) => image::run(args),
        Task::ChartReadme(args) => chart_readme::run(args),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cli_is_well_formed() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}
