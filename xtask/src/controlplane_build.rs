//! `cargo xtask controlplane build`: the control plane and a node's parts, from source, once.
//!
//! No package registry ships kube-apiserver or kubelet, so two scripts build the pinned versions
//! (`regcreds_testkit::versions`) with Go through the module proxy:
//! - `xtask/scripts/controlplane-build.sh`: etcd, kube-apiserver, kube-controller-manager into
//!   `~/.cache/regcreds/controlplane/v<k8s>/bin` (cold: ~7 min on 2 cores), once per control plane of
//!   `regcreds_testkit::versions::CONTROL_PLANES`: v1.37 (the newest) and v1.33 (the oldest supported
//!   minor: 23 min measured on 2 cores shared with other builds, about as long as v1.37 on idle ones);
//!   `cargo xtask demo` and `controlplane up --node` build only the newest ([`newest`]);
//! - `xtask/scripts/node-build.sh`: kubelet, kube-scheduler, kube-proxy (same Kubernetes module),
//!   containerd + its runc shim + ctr, and the static `pause` binary into
//!   `~/.cache/regcreds/node/v<k8s>-containerd-v<containerd>/bin` (cold: ~5 min more, sharing the
//!   control plane's Go caches).
//!
//! Afterwards there is nothing to do.

use std::{path::PathBuf, process::Command, time::Instant};

use anyhow::Result;
use regcreds_testkit::{
    binaries::{self, Binaries, NodeBinaries, pinned_node_bin_dir},
    versions::{CONTAINERD_VERSION, CONTROL_PLANES, ControlPlaneVersion, K8S_VERSION, LATEST},
};

use crate::shell::{self, human};

/// Builds every control plane (newest first), then the node's parts, each unless cached; returns the
/// newest control plane's binary directory.
pub fn run() -> Result<PathBuf> {
    for version in CONTROL_PLANES {
        control_plane(&version)?;
    }
    node()?;
    Ok(binaries::bin_dir(&LATEST))
}

/// The newest control plane and the node's parts, each unless cached (what the demo and a node need);
/// returns the control plane's binary directory.
pub fn newest() -> Result<PathBuf> {
    let dir = control_plane(&LATEST)?;
    node()?;
    Ok(dir)
}

/// etcd, kube-apiserver, kube-controller-manager of `version`; returns their directory.
pub fn control_plane(version: &ControlPlaneVersion) -> Result<PathBuf> {
    let ControlPlaneVersion { kubernetes, etcd } = *version;
    let dir = binaries::bin_dir(version);
    if Binaries::in_dir(&dir).is_some() {
        println!(
            "control plane v{kubernetes} (etcd v{etcd}) cached in {}: nothing to do",
            dir.display()
        );
        return Ok(dir);
    }
    println!("building kube-apiserver + kube-controller-manager v{kubernetes} and etcd v{etcd} with Go");
    println!(
        "into {} (cold: ~7 min and ~5 GB of Go caches on 2 cores)",
        dir.display()
    );
    let started = Instant::now();
    shell::run(
        Command::new("bash")
            .arg(shell::repo_root().join("xtask/scripts/controlplane-build.sh"))
            .env("K8S_VERSION", kubernetes)
            .env("ETCD_VERSION", etcd),
    )?;
    println!(
        "control plane v{kubernetes} built in {}",
        human(started.elapsed())
    );
    Ok(dir)
}

/// kubelet, kube-scheduler, kube-proxy, containerd (+ shim, ctr), pause; returns their directory.
pub fn node() -> Result<PathBuf> {
    let dir = pinned_node_bin_dir();
    if NodeBinaries::in_dir(&dir).is_some() {
        println!(
            "node v{K8S_VERSION} (containerd v{CONTAINERD_VERSION}) cached in {}: nothing to do",
            dir.display()
        );
        return Ok(dir);
    }
    println!(
        "building kubelet, kube-scheduler, kube-proxy v{K8S_VERSION}, containerd v{CONTAINERD_VERSION} and pause"
    );
    println!(
        "into {} (cold: ~5 min after the control plane on 2 cores)",
        dir.display()
    );
    let started = Instant::now();
    shell::run(
        Command::new("bash")
            .arg(shell::repo_root().join("xtask/scripts/node-build.sh"))
            .env("K8S_VERSION", K8S_VERSION)
            .env("CONTAINERD_VERSION", CONTAINERD_VERSION),
    )?;
    println!("node built in {}", human(started.elapsed()));
    Ok(dir)
}
