//! The temporary directory one control plane lives in, and its layout.
//!
//! ```text
//! $TMPDIR/regcreds-cp-<pid>-<random>/
//!   pki/       ca.crt, apiserver.{crt,key}, sa.key, sa.pub
//!   etcd/      etcd data
//!   logs/      etcd.log, kube-apiserver.log, kube-controller-manager.log
//!   users/     kubeconfigs written by `kubeconfig_as`
//!   admin.kubeconfig
//! ```
//!
//! Removed on drop, and by the janitor (see [`crate::child`]) if this process dies without dropping it.

use std::{
    os::unix::fs::PermissionsExt,
    path::{Path, PathBuf},
};

use anyhow::{Context, Result};
use rand::distr::{Alphanumeric, SampleString};

use crate::child;

/// A control plane's temporary directory; deleted on drop.
#[derive(Debug)]
pub(crate) struct Workdir {
    root: PathBuf,
    janitor: Option<std::process::Child>,
}

impl Workdir {
    /// Creates a fresh directory with its subdirectories and starts its janitor.
    pub(crate) fn create() -> Result<Self> {
        let suffix = Alphanumeric.sample_string(&mut rand::rng(), 6).to_lowercase();
        let root = std::env::temp_dir().join(format!("regcreds-cp-{}-{suffix}", std::process::id()));
        for sub in ["pki", "etcd", "logs", "users"] {
            std::fs::create_dir_all(root.join(sub))
                .with_context(|| format!("creating {}", root.display()))?;
        }
        // etcd warns about (but accepts) a data directory other users could read.
        std::fs::set_permissions(root.join("etcd"), std::fs::Permissions::from_mode(0o700))?;
        // Without a janitor a killed test run would leak the directory; not fatal, so only warn.
        let janitor = child::spawn_janitor(&root)
            .inspect_err(|e| eprintln!("regcreds-testkit: no janitor for {}: {e}", root.display()))
            .ok();
        Ok(Self { root, janitor })
    }

    /// The directory itself.
    pub(crate) fn root(&self) -> &Path {
        &self.root
    }

    /// A file under `pki/`.
    pub(crate) fn pki(&self, file: &str) -> PathBuf {
        self.root.join("pki").join(file)
    }

    /// etcd's data directory.
    pub(crate) fn etcd_data(&self) -> PathBuf {
        self.root.join("etcd")
    }

    /// The log file of `program`.
    pub(crate) fn log(&self, program: &str) -> PathBuf {
        self.root.join("logs").join(format!("{program}.log"))
    }

    /// Where kubeconfigs for extra users go.
    pub(crate) fn users(&self) -> PathBuf {
        self.root.join("users")
    }

    /// The admin (system:masters) kubeconfig.
    pub(crate) fn admin_kubeconfig(&self) -> PathBuf {
        self.root.join("admin.kubeconfig")
    }
}

impl Drop for Workdir {
    fn drop(&mut self) {
        if let Some(janitor) = &mut self.janitor {
            let _ = janitor.kill();
            let _ = janitor.wait();
        }
        let _ = std::fs::remove_dir_all(&self.root);
    }
}
