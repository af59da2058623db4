//! A real node: the control plane plus kube-scheduler, containerd, kubelet and kube-proxy, with two
//! registries, all inside namespaces the test run creates. Pods really pull and really run.
//!
//! ```text
//!  host                          node world (own network, mount and PID namespaces; see launcher)
//!  ────                          ──────────────────────────────────────────────────────────────────
//!  cargo test --test node ─► harness: outside? ─► run_in_world(self) ─► harness again, inside:
//!                                 hermetic::prepare: /etc /opt /var /run overlaid, kubelet's sysctls
//!                                 private, lo up + node address 10.254.77.1, cgroup root /<name>
//!                                 NodeWorld::shared() (first test), then every test on it:
//!                                   registry         TLS + htpasswd (user `puller`): demo/busybox:v1
//!                                   public_registry  TLS, anonymous: sandbox (pause) and regcreds image
//!                                   ControlPlane     apiserver on 0.0.0.0 (advertises the node address)
//!                                                    KCM + workload and node-lifecycle controllers
//!                                   kube-scheduler · containerd (+ runc, CNI bridge 10.244.0.0/24)
//!                                   kubelet (system:node:regcreds-node) · kube-proxy (iptables)
//!  launcher cleanup ◄── world ends (last test done, a panic, or SIGKILL): the kernel kills every
//!  (cgroups, world dir)  process in it; mounts, links and rules vanish with the namespaces
//! ```
//!
//! Adding a node test: write `async fn my_test(world: &NodeWorld) -> anyhow::Result<()>` in a test
//! binary whose `main` is [`harness`] (see `tests/tests/node.rs`) and add its name to the
//! [`node_tests!`](crate::node_tests) list. Tests share the world and run one after the other (each
//! in its own namespaces; a test that installs regcreds removes it again).

mod components;
mod containerd;
mod credential_provider;
mod harness;
mod hermetic;
mod images;
mod install;
mod journey;
mod kubelet;
mod launcher;
mod pods;
mod regcreds_image;
mod tools;

pub mod host_state;

use std::{
    net::Ipv4Addr,
    path::{Path, PathBuf},
    process::Command,
    sync::{Mutex, MutexGuard, PoisonError},
    time::Duration,
};

use anyhow::{Context, Result, bail};
use k8s_openapi::api::core::v1::Node;
use kube::Api;
use rand::distr::{Alphanumeric, SampleString};
use tokio::{sync::OnceCell, time::Instant};

pub use credential_provider::{
    CREDENTIAL_PROVIDER_API_VERSION, CredentialProvider, CredentialProviderFiles, DEFAULT_CACHE_DURATION,
    TokenAttributes, TokenCacheType, kubelet_config_hash,
};
pub use harness::{NodeTest, harness};
pub use hermetic::KUBELET_SYSCTLS;
pub use install::{Installed, repo_root};
pub use journey::{PodStream, fill_yaml_values};
pub use kubelet::{KubeletOptions, VerificationPolicy};
pub use launcher::{KEEP_ENV, inside_world, run_in_world, run_in_world_with};
pub use pods::{Workload, is_running_and_ready};
pub use tools::{http_get, scratch_dir};

use crate::{
    ControlPlane, ControlPlaneOptions,
    binaries::NodeBinaries,
    child::Child,
    image::PushToRegistry,
    registry::{RegistryOptions, TestRegistry},
    versions::K8S_VERSION,
};
use containerd::{ContainerdPaths, TrustedRegistry};
use kubelet::KubeletSetup;

/// The node's name (`kubectl get nodes`), resolvable inside the world through its `/etc/hosts`.
pub const NODE_NAME: &str = "regcreds-node";
/// The node's address, on `lo` inside the world's network namespace (kubelet refuses loopback).
pub const NODE_IP: Ipv4Addr = Ipv4Addr::new(10, 254, 77, 1);
/// The private registry's user that may pull everything.
pub const PULL_USER: &str = "puller";
/// The workload image in the private registry: busybox (`sleep`, `sh`, `httpd`, …).
pub const WORKLOAD_REPOSITORY: &str = "demo/busybox";
/// Tag of [`WORKLOAD_REPOSITORY`].
pub const WORKLOAD_TAG: &str = "v1";

