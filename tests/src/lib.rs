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
//! Helpers: [`temp_namespace`] (random namespace with its `default` ServiceAccount) and
//! [`ensure_namespace`] (a named one, labelled [`TEST_LABEL`]), [`wait_for`] (polling assertions),
//! [`regcreds_binary`] (the binary under test, built on demand), [`regcreds_command`] (it with a clean
//! environment) and [`Regcreds`] (`regcreds run` as a child process), [`propagator`] (the propagator
//! library in the test process), [`regcreds_leftovers`] (what regcreds wrote that is still in the
//! cluster), [`secret_data`]/[`pull_secret_refs`] (what it wrote), [`append_pull_secret_ref`] and
//! [`users_opaque_secret`] (a user's own objects), [`binaries::python`] (the venv with moto & co.),
//! [`free_port`] (from `regcreds_fakes::ports`), [`admin_get`]/[`scrape`]/[`metric_value`]/[`metric_sum`]
//! (regcreds' admin endpoint), [`manifests`] (render `deploy/` with kubectl and helm, check the hardening
//! and RBAC, server-side dry runs). `cargo xtask controlplane up` runs the same [`ControlPlane`] in the
//! foreground for manual use. [`image`] builds the regcreds container image without Docker
//! (`cargo xtask image`).

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
pub mod propagator;
mod regcreds_bin;
mod regcreds_run;
pub mod versions;
mod wait;

pub use admin::{admin_get, metric_sum, metric_value, scrape};
pub use controlplane::{ControlPlane, ControlPlaneOptions};
pub use counting::{Recorded, RequestCounter, counting_client};
pub use metrics::sum_requests;
pub use namespace::{TEMP_NAMESPACE_LABEL, TEST_LABEL, delete_namespaces, ensure_namespace, temp_namespace};
pub use ownership::{
    append_pull_secret_ref, managed_secret_count, pull_secret_refs, regcreds_leftovers, secret, secret_data,
    users_opaque_secret,
};
pub use regcreds_bin::{REGCREDS_BINARY_ENV, regcreds_binary, regcreds_clean_command, regcreds_command};
pub use regcreds_fakes::ports::{free_port, free_ports};
pub use regcreds_fakes::registry;
pub use regcreds_run::Regcreds;
pub use wait::wait_for;
