//! kubelet for the test node: its configuration and command line.
//!
//! Data (root dir, pod logs, certificates, plugin dirs) under the world directory; the few fixed paths
//! it still writes (`/var/lib/kubelet/device-plugins`, `/var/log/containers`) land in the world's
//! private `/var` overlay, and the sysctls it sets in the private files [`super::hermetic`] mounted.
//! It talks to the apiserver as `system:node:<name>` (Node authorizer, as in real clusters) and
//! serves on the node address, where the apiserver reaches it for `kubectl logs`/`exec`.
//!
//! By default it has no image credential provider; given one ([`super::CredentialProvider`]) it
//! runs with `--image-credential-provider-config` and `--image-credential-provider-bin-dir`
//! (`cmd/kubelet/app/options/options.go` of k8s.io/kubernetes@v1.37.2), whose files
//! [`super::credential_provider::install`] writes under `kubelet/credential-provider/`.
//!
//! Its `imagePullCredentialsVerificationPolicy` (`KubeletConfiguration`, `k8s.io/kubelet@v0.37.2/config/
//! v1beta1/types.go`) is the kubelet's default, `NeverVerifyPreloadedImages`
//! (`pkg/kubelet/apis/config/v1beta1/defaults.go`), unless [`KubeletOptions`] names another.

use std::{
    net::Ipv4Addr,
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Result, bail};

use super::{
    containerd::{ContainerdPaths, path_with},
    credential_provider::{self, CredentialProvider, CredentialProviderFiles},
};
use crate::binaries::NodeBinaries;

/// kubelet's API port on the node address (the world has its own network namespace: no clash).
pub(crate) const PORT: u16 = 10250;
/// kubelet's `/healthz` on 127.0.0.1.
pub(crate) const HEALTHZ_PORT: u16 = 10248;

/// `imagePullCredentialsVerificationPolicy` of the kubelet config: with the `KubeletEnsureSecretPulledImages`
/// gate (beta and on by default since 1.35, `pkg/features/kube_features.go` of k8s.io/kubernetes@v1.37.2),
/// whether a pod asking for an image already on the node must prove credentials for it
/// (`pkg/kubelet/images/pullmanager/image_pull_policies.go`). `NeverVerifyAllowlistedImages` is left
/// out: it needs `preloadedImagesVerificationAllowlist` too.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VerificationPolicy {
    /// `NeverVerify`: "anyone on a node can use any image present on the node".
    NeverVerify,
    /// `NeverVerifyPreloadedImages`, the default: "images that were pulled to the node by something
    /// else than the kubelet can be used without reverifying pull credentials".
    NeverVerifyPreloadedImages,
    /// `AlwaysVerify`: "all images require credential reverification".
    AlwaysVerify,
}

impl VerificationPolicy {
    /// The value in the kubelet config.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::NeverVerify => "NeverVerify",
            Self::NeverVerifyPreloadedImages => "NeverVerifyPreloadedImages",
            Self::AlwaysVerify => "AlwaysVerify",
        }
    }
}

/// What a test may change about the kubelet when it restarts it
/// ([`super::NodeWorld::restart_kubelet_with`]); the default is the kubelet every world starts with.
#[derive(Debug, Clone, Copy, Default)]
pub struct KubeletOptions<'a> {
    /// Its image credential provider (`--image-credential-provider-config` / `-bin-dir`), or none.
    pub credential_provider: Option<&'a CredentialProvider>,
    /// Instead of `credential_provider`: a config and bin dir already on the node (written by the chart's
    /// DaemonSet), named in the flags as they are.
    pub credential_provider_files: Option<&'a CredentialProviderFiles>,
    /// `imagePullCredentialsVerificationPolicy`; `None`: not written, the kubelet's default
    /// (`NeverVerifyPreloadedImages`).
    pub verification_policy: Option<VerificationPolicy>,
}

/// What the kubelet command is made of, kept by the world to start it again.
#[derive(Debug, Clone)]
pub(crate) struct KubeletSetup {
    /// The kubeconfig of `system:node:<name>`.
    pub(crate) kubeconfig: PathBuf,
    pub(crate) node_name: String,
    pub(crate) node_ip: Ipv4Addr,
    /// The world's private cgroup root name.
    pub(crate) cgroup_root: String,
}

