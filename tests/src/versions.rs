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
