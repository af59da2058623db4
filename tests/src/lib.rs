//! `regcreds_testkit`: a real Kubernetes control plane for regcreds' tests and demo.
//!
//! ```text
//!  test ──► ControlPlane::shared() / start()
//!             │ binaries: $REGCREDS_CONTROLPLANE_BIN or ~/.cache/regcreds/controlplane/v<k8s>/bin
//!             │ pki: one rcgen CA → apiserver serving cert, client certs (admin = system:masters)
//!             ├─► etcd ◄── kube-apiserver (RBAC, ServiceAccount admission) ◄── kube-controller-manager
//!             │     children die with this process (PR_SET_PDEATHSIG), temp dir removed by Drop/janitor
//!             └─► client() / client_as() / kubeconfig_as() / request_count() / restart_apiserver()
//! ```
//!
//! [`node`]: the same control plane plus a real node (kubelet, containerd, runc, CNI, kube-proxy,
//! kube-scheduler) inside namespaces the test run creates, where pods really pull and run.
//!
//! Helpers: [`temp_namespace`] (random namespace with its `default` ServiceAccount), [`wait_for`]
//! (polling assertions), [`regcreds_binary`] (the binary under test, built on demand) and
//! [`regcreds_command`] (it with a clean environment), [`regcreds_leftovers`] (what regcreds wrote that
//! is still in the cluster), [`append_pull_secret_ref`] (a user's own `imagePullSecrets` entry),
//! [`binaries::python`] (the venv with moto & co.), [`free_port`], [`admin_get`]/[`scrape`] (regcreds'
//! admin endpoint), [`manifests`] (render `deploy/` with kubectl and helm, check the hardening, server-side
//! dry runs). `cargo xtask controlplane up` runs the same
//! [`ControlPlane`] in the foreground for manual use. [`image`] builds the regcreds container image
//! without Docker (`cargo xtask image`).

mod admin;
pub mod binaries;
mod child;
mod controlplane;
mod counting;
pub mod image;
mod kubeconfig;
pub mod manifests;
mod metrics;
pub mod moto;
mod namespace;
pub mod node;
mod ownership;
mod pki;
mod regcreds_bin;
pub mod versions;
mod wait;

pub use admin::{admin_get, metric_value, scrape};
pub use controlplane::{ControlPlane, ControlPlaneOptions};
pub use counting::{Recorded, RequestCounter, counting_client};
pub use metrics::sum_requests;
pub use namespace::{TEMP_NAMESPACE_LABEL, temp_namespace};
pub use ownership::{append_pull_secret_ref, regcreds_leftovers};
pub use regcreds_bin::{REGCREDS_BINARY_ENV, regcreds_binary, regcreds_command};
pub use regcreds_fakes::ports::{free_port, free_ports};
pub use regcreds_fakes::registry;
pub use wait::wait_for;
