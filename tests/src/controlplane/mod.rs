//! [`ControlPlane`]: etcd + kube-apiserver + kube-controller-manager on loopback.
//!
//! [`ControlPlaneOptions::node_ip`] makes it the control plane of a cluster with a node (see
//! [`crate::node`]): the apiserver then also listens on that address, advertises it as the `kubernetes`
//! Service's endpoint (so pods reach it through the ClusterIP), authorizes kubelets with the Node
//! authorizer, and the controller manager also runs the workload and node-lifecycle controllers.
//!
//! Its Kubernetes release is v1.37 unless [`ControlPlaneOptions::k8s_version`] or `$REGCREDS_K8S_VERSION`
//! picks another pinned one, such as the oldest supported v1.33 (see [`crate::versions`]); a binary
//! directory of another release than the one asked for is refused at start.
//!
//! Start-up ([`start`]): locate binaries → temp dir → CA, serving cert, SA signing key → pick ports →
//! spawn etcd and kube-apiserver → write the admin kubeconfig → spawn kube-controller-manager → poll
//! `/readyz` → wait for `default/default` ServiceAccount (proof the controller manager works).
//!
//! The struct keeps only runtime-independent state: child processes (std::process) and a `kube::Config`.
//! Every `#[tokio::test]` has its own runtime, and a `kube::Client` is bound to the runtime it was made
//! in, so callers get a fresh client each time ([`ControlPlane::client`] is cheap).

mod apiserver;
mod etcd;
mod kcm;
mod shared;
mod start;
mod workdir;

use std::{
    net::Ipv4Addr,
    path::{Path, PathBuf},
    sync::{
        Mutex, MutexGuard, PoisonError,
        atomic::{AtomicU32, Ordering},
    },
    time::Duration,
};

use anyhow::{Context, Result};

use crate::{binaries::Binaries, child::Child, kubeconfig, metrics, pki::Pki, versions::ControlPlaneVersion};
use workdir::Workdir;

/// How long a restarted apiserver may take to be ready again.
const RESTART_TIMEOUT: Duration = Duration::from_secs(60);

/// The loopback ports one control plane listens on.
#[derive(Debug, Clone, Copy)]
struct Ports {
    etcd_client: u16,
    etcd_peer: u16,
    apiserver: u16,
}

/// How to start a control plane; the default is the loopback-only one every e2e suite uses.
#[derive(Debug, Clone, Copy, Default)]
pub struct ControlPlaneOptions {
    /// Run this pinned version from its cache directory (see [`crate::binaries::bin_dir`]). `None`:
    /// `$REGCREDS_CONTROLPLANE_BIN`, else the version `$REGCREDS_K8S_VERSION` selects (default
    /// [`crate::versions::K8S_VERSION`]).
    pub k8s_version: Option<ControlPlaneVersion>,
    /// Serve a node at this (non-loopback) address: see the module docs. `None`: loopback only.
    pub node_ip: Option<Ipv4Addr>,
    /// kube-controller-manager's `--kube-api-qps` (its default is 20), e.g. for a benchmark.
    pub kcm_api_qps: Option<u32>,
    /// kube-controller-manager's `--kube-api-burst` (its default is 30).
    pub kcm_api_burst: Option<u32>,
}

/// The three running processes.
#[derive(Debug)]
struct Processes {
    etcd: Child,
    apiserver: Child,
    kcm: Child,
}

impl Processes {
    /// In shutdown order: clients before the servers they talk to.
    fn all_mut(&mut self) -> [&mut Child; 3] {
        [&mut self.kcm, &mut self.apiserver, &mut self.etcd]
    }
}

/// A running Kubernetes control plane (etcd, kube-apiserver, kube-controller-manager).
///
/// Dropping it kills the processes and removes its temporary directory.
#[derive(Debug)]
pub struct ControlPlane {
    // Field order is drop order: processes stop before their directory is removed.
    procs: Mutex<Processes>,
    workdir: Workdir,
    bins: Binaries,
    kubernetes_version: String,
    options: ControlPlaneOptions,
    ports: Ports,
    pki: Pki,
    server_url: String,
    admin_kubeconfig: PathBuf,
    admin: kube::Config,
    user_files: AtomicU32,
}