/// From the first process started to a Ready, untainted node with kube-proxy synced.
const NODE_READY_TIMEOUT: Duration = Duration::from_secs(120);
/// From a restarted kubelet's start to its first Ready heartbeat on an untainted node.
const KUBELET_RESTART_TIMEOUT: Duration = Duration::from_secs(60);
/// Per process, between SIGTERM and SIGKILL when a node process is stopped on purpose.
const STOP_GRACE: Duration = Duration::from_secs(5);

/// The node's processes, in stop order (consumers before what they consume).
#[derive(Debug)]
struct NodeProcesses {
    kube_proxy: Child,
    scheduler: Child,
    kubelet: Child,
    containerd: Child,
}

impl NodeProcesses {
    fn all_mut(&mut self) -> [&mut Child; 4] {
        [
            &mut self.kube_proxy,
            &mut self.scheduler,
            &mut self.kubelet,
            &mut self.containerd,
        ]
    }
}

/// A running node world: see the module docs. Create it with [`NodeWorld::shared`] inside a
/// [`harness`] binary (or [`NodeWorld::start`] inside [`run_in_world`]).
#[derive(Debug)]
pub struct NodeWorld {
    // Field order is drop order: the node before the control plane and the registries it uses.
    procs: Mutex<NodeProcesses>,
    cp: ControlPlane,
    // Behind a lock: changing a password needs `&mut`; tests read it through [`Self::registry`].
    registry: tokio::sync::RwLock<TestRegistry>,
    registry_host: String,
    public_registry: TestRegistry,
    pull_password: Mutex<String>,
    workload_image: String,
    sandbox_image: String,
    regcreds_image: OnceCell<String>,
    bins: NodeBinaries,
    containerd: ContainerdPaths,
    kubelet: KubeletSetup,
    /// The running kubelet's image credential provider, if any.
    credential_provider: Mutex<Option<CredentialProvider>>,
    /// The files the running kubelet's credential provider flags name (the kit's or given ones).
    credential_provider_files: Mutex<Option<CredentialProviderFiles>>,
    /// The running kubelet's `imagePullCredentialsVerificationPolicy`, if not the default.
    verification_policy: Mutex<Option<VerificationPolicy>>,
    dir: PathBuf,
}

