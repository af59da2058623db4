//! Where the control-plane binaries and the test Python live.
//!
//! `$REGCREDS_CONTROLPLANE_BIN` wins (set by `cargo xtask test`); otherwise the cache directory the
//! build script fills for the pinned version: `${REGCREDS_CACHE:-~/.cache/regcreds}/controlplane/v<k8s>/bin`.

use std::path::{Path, PathBuf};

use anyhow::{Result, bail};

use crate::versions::K8S_VERSION;

/// Environment variable naming a directory with `etcd`, `kube-apiserver`, `kube-controller-manager`.
pub const CONTROLPLANE_BIN_ENV: &str = "REGCREDS_CONTROLPLANE_BIN";

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

    /// The binaries from `$REGCREDS_CONTROLPLANE_BIN`, else from the pinned cache directory.
    pub fn locate() -> Result<Self> {
        let dir = std::env::var_os(CONTROLPLANE_BIN_ENV).map_or_else(pinned_bin_dir, PathBuf::from);
        match Self::in_dir(&dir) {
            Some(bins) => Ok(bins),
            None => bail!(
                "control-plane binaries not found in {} (etcd, kube-apiserver, kube-controller-manager); \
                 run `cargo xtask controlplane build`",
                dir.display()
            ),
        }
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

/// Where the build script puts the binaries of the pinned [`K8S_VERSION`].
pub fn pinned_bin_dir() -> PathBuf {
    cache_dir()
        .join("controlplane")
        .join(format!("v{K8S_VERSION}"))
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
