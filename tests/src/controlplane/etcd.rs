//! How etcd is invoked: a single throwaway member on loopback.

use std::process::Command;

use super::{Ports, workdir::Workdir};
use crate::binaries::Binaries;

/// The etcd command line for `ports` with data under `dir`.
pub(super) fn command(bins: &Binaries, dir: &Workdir, ports: &Ports) -> Command {
    let client = format!("http://127.0.0.1:{}", ports.etcd_client);
    let peer = format!("http://127.0.0.1:{}", ports.etcd_peer);
    let mut cmd = Command::new(&bins.etcd);
    cmd.arg("--name=regcreds-test")
        .arg(format!("--data-dir={}", dir.etcd_data().display()))
        .arg(format!("--listen-client-urls={client}"))
        .arg(format!("--advertise-client-urls={client}"))
        // A random peer port (not the default 2380) so several control planes can run at once.
        .arg(format!("--listen-peer-urls={peer}"))
        .arg(format!("--initial-advertise-peer-urls={peer}"))
        .arg(format!("--initial-cluster=regcreds-test={peer}"))
        // Test data needs no durability, and fsync on a busy CI disk costs seconds per write burst.
        .arg("--unsafe-no-fsync=true")
        .arg("--log-level=warn");
    cmd
}
