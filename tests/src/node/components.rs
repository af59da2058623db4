//! kube-scheduler and kube-proxy: their command lines and configuration.
//!
//! Both talk to the apiserver with their own identities (`system:kube-scheduler`,
//! `system:kube-proxy`), which the apiserver's bootstrap RBAC already grants what they need.
//!
//! kube-proxy (iptables mode) makes Service ClusterIPs work, above all `kubernetes.default` (10.0.0.1),
//! which in-cluster clients such as regcreds' pods use. Its rules go to the world's network namespace.
//! Conntrack settings are zero ("leave as is"): `nf_conntrack_max` and friends are host-global.

use std::{net::Ipv4Addr, path::Path, process::Command};

use anyhow::Result;

use crate::binaries::NodeBinaries;

/// kube-proxy's `/healthz` (200 once its first sync is done) on 127.0.0.1.
pub(crate) const PROXY_HEALTHZ_PORT: u16 = 10256;
/// kube-proxy's `/metrics` on 127.0.0.1.
const PROXY_METRICS_PORT: u16 = 10249;

/// The kube-scheduler command line: no leader election, no serving port.
pub(crate) fn scheduler(bins: &NodeBinaries, kubeconfig: &Path) -> Command {
    let mut cmd = Command::new(&bins.kube_scheduler);
    cmd.arg(format!("--kubeconfig={}", kubeconfig.display()))
        .arg(format!("--authentication-kubeconfig={}", kubeconfig.display()))
        .arg(format!("--authorization-kubeconfig={}", kubeconfig.display()))
        .arg("--leader-elect=false")
        .arg("--secure-port=0");
    cmd
}

/// Writes `kube-proxy.yaml` under `world` and returns the kube-proxy command line.
pub(crate) fn proxy(
    bins: &NodeBinaries,
    world: &Path,
    kubeconfig: &Path,
    node_name: &str,
    node_ip: Ipv4Addr,
    cluster_cidr: &str,
) -> Result<Command> {
    let config = world.join("kube-proxy.yaml");
    std::fs::write(
        &config,
        format!(
            r#"apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
clientConnection:
  kubeconfig: {kubeconfig}
hostnameOverride: {node_name}
bindAddress: {node_ip}
mode: iptables
clusterCIDR: {cluster_cidr}
healthzBindAddress: 127.0.0.1:{PROXY_HEALTHZ_PORT}
metricsBindAddress: 127.0.0.1:{PROXY_METRICS_PORT}
# 0 = leave the kernel's values alone: these sysctls are host-global.
conntrack:
  maxPerCore: 0
  min: 0
  tcpEstablishedTimeout: 0s
  tcpCloseWaitTimeout: 0s
  udpTimeout: 0s
  udpStreamTimeout: 0s
iptables:
  # true would set net.ipv4.conf.all.route_localnet; not needed here.
  localhostNodePorts: false
  minSyncPeriod: 0s
  syncPeriod: 30s
"#,
            kubeconfig = kubeconfig.display(),
        ),
    )?;
    let mut cmd = Command::new(&bins.kube_proxy);
    cmd.arg(format!("--config={}", config.display()));
    Ok(cmd)
}
