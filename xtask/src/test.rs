//! `cargo xtask test`: the one command that runs every test, locally and in CI (`.ci/run`).
//!
//! 1. `xtask/scripts/setup-test-deps.sh`: Debian packages (registry, skopeo, htpasswd, openssl) and the
//!    Python venv (moto, boto3, pyjwt, cryptography), each only if missing.
//! 2. The control-plane and node binaries (`controlplane build`, cached).
//! 3. Unless `--no-lint`: `cargo fmt --all --check`, `cargo clippy --workspace --all-targets -D warnings`.
//! 4. `cargo build -p regcreds --bin regcreds` (what end-to-end tests run), then `cargo test --workspace`
//!    with `REGCREDS_CONTROLPLANE_BIN`, `REGCREDS_NODE_BIN` and `REGCREDS_PYTHON` pointing at steps 1
//!    and 2. The node tests (`tests/tests/node*.rs`) start their own namespaces; they need root.
//! 5. The oldest supported Kubernetes (`versions::OLDEST`, v1.33): the suites of [`OLDEST_SUITES`] run
//!    again, the same test binaries with `REGCREDS_K8S_VERSION` and `REGCREDS_CONTROLPLANE_BIN` naming
//!    its control plane (built in step 2, cached like the newest). Skipped when pass-through arguments
//!    select tests, and with `--latest-only`.

use std::{path::PathBuf, process::Command, time::Duration};

use anyhow::Result;
use regcreds_testkit::{
    binaries::{
        self, Binaries, CONTROLPLANE_BIN_ENV, NODE_BIN_ENV, NodeBinaries, PYTHON_ENV, pinned_node_bin_dir,
    },
    versions::{self, K8S_VERSION_ENV, OLDEST},
};

use crate::shell::{self, cargo, human, section};

/// The `regcreds-e2e` test targets that also run against the oldest supported Kubernetes: the control
/// plane itself (ServiceAccounts appear, namespaces finalize, RBAC), propagation into every namespace and
/// its ServiceAccounts, the request-counted hot path (a stale ServiceAccount's conflict), and regcreds
/// with its shipped RBAC patching ServiceAccounts. About a minute and a half in all.
pub const OLDEST_SUITES: &[&str] = &["controlplane_smoke", "propagation", "hot_path", "rbac"];

/// Options of `test`.
#[derive(clap::Args)]
pub struct Args {
    /// Skip `cargo fmt --check` and `cargo clippy` (quick local runs).
    #[arg(long)]
    no_lint: bool,
    /// Skip the second pass on the oldest supported Kubernetes (and building its control plane).
    #[arg(long)]
    latest_only: bool,
    /// Arguments for `cargo test` (replacing `--workspace` if they select packages), e.g.
    /// `cargo xtask test -- -p regcreds-e2e smoke`.
    #[arg(last = true)]
    cargo_test_args: Vec<String>,
}

/// Runs every step, printing a timing summary at the end (also when a step fails).
pub fn run(args: Args) -> Result<()> {
    let mut timings = Vec::new();
    let result = steps(&args, &mut timings);
    println!("\nsummary:");
    for (title, took) in &timings {
        println!("  {:<40} {}", title, human(*took));
    }
    if result.is_err() {
        println!("  FAILED (see above)");
    }
    result
}

