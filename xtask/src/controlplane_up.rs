//! `cargo xtask controlplane up`: the test kit's control plane, in the foreground, for humans.
//!
//! Same code path as the tests (`regcreds_testkit::ControlPlane::start`); the admin kubeconfig is
//! copied to `--kubeconfig` and removed again on exit, since it is useless once the apiserver is gone.
//!
//! `--node` starts the node tests' world instead (`regcreds_testkit::node::NodeWorld`): the control
//! plane with a real node and the registries, inside namespaces of its own. It is reached with
//! `nsenter` (printed), and everything in it ends with Ctrl-C.

use std::{path::PathBuf, time::Duration};

use anyhow::{Context, Result, bail};
use regcreds_testkit::{
    ControlPlane, ControlPlaneOptions,
    binaries::{self, Binaries, NodeBinaries},
    node::{self, NODE_IP, NODE_NAME, NodeWorld, PULL_USER},
    versions::{self, ControlPlaneVersion},
};

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
    /// Also run a real node (kubelet, containerd, kube-scheduler, kube-proxy) and the test registries,
    /// inside network, mount and PID namespaces of their own (needs root).
    #[arg(long)]
    node: bool,
    /// Run this pinned Kubernetes version (e.g. `1.33`, the oldest supported; built if missing)
    /// instead of `$REGCREDS_CONTROLPLANE_BIN` or the newest. Not with `--node`.
    #[arg(long, conflicts_with = "node")]
    k8s_version: Option<String>,
}

/// Starts the control plane and serves until Ctrl-C (or until one of its processes dies).
pub fn run(args: Args) -> Result<()> {
    if args.node {
        return run_node();
    }
    let version = args
        .k8s_version
        .as_deref()
        .map(ControlPlaneVersion::named)
        .transpose()?;
    match version {
        Some(version) => drop(crate::controlplane_build::control_plane(&version)?),
        None if Binaries::locate().is_err() => {
            drop(crate::controlplane_build::control_plane(&versions::selected()?)?)
        }
        None => {}
    }
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(serve(args, version))
}

/// `--node`: builds what is missing, then runs itself again inside a node world.
fn run_node() -> Result<()> {
    if node::inside_world() {
        return tokio::runtime::Runtime::new()?.block_on(serve_node());
    }
    if Binaries::locate().is_err() || NodeBinaries::locate().is_err() {
        crate::controlplane_build::newest()?;
    }
    let program = std::env::current_exe()?;
    let status = node::run_in_world(&program, &std::env::args_os().skip(1).collect::<Vec<_>>())?;
    if !status.success() {
        bail!("the node world ended with {status}");
    }
    Ok(())
}

async fn serve_node() -> Result<()> {
    println!("starting the control plane, a node ({NODE_NAME}, {NODE_IP}) and two registries ...");
    let world = NodeWorld::start().await?;
    let kubeconfig = world.kubeconfig().display().to_string();
    println!(
        "node {NODE_NAME} Ready; apiserver {}",
        world.control_plane().server_url()
    );
    println!(
        "private registry https://{} (user {PULL_USER}, password {}), image {}",
        world.registry_host(),
        world.pull_password(),
        world.workload_image()
    );
    println!("world directory (logs/): {}", world.dir().display());
    println!("\nEverything runs in the world's own namespaces. From another terminal:");
    println!("  sudo nsenter --target $(pgrep -nf regcreds-node-init) --net --mount --pid bash");
    println!(
        "  export KUBECONFIG={kubeconfig}; {} get nodes -o wide",
        binaries::kubectl().display()
    );
    println!("\nCtrl-C stops everything; the namespaces, mounts and temporary files go with it.");
    let outcome = tokio::select! {
        biased;
        signal = tokio::signal::ctrl_c() => signal.context("waiting for Ctrl-C"),
        died = async {
            loop {
                tokio::time::sleep(LIVENESS_INTERVAL).await;
                world.check_running()?;
            }
        } => died,
    };
    world.stop_node();
    outcome
}

async fn serve(args: Args, version: Option<ControlPlaneVersion>) -> Result<()> {
    println!("starting etcd, kube-apiserver and kube-controller-manager ...");
    let cp = ControlPlane::start_with(ControlPlaneOptions {
        k8s_version: version,
        ..Default::default()
    })
    .await?;
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
    println!(
        "control plane v{} ready: {}",
        cp.kubernetes_version(),
        cp.server_url()
    );
    for (name, pid, log) in cp.processes() {
        println!("  {name:<24} pid {pid:<7} log {}", log.display());
    }
    println!("\nadmin kubeconfig (system:masters): {}", kubeconfig.display());
    println!("  export KUBECONFIG={}", kubeconfig.display());
    println!("  kubectl get namespaces");
    println!("  cargo run -p regcreds -- --help   # then run regcreds against it");
    println!("\nCtrl-C stops everything and removes {}", cp.dir().display());
}
