//! How kube-apiserver is invoked: certificate authentication, RBAC, real ServiceAccount tokens.
//!
//! The same command line for every supported release: each flag here exists from v1.33 (the oldest,
//! `versions::OLDEST`) to v1.37 (compared in both binaries' `--help`). A flag that one of them lacks
//! must be chosen by [`crate::ControlPlane::kubernetes_version`]'s minor.

use std::process::Command;

use super::{ControlPlaneOptions, Ports, workdir::Workdir};
use crate::binaries::Binaries;

/// The kube-apiserver command line; the same on every (re)start so restarts keep port and etcd.
pub(super) fn command(
    bins: &Binaries,
    dir: &Workdir,
    ports: &Ports,
    options: &ControlPlaneOptions,
) -> Command {
    let pki = |file: &str| dir.pki(file).display().to_string();
    let mut cmd = Command::new(&bins.kube_apiserver);
    cmd.arg(format!("--etcd-servers=http://127.0.0.1:{}", ports.etcd_client))
        .arg(format!("--secure-port={}", ports.apiserver))
        .arg(format!("--cert-dir={}", pki("")))
        .arg(format!("--tls-cert-file={}", pki("apiserver.crt")))
        .arg(format!("--tls-private-key-file={}", pki("apiserver.key")))
        .arg(format!("--client-ca-file={}", pki("ca.crt")))
        .arg("--service-cluster-ip-range=10.0.0.0/24")
        .arg(format!(
            "--service-account-issuer=https://127.0.0.1:{}",
            ports.apiserver
        ))
        .arg(format!("--service-account-key-file={}", pki("sa.pub")))
        .arg(format!("--service-account-signing-key-file={}", pki("sa.key")))
        .arg("--allow-privileged=true")
        .arg("--profiling=false");
    match options.node_ip {
        None => {
            cmd.arg("--bind-address=127.0.0.1")
                .arg("--advertise-address=127.0.0.1")
                .arg("--authorization-mode=RBAC")
                // On by default; named because regcreds' tests rely on them: ServiceAccount copies an
                // SA's imagePullSecrets into new Pods, NamespaceLifecycle refuses writes to terminating
                // namespaces. (envtest disables ServiceAccount because it runs no controller manager.)
                .arg("--enable-admission-plugins=NamespaceLifecycle,ServiceAccount")
                // The `kubernetes` Service's Endpoints would point at 127.0.0.1, which Endpoints
                // validation rejects over and over in the log; nothing here routes to it anyway.
                .arg("--endpoint-reconciler-type=none");
        }
        Some(ip) => {
            // Inside the node world's own network namespace: listening on every address there
            // reaches only that namespace. The `kubernetes` Service's endpoint is `ip`, which
            // kube-proxy routes the ClusterIP 10.0.0.1 to, as in-cluster clients expect.
            cmd.arg("--bind-address=0.0.0.0")
                .arg(format!("--advertise-address={ip}"))
                // As real clusters: a kubelet may read only the Secrets of pods bound to its node.
                .arg("--authorization-mode=Node,RBAC")
                .arg("--enable-admission-plugins=NamespaceLifecycle,ServiceAccount,NodeRestriction")
                // `kubectl logs/exec` reach the kubelet at its InternalIP, no name lookup needed.
                .arg("--kubelet-preferred-address-types=InternalIP");
        }
    }
    cmd
}