impl NodeWorld {
    /// The world shared by every test of this process, started by the first test that asks.
    ///
    /// Panics with the start-up error (the same one for every test) if it cannot start.
    pub async fn shared() -> &'static NodeWorld {
        static SHARED: OnceCell<Result<NodeWorld, String>> = OnceCell::const_new();
        let started = SHARED
            .get_or_init(|| async { NodeWorld::start().await.map_err(|e| format!("{e:#}")) })
            .await;
        match started {
            Ok(world) => world,
            Err(e) => panic!("the node world did not start: {e}"),
        }
    }

    /// Starts registries, control plane and node; returns once the node is Ready and untainted and
    /// kube-proxy has synced its rules. Only inside a world ([`inside_world`]).
    pub async fn start() -> Result<NodeWorld> {
        let started = Instant::now();
        let prepared = hermetic::prepare(NODE_IP, NODE_NAME)?;
        let bins = NodeBinaries::locate()?;
        let dir = prepared.dir.clone();
        let logs = dir.join("logs");
        std::fs::create_dir_all(&logs)?;

        let pull_password = Alphanumeric.sample_string(&mut rand::rng(), 20);
        let users = [(PULL_USER, pull_password.as_str())];
        let (registry, public_registry) = tokio::join!(
            TestRegistry::start(RegistryOptions {
                tls: true,
                users: &users,
                token_auth: false,
            }),
            TestRegistry::start(RegistryOptions {
                tls: true,
                users: &[],
                token_auth: false,
            }),
        );
        let images = dir.join("images");
        let busybox = images::write_busybox(&images.join("busybox"), WORKLOAD_TAG)?;
        registry.push_layout(&busybox, &format!("{WORKLOAD_REPOSITORY}:{WORKLOAD_TAG}"))?;
        let workload_image = format!("{}/{WORKLOAD_REPOSITORY}:{WORKLOAD_TAG}", registry.host());
        let pause = images::write_pause(&bins.pause, &images.join("pause"), &format!("v{K8S_VERSION}"))?;
        let sandbox_repository = format!("regcreds-test/pause:v{K8S_VERSION}");
        public_registry.push_layout(&pause, &sandbox_repository)?;
        let sandbox_image = format!("{}/{sandbox_repository}", public_registry.host());

        let cp = ControlPlane::start_with(ControlPlaneOptions {
            node_ip: Some(NODE_IP),
            ..Default::default()
        })
        .await?;
        let containerd_paths = ContainerdPaths::new(&dir);
        let trusted = [
            TrustedRegistry {
                host: registry.host(),
                ca_pem: registry.ca_pem(),
            },
            TrustedRegistry {
                host: public_registry.host(),
                ca_pem: public_registry.ca_pem(),
            },
        ];
        let containerd = containerd::start(
            &bins,
            &containerd_paths,
            &sandbox_image,
            &trusted,
            &logs.join("containerd.log"),
        )
        .await?;
        let kubelet_setup = KubeletSetup {
            kubeconfig: cp
                .kubeconfig_as(&format!("system:node:{NODE_NAME}"), &["system:nodes"])
                .await?,
            node_name: NODE_NAME.to_string(),
            node_ip: NODE_IP,
            cgroup_root: prepared.cgroup.clone(),
        };
        let (kubelet_cmd, _no_provider) = kubelet::command(
            &bins,
            &dir,
            &containerd_paths,
            &kubelet_setup,
            KubeletOptions::default(),
        )?;
        let kubelet = Child::spawn("kubelet", kubelet_cmd, &logs.join("kubelet.log"))?;
        let scheduler_cmd =
            components::scheduler(&bins, &cp.kubeconfig_as("system:kube-scheduler", &[]).await?);
        let scheduler = Child::spawn("kube-scheduler", scheduler_cmd, &logs.join("kube-scheduler.log"))?;
        let proxy_cmd = components::proxy(
            &bins,
            &dir,
            &cp.kubeconfig_as("system:kube-proxy", &[]).await?,
            NODE_NAME,
            NODE_IP,
            containerd::POD_CIDR,
        )?;
        let kube_proxy = Child::spawn("kube-proxy", proxy_cmd, &logs.join("kube-proxy.log"))?;

        let registry_host = registry.host().to_string();
        let world = NodeWorld {
            procs: Mutex::new(NodeProcesses {
                kube_proxy,
                scheduler,
                kubelet,
                containerd,
            }),
            cp,
            registry: tokio::sync::RwLock::new(registry),
            registry_host,
            public_registry,
            pull_password: Mutex::new(pull_password),
            workload_image,
            sandbox_image,
            regcreds_image: OnceCell::new(),
            bins,
            containerd: containerd_paths,
            kubelet: kubelet_setup,
            credential_provider: Mutex::new(None),
            credential_provider_files: Mutex::new(None),
            verification_policy: Mutex::new(None),
            dir,
        };
        if let Err(e) = world.wait_node_ready().await {
            return Err(e.context(format!("the node did not get ready\n{}", world.log_tails(40))));
        }
        eprintln!(
            "regcreds-testkit: node {NODE_NAME} ({NODE_IP}) Ready in {:.1?}; world dir {}",
            started.elapsed(),
            world.dir.display()
        );
        Ok(world)
    }

    /// The control plane (admin client, kubeconfigs for other users, request counts, …).
    pub fn control_plane(&self) -> &ControlPlane {
        &self.cp
    }

    /// A new admin client; cheap, bound to the calling test's runtime.
    pub fn client(&self) -> kube::Client {
        self.cp.client()
    }

    /// The admin kubeconfig file.
    pub fn kubeconfig(&self) -> &Path {
        self.cp.kubeconfig_path()
    }

    /// The private registry (TLS, htpasswd): user [`PULL_USER`] with [`Self::pull_password`].
    pub async fn registry(&self) -> tokio::sync::RwLockReadGuard<'_, TestRegistry> {
        self.registry.read().await
    }

    /// The private registry's `127.0.0.1:PORT`, as image names and dockerconfigjson keys use it.
    pub fn registry_host(&self) -> &str {
        &self.registry_host
    }

    /// The anonymous registry (TLS) holding the images anyone may pull: the sandbox image and
    /// regcreds' own image, as a public registry like ghcr.io would.
    pub fn public_registry(&self) -> &TestRegistry {
        &self.public_registry
    }

    /// The current password of [`PULL_USER`].
    pub fn pull_password(&self) -> String {
        self.lock(&self.pull_password).clone()
    }

    /// Adds `user` with `password` to the private registry's htpasswd file (or changes its password),
    /// e.g. a Quay robot `org+name` whose tokens the registry is to accept; returns once the registry
    /// takes it. The user may pull every image, as [`PULL_USER`] may.
    pub async fn add_registry_user(&self, user: &str, password: &str) {
        self.registry.write().await.set_user(user, password).await;
    }

    /// The apiserver's ServiceAccount token issuer (`--service-account-issuer`, the `iss` of every token
    /// it signs), as its discovery document `/.well-known/openid-configuration` states it.
    pub async fn service_account_issuer(&self) -> Result<String> {
        let request = http::Request::get("/.well-known/openid-configuration")
            .body(Vec::new())
            .context("building the discovery request")?;
        let text = self
            .client()
            .request_text(request)
            .await
            .context("GET /.well-known/openid-configuration")?;
        let document: serde_json::Value = serde_json::from_str(&text).context("the discovery document")?;
        document["issuer"]
            .as_str()
            .map(str::to_string)
            .with_context(|| format!("no issuer in the discovery document: {text}"))
    }

    /// Lets every kubelet (group `system:nodes`) request ServiceAccount tokens for `audience`, for the
    /// ServiceAccounts named `service_accounts` only (in any namespace; none: all), as the
    /// NodeRestriction admission plugin requires for the kubelet's ServiceAccount token mode (see
    /// [`TokenAttributes`]): a ClusterRole `<name>` granting verb `request-serviceaccounts-token-audience`
    /// on resource `<audience>` of the core group, bound to `system:nodes` by a ClusterRoleBinding of the
    /// same name. Applied server-side, so calling it again updates both.
    pub async fn allow_node_token_audience(
        &self,
        name: &str,
        audience: &str,
        service_accounts: &[&str],
    ) -> Result<()> {
        use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding};
        use kube::api::{Patch, PatchParams};
        let mut rule = serde_json::json!({
            "apiGroups": [""],
            "resources": [audience],
            "verbs": ["request-serviceaccounts-token-audience"],
        });
        if !service_accounts.is_empty() {
            rule["resourceNames"] = serde_json::json!(service_accounts);
        }
        let role = serde_json::json!({
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRole",
            "metadata": { "name": name },
            "rules": [rule],
        });
        let binding = serde_json::json!({
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRoleBinding",
            "metadata": { "name": name },
            "roleRef": { "apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": name },
            "subjects": [{ "apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": "system:nodes" }],
        });
        let params = PatchParams::apply("regcreds-testkit").force();
        Api::<ClusterRole>::all(self.client())
            .patch(name, &params, &Patch::Apply(role))
            .await
            .with_context(|| format!("applying ClusterRole {name}"))?;
        Api::<ClusterRoleBinding>::all(self.client())
            .patch(name, &params, &Patch::Apply(binding))
            .await
            .with_context(|| format!("applying ClusterRoleBinding {name}"))?;
        Ok(())
    }

    /// Changes [`PULL_USER`]'s password in the private registry; returns once the registry takes it.
    pub async fn change_pull_password(&self, new_password: &str) {
        self.registry
            .write()
            .await
            .set_user(PULL_USER, new_password)
            .await;
        *self.lock(&self.pull_password) = new_password.to_string();
    }

    /// The sandbox (pause) image in [`Self::public_registry`]: an image anyone may pull, whose
    /// entrypoint sleeps forever.
    pub fn sandbox_image(&self) -> &str {
        &self.sandbox_image
    }

    /// `127.0.0.1:PORT/demo/busybox:v1`: a private image only [`PULL_USER`] may pull.
    pub fn workload_image(&self) -> &str {
        &self.workload_image
    }

    /// Pushes the workload image again as `<repository>:<tag>` in the private registry (e.g. a name no
    /// pod pulled before); returns its full name.
    pub async fn push_workload_image(&self, repository: &str, tag: &str) -> Result<String> {
        let layout = crate::image::OciLayout::open(&self.dir.join("images/busybox"), WORKLOAD_TAG)?;
        self.registry()
            .await
            .push_layout(&layout, &format!("{repository}:{tag}"))?;
        Ok(format!("{}/{repository}:{tag}", self.registry_host))
    }

    /// Pushes the workload image as `<repository>:<tag>` in the private registry under an image ID of
    /// its own (its config carries `REGCREDS_TEST_IMAGE=<repository>:<tag>`), unlike
    /// [`Self::push_workload_image`], whose pushes all share one: content the node holds under no other
    /// name, of which the kubelet has no record. Returns its full name.
    pub async fn push_distinct_workload_image(&self, repository: &str, tag: &str) -> Result<String> {
        let reference = format!("{repository}:{tag}");
        let scratch = tools::scratch_dir(&self.dir.join("images"), "distinct")?;
        let layout =
            images::write_busybox_with_env(&scratch, tag, &[format!("REGCREDS_TEST_IMAGE={reference}")])?;
        self.registry().await.push_layout(&layout, &reference)?;
        Ok(format!("{}/{reference}", self.registry_host))
    }

    /// Pulls `image` into containerd behind the kubelet's back, as `user` with `password` (`ctr images
    /// pull` with the node's registry trust): an image baked into the node image or pulled with
    /// `crictl`, "preloaded" to the kubelet, which keeps no record of it.
    pub fn preload_image(&self, image: &str, user: &str, password: &str) -> Result<()> {
        let hosts_dir = self.containerd.certs_d();
        run(self
            .ctr()
            .args(["images", "pull", "--hosts-dir"])
            .arg(&hosts_dir)
            .args(["--user", &format!("{user}:{password}"), image]))?;
        Ok(())
    }

    /// regcreds' image in [`Self::public_registry`], built and pushed on first use: the image
    /// `cargo xtask image` builds ([`crate::image::regcreds::build`]), around the binary under test.
    pub async fn regcreds_image(&self) -> Result<&str> {
        self.regcreds_image
            .get_or_try_init(|| async { regcreds_image::build_and_push(&self.public_registry, &self.dir) })
            .await
            .map(String::as_str)
    }

    /// The executable inside [`Self::regcreds_image`] (the binary under test, stripped), once built.
    pub fn regcreds_image_binary(&self) -> PathBuf {
        regcreds_image::binary(&self.dir)
    }

    /// regcreds as the kubelet's image credential provider, for [`Self::restart_kubelet`]: the binary
    /// under test ([`crate::regcreds_binary`]) named `regcreds` in the kubelet's bin dir, run as
    /// `regcreds credential-provider` for the private registry's images, configured through the
    /// config's `env` list like the Deployment: the static provider serving that registry as
    /// [`PULL_USER`] with the current [`Self::pull_password`]. Add images with
    /// [`CredentialProvider::match_image`].
    pub fn regcreds_credential_provider(&self) -> CredentialProvider {
        CredentialProvider::new("regcreds", &crate::regcreds_binary(), &[self.registry_host()])
            .args(&["credential-provider"])
            .env("REGCREDS_STATIC_SERVER", self.registry_host())
            .env("REGCREDS_STATIC_USER", PULL_USER)
            .env("REGCREDS_STATIC_PASSWORD", &self.pull_password())
    }

    /// Stops the kubelet and starts it again with `credential_provider` as its image credential
    /// provider, or with none (as every world starts), and the default
    /// `imagePullCredentialsVerificationPolicy`. Returns once the new kubelet answers `/healthz`
    /// and has reported the node Ready (a heartbeat newer than the old kubelet) and untainted.
    ///
    /// Running pods stay (the new kubelet adopts them); what the kubelet only keeps in memory goes:
    /// its cache of provider answers and its image pull backoff. What it keeps on disk stays, such as
    /// its records of which credentials pulled which image (`<root dir>/image_manager`). A test that
    /// changes the kubelet should restart it with `None` before it ends, so that the next test finds
    /// the usual node.
    pub async fn restart_kubelet(&self, credential_provider: Option<&CredentialProvider>) -> Result<()> {
        self.restart_kubelet_with(KubeletOptions {
            credential_provider,
            ..KubeletOptions::default()
        })
        .await
    }

    /// [`Self::restart_kubelet`] with every setting of [`KubeletOptions`] (e.g. another
    /// `imagePullCredentialsVerificationPolicy`); `KubeletOptions::default()` is the usual node.
    pub async fn restart_kubelet_with(&self, options: KubeletOptions<'_>) -> Result<()> {
        let credential_provider = options.credential_provider;
        let started = Instant::now();
        let log = {
            let mut procs = self.lock(&self.procs);
            procs.kubelet.stop(STOP_GRACE);
            procs.kubelet.log().to_path_buf()
        };
        // Heartbeats carry whole seconds: starting in a second the old kubelet never saw makes the
        // first Ready heartbeat at or after it the new kubelet's.
        let now = k8s_openapi::jiff::Timestamp::now();
        let fresh_from = now.as_second() + 1;
        let into_second = Duration::from_nanos(u64::try_from(now.subsec_nanosecond()).unwrap_or(0));
        tokio::time::sleep(Duration::from_secs(1).saturating_sub(into_second)).await;

        let (cmd, files) = kubelet::command(&self.bins, &self.dir, &self.containerd, &self.kubelet, options)?;
        let mut mark = match (credential_provider, &files) {
            (Some(p), _) => format!("with the image credential provider {:?}", p.name()),
            (None, Some(files)) => format!("with the credential provider config {}", files.config.display()),
            (None, None) => "without an image credential provider".to_string(),
        };
        if let Some(policy) = options.verification_policy {
            mark += &format!(", imagePullCredentialsVerificationPolicy {}", policy.as_str());
        }
        {
            use std::io::Write;
            let mut file = std::fs::OpenOptions::new().append(true).open(&log)?;
            writeln!(file, "==== regcreds-testkit: kubelet restarted {mark} ====")?;
        }
        let kubelet = Child::spawn("kubelet", cmd, &log)?;
        // The old one has exited and been reaped: dropping it does nothing more.
        self.lock(&self.procs).kubelet = kubelet;
        *self.lock(&self.credential_provider) = credential_provider.cloned();
        *self.lock(&self.credential_provider_files) = files;
        *self.lock(&self.verification_policy) = options.verification_policy;
        if let Err(e) = self.wait_kubelet_fresh(fresh_from).await {
            return Err(e.context(format!(
                "the kubelet restarted {mark} did not get ready\n{}",
                self.log_tails(40)
            )));
        }
        eprintln!(
            "regcreds-testkit: kubelet restarted {mark}, node Ready in {:.1?}",
            started.elapsed()
        );
        Ok(())
    }

    /// The running kubelet's image credential provider ([`Self::restart_kubelet`]), if any.
    pub fn credential_provider(&self) -> Option<CredentialProvider> {
        self.lock(&self.credential_provider).clone()
    }

    /// The running kubelet's `imagePullCredentialsVerificationPolicy` if a restart set one
    /// ([`Self::restart_kubelet_with`]); `None`: the default, `NeverVerifyPreloadedImages`.
    pub fn verification_policy(&self) -> Option<VerificationPolicy> {
        *self.lock(&self.verification_policy)
    }

    /// Everything the kubelet logged so far (`--v=2`), all its runs: each restart appends a line
    /// `==== regcreds-testkit: kubelet restarted … ====`.
    pub fn kubelet_log(&self) -> Result<String> {
        let path = self.lock(&self.procs).kubelet.log().to_path_buf();
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))
    }

    /// The `CredentialProviderConfig` file the running kubelet was given, if it has a provider.
    pub fn credential_provider_config(&self) -> Option<PathBuf> {
        self.lock(&self.credential_provider_files)
            .as_ref()
            .map(|files| files.config.clone())
    }

    /// The kubelet's `/metrics`, fetched through the apiserver's node proxy (as `kubectl get --raw
    /// /api/v1/nodes/<node>/proxy/metrics` would).
    pub async fn kubelet_metrics(&self) -> Result<String> {
        let request = http::Request::get(format!("/api/v1/nodes/{NODE_NAME}/proxy/metrics"))
            .body(Vec::new())
            .context("building the kubelet metrics request")?;
        self.client()
            .request_text(request)
            .await
            .context("GET the kubelet's /metrics through the apiserver")
    }

    /// `kubectl --kubeconfig <admin>` (the test venv's kubectl), with a private cache directory.
    pub fn kubectl(&self) -> Command {
        tools::kubectl(self.kubeconfig(), &self.home())
    }

    /// `helm` with `KUBECONFIG` = the admin kubeconfig and private cache/config/data directories.
    pub fn helm(&self) -> Command {
        tools::helm(self.kubeconfig(), &self.home())
    }

    /// `ctr` against the node's containerd, namespace `k8s.io` (e.g. `ctr images ls`).
    pub fn ctr(&self) -> Command {
        containerd::ctr(&self.bins, &self.containerd)
    }

    /// What the private registry has logged so far about containerd's requests for `image`'s manifest
    /// (a tagged image of [`NodeWorld::registry_host`]): compare two readings around a pull.
    pub async fn registry_saw(&self, image: &str) -> RegistrySaw {
        let path = image
            .strip_prefix(&format!("{}/", self.registry_host()))
            .and_then(|name| name.rsplit_once(':'))
            .map(|(repository, tag)| format!("http.request.uri=/v2/{repository}/manifests/{tag} "))
            .unwrap_or_else(|| panic!("{image} is not a tagged image of the private registry"));
        let log = self.registry().await.log();
        let lines: Vec<&str> = log
            .lines()
            .filter(|l| l.contains(&path) && l.contains("http.request.useragent=containerd/"))
            .collect();
        let count = |marker: &str| lines.iter().filter(|l| l.contains(marker)).count();
        RegistrySaw {
            challenged: count("basic authentication challenge"),
            authorized: count("msg=\"authorized request\""),
        }
    }

    /// Whether containerd (namespace `k8s.io`) holds `image` (`ctr images ls -q`).
    pub fn has_image(&self, image: &str) -> Result<bool> {
        let refs = run(self.ctr().args(["images", "ls", "-q"]))?;
        Ok(refs.lines().any(|r| r.trim() == image))
    }

    /// The kubelet's records of the images it pulled and with which credentials, one JSON document per
    /// image (`ImagePulledRecord`, `kubelet.config.k8s.io/v1beta1`: `imageRef` and `credentialMapping`
    /// from image name without tag to `kubernetesSecrets`, `kubernetesServiceAccounts` or
    /// `nodePodsAccessible`), as `KubeletEnsureSecretPulledImages` keeps them on disk under its root dir
    /// (`image_manager/pulled`, `pkg/kubelet/images/pullmanager/fs_pullrecords.go`). They survive
    /// kubelet restarts.
    pub fn kubelet_pulled_records(&self) -> Result<Vec<serde_json::Value>> {
        let dir = self.dir.join("kubelet/root/image_manager/pulled");
        let mut records = Vec::new();
        if !dir.exists() {
            return Ok(records);
        }
        for entry in std::fs::read_dir(&dir).with_context(|| format!("listing {}", dir.display()))? {
            let path = entry?.path();
            let text =
                std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
            records.push(serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))?);
        }
        Ok(records)
    }

    /// The world directory (logs under `logs/`, the control plane's under `tmp/regcreds-cp-*/logs`).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The last `lines` lines of each node process's log and the control plane's, for failure messages.
    pub fn log_tails(&self, lines: usize) -> String {
        let mut procs = self.lock(&self.procs);
        let tails = procs.all_mut().map(|c| {
            format!(
                "--- {} ({}) ---\n{}",
                c.name(),
                c.log().display(),
                c.log_tail(lines)
            )
        });
        tails.join("\n")
    }

    /// An error naming the first node process that has exited, with its log tail.
    pub fn check_running(&self) -> Result<()> {
        for child in self.lock(&self.procs).all_mut() {
            if let Some(status) = child.exited() {
                bail!(
                    "{} exited ({status}); last log lines:\n{}",
                    child.name(),
                    child.log_tail(30)
                );
            }
        }
        self.cp.check_running()
    }

    /// Stops the node's processes (SIGTERM, then SIGKILL), e.g. to check what a world leaves behind.
    pub fn stop_node(&self) {
        for child in self.lock(&self.procs).all_mut() {
            child.stop(STOP_GRACE);
        }
    }

    async fn wait_node_ready(&self) -> Result<()> {
        let nodes = Api::<Node>::all(self.client());
        let deadline = Instant::now() + NODE_READY_TIMEOUT;
        loop {
            self.check_running()?;
            let node = nodes.get_opt(NODE_NAME).await.ok().flatten();
            if node.as_ref().is_some_and(is_ready_and_untainted) && tools::kube_proxy_synced().await {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!(
                    "node {NODE_NAME} not Ready and untainted with kube-proxy synced after \
                     {NODE_READY_TIMEOUT:?}; node: {}",
                    serde_json::to_string(&node.map(|n| (n.spec, n.status.map(|s| s.conditions))))
                        .unwrap_or_default()
                );
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// After a kubelet restart: `/healthz` answers and the node's Ready condition is True with a
    /// heartbeat at or after `fresh_from` (Unix seconds), and the node has no taint.
    async fn wait_kubelet_fresh(&self, fresh_from: i64) -> Result<()> {
        let nodes = Api::<Node>::all(self.client());
        let deadline = Instant::now() + KUBELET_RESTART_TIMEOUT;
        loop {
            self.check_running()?;
            let node = nodes.get_opt(NODE_NAME).await.ok().flatten();
            let fresh = node
                .as_ref()
                .and_then(|n| n.status.as_ref()?.conditions.as_ref())
                .and_then(|c| c.iter().find(|c| c.type_ == "Ready"))
                .and_then(|c| c.last_heartbeat_time.as_ref())
                .is_some_and(|t| t.0.as_second() >= fresh_from);
            if fresh && node.as_ref().is_some_and(is_ready_and_untainted) && kubelet_healthy().await {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!(
                    "node {NODE_NAME} without a fresh Ready heartbeat, untainted, after \
                     {KUBELET_RESTART_TIMEOUT:?}; node: {}",
                    serde_json::to_string(&node.map(|n| (n.spec, n.status.map(|s| s.conditions))))
                        .unwrap_or_default()
                );
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    fn home(&self) -> PathBuf {
        self.dir.join("home")
    }

    fn lock<'a, T>(&self, mutex: &'a Mutex<T>) -> MutexGuard<'a, T> {
        // A panicking test must not make the world unusable for the others.
        mutex.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// kubelet answers `ok` on its `/healthz`.
async fn kubelet_healthy() -> bool {
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], kubelet::HEALTHZ_PORT));
    tokio::task::spawn_blocking(move || {
        tools::http_get(addr, "/healthz").is_some_and(|(status, _)| status == 200)
    })
    .await
    .unwrap_or(false)
}

/// Ready condition True and no taints (the node-lifecycle controller removes `not-ready`).
fn is_ready_and_untainted(node: &Node) -> bool {
    let ready = node
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|conditions| {
            conditions
                .iter()
                .any(|c| c.type_ == "Ready" && c.status == "True")
        });
    let tainted = node
        .spec
        .as_ref()
        .and_then(|s| s.taints.as_ref())
        .is_some_and(|t| !t.is_empty());
    ready && !tainted
}

/// Runs `cmd` with `stdin` as its standard input (e.g. `kubectl apply -f -`): its stdout, or an error.
pub fn run_with_stdin(cmd: &mut Command, stdin: &str) -> Result<String> {
    use std::io::Write;
    let mut child = cmd
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .with_context(|| format!("starting {:?}", cmd.get_program()))?;
    child
        .stdin
        .take()
        .context("piped stdin")?
        .write_all(stdin.as_bytes())?;
    let output = child.wait_with_output()?;
    if !output.status.success() {
        bail!(
            "{cmd:?} failed ({}):\n{}{}",
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

/// Runs `cmd`: its stdout, or an error with the command line and its stderr.
pub fn run(cmd: &mut Command) -> Result<String> {
    let output = cmd
        .output()
        .with_context(|| format!("starting {:?}", cmd.get_program()))?;
    if !output.status.success() {
        bail!(
            "{cmd:?} failed ({}):\n{}{}",
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

/// What the private registry logged about containerd's requests for one image's manifest
/// ([`NodeWorld::registry_saw`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RegistrySaw {
    /// Refused with a 401 Basic challenge (distribution logs "basic authentication challenge").
    pub challenged: usize,
    /// Let through with valid credentials of the htpasswd file. (Debian's distribution 2.8 names the user
    /// only on failed requests.)
    pub authorized: usize,
}