impl ControlPlane {
    /// The control plane shared by all tests of this test binary, started on first use.
    ///
    /// Torn down when the process exits: the kernel kills its processes and a janitor removes its
    /// directory. Panics with the processes' log tails if it cannot start.
    pub async fn shared() -> &'static ControlPlane {
        shared::get().await
    }

    /// Starts a private control plane, e.g. for tests that kill or restart the apiserver.
    ///
    /// Dropping it kills the processes and removes its directory.
    pub async fn start() -> Result<ControlPlane> {
        start::start(ControlPlaneOptions::default()).await
    }

    /// Starts a private control plane with `options` (e.g. for a node, see [`crate::node`]).
    pub async fn start_with(options: ControlPlaneOptions) -> Result<ControlPlane> {
        start::start(options).await
    }

    /// The options it was started with.
    pub fn options(&self) -> ControlPlaneOptions {
        self.options
    }

    /// The Kubernetes release it runs, as kube-apiserver reports it: e.g. `1.33.13`.
    pub fn kubernetes_version(&self) -> &str {
        &self.kubernetes_version
    }

    /// A new admin (`system:masters`) client. Must be called inside a Tokio runtime.
    pub fn client(&self) -> kube::Client {
        kube::Client::try_from(self.admin.clone()).expect("building a client from the admin kubeconfig")
    }

    /// The admin kubeconfig file.
    pub fn kubeconfig_path(&self) -> &Path {
        &self.admin_kubeconfig
    }

    /// The apiserver's URL, `https://127.0.0.1:<port>`.
    pub fn server_url(&self) -> &str {
        &self.server_url
    }

    /// The temporary directory holding certificates, data and `logs/`.
    pub fn dir(&self) -> &Path {
        self.workdir.root()
    }

    /// `(program, pid, log file)` of each running process.
    pub fn processes(&self) -> Vec<(&'static str, u32, PathBuf)> {
        let mut procs = self.lock_procs();
        procs
            .all_mut()
            .iter()
            .map(|c| (c.name(), c.pid(), c.log().to_path_buf()))
            .collect()
    }

    /// An error naming the first process that has exited, with its log tail.
    pub fn check_running(&self) -> Result<()> {
        let mut procs = self.lock_procs();
        for child in procs.all_mut() {
            if let Some(status) = child.exited() {
                anyhow::bail!(
                    "{} exited ({status}); last log lines:\n{}",
                    child.name(),
                    child.log_tail(30)
                );
            }
        }
        Ok(())
    }

    /// A client authenticated as `user` in `groups` by a client certificate; RBAC applies to it.
    ///
    /// At most one group (see `pki::name`); `&[]` gives a plain authenticated user.
    pub async fn client_as(&self, user: &str, groups: &[&str]) -> Result<kube::Client> {
        let config = kubeconfig::to_config(&self.kubeconfig_yaml_as(user, groups)?).await?;
        Ok(kube::Client::try_from(config)?)
    }

    /// A kubeconfig file for `user` in `groups`, e.g. to run the regcreds binary as that user.
    pub async fn kubeconfig_as(&self, user: &str, groups: &[&str]) -> Result<PathBuf> {
        let yaml = self.kubeconfig_yaml_as(user, groups)?;
        let n = self.user_files.fetch_add(1, Ordering::Relaxed);
        let safe: String = user
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
            .collect();
        let path = self.workdir.users().join(format!("{n}-{safe}.kubeconfig"));
        tokio::fs::write(&path, yaml)
            .await
            .with_context(|| format!("writing {}", path.display()))?;
        Ok(path)
    }

    /// Sum of `apiserver_request_total` over `verbs` (and `resource`, if given) from `/metrics`.
    ///
    /// Verbs are the metric's: `GET`, `LIST`, `WATCH`, `POST`, `PUT`, `PATCH`, `APPLY` (server-side
    /// apply), `DELETE`, `DELETECOLLECTION`. Counts include the controller manager's and other tests'
    /// requests since start, so compare deltas around the code under test.
    pub async fn request_count(&self, verbs: &[&str], resource: Option<&str>) -> Result<u64> {
        Ok(metrics::sum_requests(
            &self.metrics_text().await?,
            verbs,
            resource,
        ))
    }

    /// The apiserver's `/metrics` exposition, for several [`crate::sum_requests`] over one snapshot
    /// (it is megabytes long: fetch it once, not once per count).
    pub async fn metrics_text(&self) -> Result<String> {
        let request = http::Request::get("/metrics").body(Vec::new())?;
        self.client().request_text(request).await.context("GET /metrics")
    }

    /// Kills kube-apiserver (SIGKILL, like a crash) and starts it again on the same port and etcd.
    ///
    /// Returns once `/readyz` is OK again.
    pub async fn restart_apiserver(&self) -> Result<()> {
        {
            let mut procs = self.lock_procs();
            procs.apiserver.stop(Duration::ZERO);
            let cmd = apiserver::command(&self.bins, &self.workdir, &self.ports, &self.options);
            procs.apiserver = Child::spawn("kube-apiserver", cmd, &self.workdir.log("kube-apiserver"))?;
        }
        start::wait_ready(self, RESTART_TIMEOUT).await
    }

    /// Stops the processes gracefully (SIGTERM, then SIGKILL after `grace` each) and cleans up.
    pub fn shutdown(self, grace: Duration) {
        for child in self.lock_procs().all_mut() {
            child.stop(grace);
        }
    }

    fn kubeconfig_yaml_as(&self, user: &str, groups: &[&str]) -> Result<String> {
        let creds = self.pki.client_cert(user, groups)?;
        Ok(kubeconfig::render(
            &self.server_url,
            &self.pki.ca_pem(),
            user,
            &creds,
        ))
    }

    fn lock_procs(&self) -> MutexGuard<'_, Processes> {
        // A panicking test must not make the control plane unusable for the others.
        self.procs.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The last lines of every process's log, for error messages.
    fn log_tails(&self) -> String {
        let mut procs = self.lock_procs();
        let tails = procs
            .all_mut()
            .map(|c| format!("--- {} ({}) ---\n{}", c.name(), c.log().display(), c.log_tail(25)));
        tails.join("\n")
    }
}
