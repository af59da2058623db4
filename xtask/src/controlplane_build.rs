//! `cargo xtask controlplane build`: etcd, kube-apiserver and kube-controller-manager from source.
//!
//! No package registry ships kube-apiserver, so `xtask/scripts/controlplane-build.sh` builds the pinned
//! versions (`regcreds_testkit::versions`) with Go through the module proxy into
//! `~/.cache/regcreds/controlplane/v<k8s>/bin`. Cold: ~7 min on 2 cores; afterwards nothing to do.

use std::{path::PathBuf, process::Command, time::Instant};

use anyhow::Result;
use regcreds_testkit::{
    binaries::{Binaries, pinned_bin_dir},
    versions::{ETCD_VERSION, K8S_VERSION},
};

use crate::shell::{self, human};

/// Builds the pinned binaries unless cached; returns their directory.
pub fn run() -> Result<PathBuf> {
    let dir = pinned_bin_dir();
    if Binaries::in_dir(&dir).is_some() {
        println!(
            "control plane v{K8S_VERSION} (etcd v{ETCD_VERSION}) cached in {}: nothing to do",
            dir.display()
        );
        return Ok(dir);
    }
    println!(
        "building kube-apiserver + kube-controller-manager v{K8S_VERSION} and etcd v{ETCD_VERSION} with Go"
    );
    println!(
        "into {} (cold: ~7 min and ~5 GB of Go caches on 2 cores)",
        dir.display()
    );
    let started = Instant::now();
    let script = shell::repo_root().join("xtask/scripts/controlplane-build.sh");
    shell::run(
        Command::new("bash")
            .arg(script)
            .env("K8S_VERSION", K8S_VERSION)
            .env("ETCD_VERSION", ETCD_VERSION),
    )?;
    println!("control plane built in {}", human(started.elapsed()));
    Ok(dir)
}
