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

use std::process::Command;

use super::{Options, workdir::Workdir};
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

/// The kube-controller-manager command line; it talks to the apiserver as admin.
pub(super) fn command(bins: &Binaries, dir: &Workdir, options: &Options) -> Command {
    let mut cmd = Command::new(&bins.kube_controller_manager);
    cmd.arg(format!("--kubeconfig={}", dir.admin_kubeconfig().display()))
        .arg(format!("--controllers={}", CONTROLLERS.join(",")))
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
