//! The pinned control-plane and node versions: the one place they are defined.
//!
//! `cargo xtask controlplane build` passes them to `xtask/scripts/controlplane-build.sh` and
//! `xtask/scripts/node-build.sh`, and [`crate::binaries`] derives the cache paths the binaries are
//! looked up in from them.

/// Kubernetes release of every Kubernetes binary the tests run: kube-apiserver and
/// kube-controller-manager, and the node's kubelet, kube-scheduler and kube-proxy.
pub const K8S_VERSION: &str = "1.37.2";

/// etcd release paired with [`K8S_VERSION`] (kubeadm pairs 1.3x with etcd 3.6+).
pub const ETCD_VERSION: &str = "3.7.3";

/// containerd release the test node runs (with its runc shim; runc itself is Debian's).
pub const CONTAINERD_VERSION: &str = "2.4.2";

/// Prometheus module version whose `promtool` checks and unit-tests the alert rules
/// (`tests/tests/monitoring.rs`): `github.com/prometheus/prometheus` v0.316.0 is Prometheus 3.16.
/// `xtask/scripts/setup-test-deps.sh` builds and caches the same version (`tests/tests/monitoring.rs`
/// checks that the two agree).
pub const PROMTOOL_VERSION: &str = "v0.316.0";