/// Writes `kubelet/config.yaml` (and, with a credential provider, its config and executable) under
/// `world` and returns the kubelet command, and the credential provider files it names.
pub(crate) fn command(
    bins: &NodeBinaries,
    world: &Path,
    containerd: &ContainerdPaths,
    setup: &KubeletSetup,
    options: KubeletOptions<'_>,
) -> Result<(Command, Option<CredentialProviderFiles>)> {
    let KubeletOptions {
        credential_provider,
        credential_provider_files,
        verification_policy,
    } = options;
    if credential_provider.is_some() && credential_provider_files.is_some() {
        bail!("a kubelet takes one credential provider config: a CredentialProvider or files, not both");
    }
    let KubeletSetup {
        kubeconfig,
        node_name,
        node_ip,
        cgroup_root,
    } = setup;
    let node_ip = *node_ip;
    let dir = world.join("kubelet");
    for sub in ["root", "pki", "pod-logs", "volume-plugins"] {
        std::fs::create_dir_all(dir.join(sub))?;
    }
    let config = dir.join("config.yaml");
    let mut yaml = config_yaml(&dir, containerd, node_ip, cgroup_root);
    if let Some(policy) = verification_policy {
        yaml += &format!("imagePullCredentialsVerificationPolicy: {}\n", policy.as_str());
    }
    std::fs::write(&config, yaml)?;
    let mut cmd = Command::new(&bins.kubelet);
    cmd.arg(format!("--config={}", config.display()))
        .arg(format!("--kubeconfig={}", kubeconfig.display()))
        .arg(format!("--root-dir={}", dir.join("root").display()))
        .arg(format!("--cert-dir={}", dir.join("pki").display()))
        .arg(format!("--hostname-override={node_name}"))
        .arg(format!("--node-ip={node_ip}"))
        .arg("--v=2")
        // Volume plugins and credential helpers are looked up on PATH.
        .env("PATH", path_with(bins.dir()));
    let provider_dir = credential_provider_dir(world);
    if provider_dir.exists() {
        // What an earlier kubelet was given; this one gets its own or none.
        std::fs::remove_dir_all(&provider_dir)?;
    }
    let files = match (credential_provider, credential_provider_files) {
        (Some(provider), _) => Some(credential_provider::install(provider, &provider_dir)?),
        (None, files) => files.cloned(),
    };
    if let Some(files) = &files {
        cmd.arg(format!(
            "--image-credential-provider-config={}",
            files.config.display()
        ))
        .arg(format!(
            "--image-credential-provider-bin-dir={}",
            files.bin_dir.display()
        ));
    }
    Ok((cmd, files))
}

/// Where the kubelet's credential provider config (`config.json`) and bin dir (`bin/`) go.
fn credential_provider_dir(world: &Path) -> PathBuf {
    world.join("kubelet/credential-provider")
}

fn config_yaml(dir: &Path, containerd: &ContainerdPaths, node_ip: Ipv4Addr, cgroup_root: &str) -> String {
    let endpoint = format!("unix://{}", containerd.socket().display());
    format!(
        r#"apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
cgroupDriver: cgroupfs
cgroupRoot: /{cgroup_root}
failCgroupV1: false
failSwapOn: false
containerRuntimeEndpoint: {endpoint}
imageServiceEndpoint: {endpoint}
address: {node_ip}
port: {PORT}
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: {HEALTHZ_PORT}
# The apiserver calls kubelet without a client certificate (logs, exec); kubelet listens only inside
# the world's network namespace.
authentication:
  anonymous:
    enabled: true
  webhook:
    enabled: false
  x509: {{}}
authorization:
  mode: AlwaysAllow
podLogsDir: {pod_logs}
volumePluginDir: {volume_plugins}
resolvConf: /etc/resolv.conf
registerNode: true
serializeImagePulls: false
# Never collect images or evict pods because a busy CI disk looks full. Absolute free-space thresholds:
# 1% of a large shared disk is gigabytes, and a node under DiskPressure is tainted and schedules nothing.
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
evictionHard:
  memory.available: "100Mi"
  nodefs.available: "100Mi"
  imagefs.available: "100Mi"
  nodefs.inodesFree: "1%"
# Quick status and mounted-Secret updates: tests wait for both.
nodeStatusReportFrequency: 10s
syncFrequency: 10s
fileCheckFrequency: 10s
"#,
        pod_logs = dir.join("pod-logs").display(),
        volume_plugins = dir.join("volume-plugins").display(),
    )
}
