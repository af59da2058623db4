//! kubelet for the test node: its configuration and command line.
//!
//! Data (root dir, pod logs, certificates, plugin dirs) under the world directory; the few fixed paths
//! it still writes (`/var/lib/kubelet/device-plugins`, `/var/log/containers`) land in the world's
//! private `/var` overlay, and the sysctls it sets in the private files [`super::hermetic`] mounted.
//! It talks to the apiserver as `system:node:<name>` (Node authorizer, as in real clusters) and
//! serves on the node address, where the apiserver reaches it for `kubectl logs`/`exec`.

use std::{net::Ipv4Addr, path::Path, process::Command};

use anyhow::Result;

use super::containerd::{ContainerdPaths, path_with};
use crate::binaries::NodeBinaries;

/// kubelet's API port on the node address (the world has its own network namespace: no clash).
pub(crate) const PORT: u16 = 10250;
/// kubelet's `/healthz` on 127.0.0.1.
pub(crate) const HEALTHZ_PORT: u16 = 10248;

/// Writes `kubelet/config.yaml` under `world` and returns the kubelet command.
pub(crate) fn command(
    bins: &NodeBinaries,
    world: &Path,
    containerd: &ContainerdPaths,
    kubeconfig: &Path,
    node_name: &str,
    node_ip: Ipv4Addr,
    cgroup_root: &str,
) -> Result<Command> {
    let dir = world.join("kubelet");
    for sub in ["root", "pki", "pod-logs", "volume-plugins"] {
        std::fs::create_dir_all(dir.join(sub))?;
    }
    let config = dir.join("config.yaml");
    std::fs::write(&config, config_yaml(&dir, containerd, node_ip, cgroup_root))?;
    let mut cmd = Command::new(&bins.kubelet);
    cmd.arg(format!("--config={}", config.display()))
        .arg(format!("--kubeconfig={}", kubeconfig.display()))
        .arg(format!("--root-dir={}", dir.join("root").display()))
        .arg(format!("--cert-dir={}", dir.join("pki").display()))
        .arg(format!("--hostname-override={node_name}"))
        .arg(format!("--node-ip={node_ip}"))
        .arg("--v=2")
        // Volume plugins and credential helpers are looked up on PATH.
        .env("PATH", path_with(bins.dir()));
    Ok(cmd)
}

fn config_yaml(dir: &Path, containerd: &ContainerdPaths, node_ip: Ipv4Addr, cgroup_root: &str) -> String {
    let endpoint = format!("unix://{}", containerd.socket().display());
    format!(
        r#"apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
cgroupDriver: cgroupfs
cgroupRoot: /{cgroup_root}
failCgroupV1: false
failSwapOn: false
containerRuntimeEndpoint: {endpoint}
imageServiceEndpoint: {endpoint}
address: {node_ip}
port: {PORT}
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: {HEALTHZ_PORT}
# The apiserver calls kubelet without a client certificate (logs, exec); kubelet listens only inside
# the world's network namespace.
authentication:
  anonymous:
    enabled: true
  webhook:
    enabled: false
  x509: {{}}
authorization:
  mode: AlwaysAllow
podLogsDir: {pod_logs}
volumePluginDir: {volume_plugins}
resolvConf: /etc/resolv.conf
registerNode: true
serializeImagePulls: false
# Never collect images or evict pods because a busy CI disk looks full.
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
evictionHard:
  memory.available: "100Mi"
  nodefs.available: "1%"
  imagefs.available: "1%"
  nodefs.inodesFree: "1%"
# Quick status and mounted-Secret updates: tests wait for both.
nodeStatusReportFrequency: 10s
syncFrequency: 10s
fileCheckFrequency: 10s
"#,
        pod_logs = dir.join("pod-logs").display(),
        volume_plugins = dir.join("volume-plugins").display(),
    )
}
