//! The pinned control-plane versions: the one place they are defined.
//!
//! `cargo xtask controlplane build` passes them to `xtask/scripts/controlplane-build.sh`, and
//! [`crate::binaries`] derives the cache path the binaries are looked up in from them.

/// Kubernetes release whose kube-apiserver and kube-controller-manager the tests run.
pub const K8S_VERSION: &str = "1.37.2";

/// etcd release paired with [`K8S_VERSION`] (kubeadm pairs 1.3x with etcd 3.6+).
pub const ETCD_VERSION: &str = "3.7.3";
