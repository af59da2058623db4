//! How kube-controller-manager is invoked: only the controllers a cluster without nodes needs.
//!
//! - `serviceaccount-controller`: creates each namespace's `default` ServiceAccount.
//! - `serviceaccount-token-controller`: fills legacy token Secrets (needs the SA signing key).
//! - `namespace-controller`: empties deleted namespaces and removes their finalizer; without it they
//!   stay `Terminating` forever.
//! - `garbage-collector-controller`: ownerReference cascading deletion.
//! - `root-ca-certificate-publisher-controller`: the `kube-root-ca.crt` ConfigMap every namespace has.
//! - `clusterrole-aggregation-controller`: fills the aggregated `admin`/`edit`/`view` ClusterRoles, so
//!   RBAC tests can bind them.
//!
//! With a node ([`ControlPlaneOptions::node_ip`]) also [`NODE_CONTROLLERS`]: the workload controllers
//! (Deployments, ReplicaSets, StatefulSets, DaemonSets, Jobs), node lifecycle (it removes the
//! `node.kubernetes.io/not-ready` taint once the kubelet reports Ready), taint eviction, EndpointSlices
//! for Services, and pod garbage collection.
//!
//! Every flag and controller name here exists from v1.33 (the oldest supported release) to v1.37
//! (compared in both binaries' `--help`), so the command line does not depend on the version.

use std::process::Command;

use super::{ControlPlaneOptions, workdir::Workdir};
use crate::binaries::Binaries;

/// Controllers to run, by their canonical (1.28+) names; check with `kube-controller-manager --help`.
const CONTROLLERS: &[&str] = &[
    "serviceaccount-controller",
    "serviceaccount-token-controller",
    "namespace-controller",
    "garbage-collector-controller",
    "root-ca-certificate-publisher-controller",
    "clusterrole-aggregation-controller",
];

/// Added when the cluster has a node.
const NODE_CONTROLLERS: &[&str] = &[
    "deployment-controller",
    "replicaset-controller",
    "statefulset-controller",
    "daemonset-controller",
    "job-controller",
    "node-lifecycle-controller",
    "taint-eviction-controller",
    "endpointslice-controller",
    "pod-garbage-collector-controller",
];

/// The kube-controller-manager command line; it talks to the apiserver as admin.
pub(super) fn command(bins: &Binaries, dir: &Workdir, options: &ControlPlaneOptions) -> Command {
    let mut controllers = CONTROLLERS.to_vec();
    if options.node_ip.is_some() {
        controllers.extend(NODE_CONTROLLERS);
    }
    let mut cmd = Command::new(&bins.kube_controller_manager);
    cmd.arg(format!("--kubeconfig={}", dir.admin_kubeconfig().display()))
        .arg(format!("--controllers={}", controllers.join(",")))
        .arg("--leader-elect=false")
        // No serving endpoint: nothing scrapes it, and it would need another free port.
        .arg("--secure-port=0")
        .arg(format!(
            "--service-account-private-key-file={}",
            dir.pki("sa.key").display()
        ))
        .arg(format!("--root-ca-file={}", dir.pki("ca.crt").display()));
    // Its client-side rate limit (defaults 20 QPS, burst 30) paces how fast namespaces get their
    // `default` ServiceAccount; only a benchmark creating thousands of namespaces raises it.
    if let Some(qps) = options.kcm_api_qps {
        cmd.arg(format!("--kube-api-qps={qps}"));
    }
    if let Some(burst) = options.kcm_api_burst {
        cmd.arg(format!("--kube-api-burst={burst}"));
    }
    cmd
}