fn steps(args: &Args, timings: &mut Vec<(&'static str, Duration)>) -> Result<()> {
    let mut step = |title: &'static str, body: &mut dyn FnMut() -> Result<()>| -> Result<()> {
        let (result, took) = section(title, body);
        timings.push((title, took));
        result
    };
    let venv = binaries::venv_dir();
    step("test dependencies (apt, Python venv)", &mut || {
        let script = shell::repo_root().join("xtask/scripts/setup-test-deps.sh");
        shell::run(Command::new("bash").arg(script).env("REGCREDS_VENV", &venv))
    })?;
    let oldest_pass = !args.latest_only && args.cargo_test_args.is_empty();
    let mut bin_dir = PathBuf::new();
    let mut oldest_dir = PathBuf::new();
    let mut node_dir = PathBuf::new();
    step("control-plane and node binaries", &mut || {
        bin_dir = controlplane_bin_dir()?;
        node_dir = node_bin_dir()?;
        if oldest_pass {
            oldest_dir = crate::controlplane_build::control_plane(&OLDEST)?;
        }
        Ok(())
    })?;
    if !args.no_lint {
        step("cargo fmt --check", &mut || {
            shell::run(cargo().args(["fmt", "--all", "--check"]))
        })?;
        step("cargo clippy", &mut || {
            shell::run(cargo().args(["clippy", "--workspace", "--all-targets", "--", "-D", "warnings"]))
        })?;
    }
    step("build the regcreds binary", &mut || {
        shell::run(cargo().args(["build", "-p", "regcreds", "--bin", "regcreds"]))
    })?;
    step("cargo test", &mut || {
        let mut cmd = cargo();
        cmd.arg("test")
            .args(test_selection(&args.cargo_test_args))
            .args(&args.cargo_test_args);
        cmd.env(CONTROLPLANE_BIN_ENV, &bin_dir)
            .env(NODE_BIN_ENV, &node_dir)
            .env(PYTHON_ENV, venv.join("bin/python"));
        shell::run(&mut cmd)
    })?;
    if !oldest_pass {
        return Ok(());
    }
    step("cargo test on the oldest Kubernetes", &mut || {
        println!(
            "Kubernetes v{} (etcd v{}): {}",
            OLDEST.kubernetes,
            OLDEST.etcd,
            OLDEST_SUITES.join(", ")
        );
        let mut cmd = cargo();
        // `--workspace` (not `-p regcreds-e2e`): the same feature resolution as the pass above, so its
        // test binaries are reused instead of rebuilding the dependencies with other features.
        cmd.args(["test", "--workspace"]);
        for suite in OLDEST_SUITES {
            cmd.args(["--test", suite]);
        }
        cmd.env(CONTROLPLANE_BIN_ENV, &oldest_dir)
            .env(K8S_VERSION_ENV, OLDEST.kubernetes)
            .env(NODE_BIN_ENV, &node_dir)
            .env(PYTHON_ENV, venv.join("bin/python"));
        shell::run(&mut cmd)
    })
}

/// `$REGCREDS_CONTROLPLANE_BIN` if it already holds the binaries, else the (cached) pinned build of the
/// version `$REGCREDS_K8S_VERSION` selects (default: the newest).
fn controlplane_bin_dir() -> Result<PathBuf> {
    if let Some(dir) = std::env::var_os(CONTROLPLANE_BIN_ENV).map(PathBuf::from)
        && Binaries::in_dir(&dir).is_some()
    {
        println!("using ${CONTROLPLANE_BIN_ENV} = {}", dir.display());
        return Ok(dir);
    }
    crate::controlplane_build::control_plane(&versions::selected()?)
}

/// `$REGCREDS_NODE_BIN` if it already holds the node's binaries, else the (cached) pinned build.
fn node_bin_dir() -> Result<PathBuf> {
    if let Some(dir) = std::env::var_os(NODE_BIN_ENV).map(PathBuf::from)
        && NodeBinaries::in_dir(&dir).is_some()
    {
        println!("using ${NODE_BIN_ENV} = {}", dir.display());
        return Ok(dir);
    }
    if NodeBinaries::in_dir(&pinned_node_bin_dir()).is_none() {
        crate::controlplane_build::node()?;
    }
    Ok(pinned_node_bin_dir())
}

/// `--workspace`, unless the pass-through arguments pick packages themselves.
fn test_selection(extra: &[String]) -> Option<&'static str> {
    let picks_packages = extra
        .iter()
        .any(|a| a == "-p" || a.starts_with("--package") || a == "--workspace");
    (!picks_packages).then_some("--workspace")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn tests_the_whole_workspace_by_default() {
        assert_eq!(test_selection(&[]), Some("--workspace"));
        assert_eq!(
            test_selection(&args(&["smoke", "--", "--nocapture"])),
            Some("--workspace")
        );
    }

    #[test]
    fn lets_pass_through_arguments_pick_packages() {
        assert_eq!(test_selection(&args(&["-p", "regcreds-e2e"])), None);
        assert_eq!(test_selection(&args(&["--package=regcreds-core"])), None);
    }
}
