//! The pinned control-plane and node versions: the one place they are defined.
//!
//! `cargo xtask controlplane build` passes them to `xtask/scripts/controlplane-build.sh` and
//! `xtask/scripts/node-build.sh`, and [`crate::binaries`] derives the cache paths the binaries are
//! looked up in from them.
//!
//! regcreds supports Kubernetes [`OLDEST_K8S_VERSION`]'s minor up to [`K8S_VERSION`]'s: kube 5 and
//! k8s-openapi 0.29 support v1.33 and later (k8s-openapi's `earliest` feature is `v1_33`, `latest` is
//! `v1_37`). Both ends have a control plane; `$REGCREDS_K8S_VERSION` ([`K8S_VERSION_ENV`]) picks one
//! (see [`selected`]), and `cargo xtask test` runs the propagation and ServiceAccount suites on the oldest
//! as well.

use anyhow::{Result, bail};

/// Kubernetes release of every Kubernetes binary the tests run: kube-apiserver and
/// kube-controller-manager, and the node's kubelet, kube-scheduler and kube-proxy.
pub const K8S_VERSION: &str = "1.37.2";

/// etcd release paired with [`K8S_VERSION`] (kubeadm pairs 1.3x with etcd 3.6+).
pub const ETCD_VERSION: &str = "3.7.3";

/// The oldest supported minor, at its latest patch on the Go module proxy: kube-apiserver and
/// kube-controller-manager only (the node's parts stay at [`K8S_VERSION`]).
pub const OLDEST_K8S_VERSION: &str = "1.33.13";

/// etcd release kubeadm v1.33.13 pins (`cmd/kubeadm/app/constants`: `DefaultEtcdVersion = "3.5.24-0"`).
pub const OLDEST_ETCD_VERSION: &str = "3.5.24";

/// containerd release the test node runs (with its runc shim; runc itself is Debian's).
pub const CONTAINERD_VERSION: &str = "2.4.2";

/// Prometheus module version whose `promtool` checks and unit-tests the alert rules
/// (`tests/tests/monitoring.rs`): `github.com/prometheus/prometheus` v0.316.0 is Prometheus 3.16.
/// `xtask/scripts/setup-test-deps.sh` builds and caches the same version (`tests/tests/monitoring.rs`
/// checks that the two agree).
pub const PROMTOOL_VERSION: &str = "v0.316.0";

/// Environment variable choosing the control plane's Kubernetes version: a full version or a minor
/// (`1.33`, `v1.33.13`) of one of [`CONTROL_PLANES`]. Unset: [`K8S_VERSION`].
pub const K8S_VERSION_ENV: &str = "REGCREDS_K8S_VERSION";

/// A control plane the tests can run: its Kubernetes and etcd releases.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ControlPlaneVersion {
    /// `k8s.io/kubernetes` release of kube-apiserver and kube-controller-manager, e.g. `1.37.2`.
    pub kubernetes: &'static str,
    /// `go.etcd.io/etcd/server/v3` release, e.g. `3.7.3`.
    pub etcd: &'static str,
}

/// The newest control plane: [`K8S_VERSION`] with [`ETCD_VERSION`]; the default.
pub const LATEST: ControlPlaneVersion = ControlPlaneVersion {
    kubernetes: K8S_VERSION,
    etcd: ETCD_VERSION,
};

/// The oldest supported one: [`OLDEST_K8S_VERSION`] with [`OLDEST_ETCD_VERSION`].
pub const OLDEST: ControlPlaneVersion = ControlPlaneVersion {
    kubernetes: OLDEST_K8S_VERSION,
    etcd: OLDEST_ETCD_VERSION,
};

/// Every control plane `cargo xtask controlplane build` builds, newest first.
pub const CONTROL_PLANES: [ControlPlaneVersion; 2] = [LATEST, OLDEST];

impl ControlPlaneVersion {
    /// The one of [`CONTROL_PLANES`] that `version` names: exactly, or by its minor (`1.33`), with or
    /// without a leading `v`.
    pub fn named(version: &str) -> Result<Self> {
        let wanted = version.trim().trim_start_matches('v');
        let found = CONTROL_PLANES
            .into_iter()
            .find(|cp| cp.kubernetes == wanted || cp.minor_version() == wanted);
        match found {
            Some(cp) => Ok(cp),
            None => {
                let known: Vec<_> = CONTROL_PLANES.iter().map(|cp| cp.kubernetes).collect();
                bail!(
                    "no control plane for Kubernetes {version:?}; known: {}",
                    known.join(", ")
                )
            }
        }
    }

    /// `major.minor`, e.g. `1.33`.
    pub fn minor_version(&self) -> &'static str {
        let kubernetes = self.kubernetes;
        let end = kubernetes.rfind('.').unwrap_or(kubernetes.len());
        &kubernetes[..end]
    }
}

/// The control plane `$REGCREDS_K8S_VERSION` asks for, [`LATEST`] when it is unset or empty.
pub fn selected() -> Result<ControlPlaneVersion> {
    match std::env::var(K8S_VERSION_ENV) {
        Ok(v) if !v.trim().is_empty() => ControlPlaneVersion::named(&v),
        _ => Ok(LATEST),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_control_plane_is_named_by_its_version_or_its_minor() {
        assert_eq!(ControlPlaneVersion::named("1.33").ok(), Some(OLDEST));
        assert_eq!(ControlPlaneVersion::named("v1.33.13").ok(), Some(OLDEST));
        assert_eq!(ControlPlaneVersion::named(K8S_VERSION).ok(), Some(LATEST));
        assert_eq!(OLDEST.minor_version(), "1.33");
    }

    #[test]
    fn an_unknown_version_is_refused_with_the_known_ones() {
        let error = ControlPlaneVersion::named("1.32")
            .expect_err("1.32 is older than supported")
            .to_string();
        assert!(
            error.contains("1.33.13") && error.contains(K8S_VERSION),
            "{error}"
        );
        assert!(ControlPlaneVersion::named("1.3").is_err());
    }
}
