//! `cargo xtask controlplane up`: the test kit's control plane, in the foreground, for humans.
//!
//! Same code path as the tests (`regcreds_testkit::ControlPlane::start`); the admin kubeconfig is
//! copied to `--kubeconfig` and removed again on exit, since it is useless once the apiserver is gone.

use std::{path::PathBuf, time::Duration};

use anyhow::{Context, Result};
use regcreds_testkit::{ControlPlane, binaries::Binaries};

/// How often to check that etcd, kube-apiserver and kube-controller-manager are still running.
const LIVENESS_INTERVAL: Duration = Duration::from_secs(1);
/// Per process, between SIGTERM and SIGKILL on shutdown.
const STOP_GRACE: Duration = Duration::from_secs(5);

/// Options of `controlplane up`.
#[derive(clap::Args)]
pub struct Args {
    /// Where to write the admin (system:masters) kubeconfig.
    #[arg(long, default_value = "kubeconfig.yaml")]
    kubeconfig: PathBuf,
}

/// Starts the control plane and serves until Ctrl-C (or until one of its processes dies).
pub fn run(args: Args) -> Result<()> {
    if Binaries::locate().is_err() {
        crate::controlplane_build::run()?;
    }
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(serve(args))
}

async fn serve(args: Args) -> Result<()> {
    println!("starting etcd, kube-apiserver and kube-controller-manager ...");
    let cp = ControlPlane::start().await?;
    std::fs::copy(cp.kubeconfig_path(), &args.kubeconfig)
        .with_context(|| format!("writing {}", args.kubeconfig.display()))?;
    print_usage(&cp, &args);

    let outcome = tokio::select! {
        biased;
        signal = tokio::signal::ctrl_c() => signal.context("waiting for Ctrl-C"),
        died = watch(&cp) => died,
    };
    println!("\nstopping ...");
    cp.shutdown(STOP_GRACE);
    let _ = std::fs::remove_file(&args.kubeconfig);
    println!("stopped; removed {}", args.kubeconfig.display());
    outcome
}

/// Resolves with an error as soon as a control-plane process exits.
async fn watch(cp: &ControlPlane) -> Result<()> {
    loop {
        tokio::time::sleep(LIVENESS_INTERVAL).await;
        cp.check_running()?;
    }
}

fn print_usage(cp: &ControlPlane, args: &Args) {
    let kubeconfig = std::path::absolute(&args.kubeconfig).unwrap_or_else(|_| args.kubeconfig.clone());
    println!("control plane ready: {}", cp.server_url());
    for (name, pid, log) in cp.processes() {
        println!("  {name:<24} pid {pid:<7} log {}", log.display());
    }
    println!("\nadmin kubeconfig (system:masters): {}", kubeconfig.display());
    println!("  export KUBECONFIG={}", kubeconfig.display());
    println!("  kubectl get namespaces");
    println!("  cargo run -p regcreds -- --help   # then run regcreds against it");
    println!("\nCtrl-C stops everything and removes {}", cp.dir().display());
}
