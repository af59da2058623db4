//! containerd for the test node: config, start, readiness.
//!
//! Everything under the world directory (`containerd/`): root, state, the gRPC socket, the runc root,
//! the CNI config and the per-registry trust (`certs.d/<host>/hosts.toml` + `ca.crt`). Only the shim
//! sockets go to the fixed `/run/containerd/s`, which the world's `/run` overlay keeps private.
//!
//! Three settings make it work unprivileged by a real init system (see shared/notes/node.md):
//! `restrict_oom_score_adj` (no CAP_SYS_RESOURCE for runc in this sandbox), pod network namespaces
//! under the state directory instead of the host-wide `/var/run/netns`, and cgroupfs (no systemd).

use std::{
    path::{Path, PathBuf},
    process::Command,
    time::Duration,
};

use anyhow::{Context, Result, bail};
use tokio::time::Instant;

use crate::{binaries::NodeBinaries, child::Child};

/// Pod network: a bridge with host-local addresses; the world has no other network to reach.
pub(crate) const POD_CIDR: &str = "10.244.0.0/24";
/// How long containerd may take to answer on its socket.
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// containerd's paths in the world directory.
#[derive(Debug, Clone)]
pub(crate) struct ContainerdPaths {
    root: PathBuf,
}

impl ContainerdPaths {
    pub(crate) fn new(world: &Path) -> Self {
        Self {
            root: world.join("containerd"),
        }
    }

    /// The gRPC socket kubelet and `ctr` use.
    pub(crate) fn socket(&self) -> PathBuf {
        self.root.join("containerd.sock")
    }

    fn config(&self) -> PathBuf {
        self.root.join("config.toml")
    }

    /// containerd's per-registry trust (`config_path` of its CRI registry config; `ctr --hosts-dir`).
    pub(crate) fn certs_d(&self) -> PathBuf {
        self.root.join("certs.d")
    }

    fn cni_conf_dir(&self) -> PathBuf {
        self.root.join("cni/net.d")
    }
}

/// A registry containerd must trust: `host` (`127.0.0.1:PORT`) with its CA.
pub(crate) struct TrustedRegistry<'a> {
    pub(crate) host: &'a str,
    pub(crate) ca_pem: &'a str,
}

/// Writes the config, CNI config and registry trust, starts containerd, waits until it answers.
pub(crate) async fn start(
    bins: &NodeBinaries,
    paths: &ContainerdPaths,
    sandbox_image: &str,
    registries: &[TrustedRegistry<'_>],
    log: &Path,
) -> Result<Child> {
    for dir in [paths.root.clone(), paths.certs_d(), paths.cni_conf_dir()] {
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    for registry in registries {
        let dir = paths.certs_d().join(registry.host);
        std::fs::create_dir_all(&dir)?;
        std::fs::write(dir.join("ca.crt"), registry.ca_pem)?;
        std::fs::write(
            dir.join("hosts.toml"),
            format!(
                "server = \"https://{host}\"\n\n[host.\"https://{host}\"]\n  capabilities = [\"pull\", \"resolve\"]\n  ca = \"{}\"\n",
                dir.join("ca.crt").display(),
                host = registry.host
            ),
        )?;
    }
    std::fs::write(
        paths.cni_conf_dir().join("10-regcreds.conflist"),
        cni_config(&paths.root),
    )?;
    std::fs::write(paths.config(), config(paths, sandbox_image))?;

    let mut cmd = Command::new(&bins.containerd);
    cmd.arg("--config").arg(paths.config());
    // containerd finds its shim on PATH.
    cmd.env("PATH", path_with(bins.dir()));
    let mut child = Child::spawn("containerd", cmd, log)?;
    wait_ready(bins, paths, &mut child).await?;
    Ok(child)
}

/// `ctr` against this containerd, in the `k8s.io` namespace (where the CRI plugin keeps images).
pub(crate) fn ctr(bins: &NodeBinaries, paths: &ContainerdPaths) -> Command {
    let mut cmd = Command::new(&bins.ctr);
    cmd.arg("--address")
        .arg(paths.socket())
        .args(["--namespace", "k8s.io"]);
    cmd
}

async fn wait_ready(bins: &NodeBinaries, paths: &ContainerdPaths, child: &mut Child) -> Result<()> {
    let deadline = Instant::now() + START_TIMEOUT;
    loop {
        if let Some(status) = child.exited() {
            bail!("containerd exited ({status}):\n{}", child.log_tail(30));
        }
        let answered = ctr(bins, paths)
            .arg("version")
            .output()
            .is_ok_and(|o| o.status.success());
        if answered {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!(
                "containerd did not answer within {START_TIMEOUT:?}:\n{}",
                child.log_tail(30)
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// `dir` first, then the inherited PATH.
pub(crate) fn path_with(dir: &Path) -> std::ffi::OsString {
    let mut dirs = vec![dir.to_path_buf()];
    dirs.extend(std::env::split_paths(
        &std::env::var_os("PATH").unwrap_or_default(),
    ));
    std::env::join_paths(dirs).expect("PATH entries without ':'")
}

fn config(paths: &ContainerdPaths, sandbox_image: &str) -> String {
    let root = paths.root.display();
    format!(
        r#"version = 3
root = "{root}/root"
state = "{root}/state"

[grpc]
  address = "{socket}"

[ttrpc]
  address = "{socket}.ttrpc"

[plugins."io.containerd.internal.v1.opt"]
  path = "{root}/opt"

[plugins."io.containerd.cri.v1.images"]
  snapshotter = "overlayfs"
  [plugins."io.containerd.cri.v1.images".pinned_images]
    sandbox = "{sandbox_image}"
  [plugins."io.containerd.cri.v1.images".registry]
    config_path = "{certs_d}"

[plugins."io.containerd.cri.v1.runtime"]
  # runc in this sandbox lacks CAP_SYS_RESOURCE: never ask for an oom_score_adj below containerd's own.
  restrict_oom_score_adj = true
  # Pod network namespaces under the state directory instead of the host-wide /var/run/netns.
  netns_mounts_under_state_dir = true
  [plugins."io.containerd.cri.v1.runtime".containerd]
    default_runtime_name = "runc"
    [plugins."io.containerd.cri.v1.runtime".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.cri.v1.runtime".containerd.runtimes.runc.options]
        BinaryName = "/usr/sbin/runc"
        SystemdCgroup = false
        Root = "{root}/runc"
  [plugins."io.containerd.cri.v1.runtime".cni]
    bin_dirs = ["/usr/lib/cni"]
    conf_dir = "{cni}"
"#,
        socket = paths.socket().display(),
        certs_d = paths.certs_d().display(),
        cni = paths.cni_conf_dir().display(),
    )
}

/// A bridge network with host-local IPAM; the gateway is the bridge, so pods reach the node's
/// addresses (the apiserver, kubelet) and the node reaches pod IPs.
fn cni_config(root: &Path) -> String {
    format!(
        r#"{{
  "cniVersion": "1.0.0",
  "name": "regcreds",
  "plugins": [
    {{
      "type": "bridge",
      "bridge": "regcreds0",
      "isGateway": true,
      "ipMasq": false,
      "hairpinMode": true,
      "ipam": {{
        "type": "host-local",
        "dataDir": "{}/cni/ipam",
        "ranges": [[{{"subnet": "{POD_CIDR}"}}]],
        "routes": [{{"dst": "0.0.0.0/0"}}]
      }}
    }}
  ]
}}
"#,
        root.display()
    )
}
