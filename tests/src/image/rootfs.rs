//! Running a program from an image without a container runtime: unpack its layers into a directory
//! and `chroot` into it as the image's user (coreutils `chroot --userspec`, which needs root).
//!
//! What breaks here — a library missing from the image, the loader at the wrong path, an unreadable
//! CA bundle, a file the non-root user may not read — would break the same way in a pod, only later
//! and harder to see. The process shares the caller's network namespace (loopback registries work)
//! but sees only the image's files, with exactly the environment given.

use std::{
    fs,
    os::unix::fs::MetadataExt,
    path::{Path, PathBuf},
    process::{Command, Output},
};

use anyhow::{Context, Result, bail};

use super::oci::OciLayout;

/// Whether this process is root (needed to unpack owners and to chroot).
pub fn is_root() -> bool {
    // /proc/self belongs to the effective uid; no libc call (and no `unsafe`) needed.
    fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

/// Unpacks the image's layers, bottom first, into `dir`, keeping modes and (as root) owners.
pub fn unpack(layout: &OciLayout, dir: &Path) -> Result<()> {
    fs::create_dir_all(dir)?;
    for (digest, media_type, _) in layout.layers()? {
        let mut archive = tar::Archive::new(layout.layer_tar(&digest, &media_type)?);
        archive.set_preserve_permissions(true);
        archive.set_preserve_ownerships(true);
        archive.set_unpack_xattrs(false);
        archive.set_overwrite(true);
        for entry in archive.entries()? {
            let mut entry = entry?;
            let path = entry.path()?.into_owned();
            if path
                .file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with(".wh."))
            {
                bail!("layer {digest}: whiteout {} is not supported", path.display());
            }
            entry
                .unpack_in(dir)
                .with_context(|| format!("unpacking {} of layer {digest}", path.display()))?;
        }
    }
    Ok(())
}

/// Runs `args` (`args[0]` is the program, a path inside the image) chrooted into `rootfs` as `user`
/// (`uid:gid`), with exactly `env` (`NAME=value`), and returns its output whatever its exit status.
pub fn run_as(rootfs: &Path, user: &str, env: &[String], args: &[&str]) -> Result<Output> {
    let mut command = Command::new("chroot");
    command
        .arg(format!("--userspec={user}"))
        .arg(rootfs)
        .args(args)
        .env_clear()
        .envs(env.iter().filter_map(|pair| pair.split_once('=')));
    command
        .output()
        .with_context(|| format!("running chroot {} {}", rootfs.display(), args.join(" ")))
}

/// An image unpacked into a temporary directory (removed on drop), ready to run as its user.
#[derive(Debug)]
pub struct UnpackedImage {
    _dir: tempfile::TempDir,
    /// The unpacked root file system.
    pub rootfs: PathBuf,
    /// The image's `User`.
    pub user: String,
    /// The image's `Env`.
    pub env: Vec<String>,
    /// The image's `Entrypoint`.
    pub entrypoint: Vec<String>,
}

impl UnpackedImage {
    /// Unpacks `layout` (needs root, see [`is_root`]).
    pub fn new(layout: &OciLayout) -> Result<Self> {
        if !is_root() {
            bail!("running a program inside the image needs root (chroot, file owners)");
        }
        let dir = tempfile::Builder::new().prefix("regcreds-rootfs-").tempdir()?;
        let rootfs = dir.path().join("rootfs");
        unpack(layout, &rootfs)?;
        let config = layout.config()?;
        let strings = |value: &serde_json::Value| -> Vec<String> {
            value
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|v| v.as_str().map(String::from))
                .collect()
        };
        Ok(Self {
            _dir: dir,
            rootfs,
            user: config["config"]["User"].as_str().unwrap_or("0:0").to_string(),
            env: strings(&config["config"]["Env"]),
            entrypoint: strings(&config["config"]["Entrypoint"]),
        })
    }

    /// Runs the entrypoint with `args`, the image's `Env` plus `env`, as the image's user.
    pub fn run(&self, args: &[&str], env: &[(&str, &str)]) -> Result<Output> {
        let mut full_env = self.env.clone();
        full_env.extend(env.iter().map(|(k, v)| format!("{k}={v}")));
        let argv: Vec<&str> = self
            .entrypoint
            .iter()
            .map(String::as_str)
            .chain(args.iter().copied())
            .collect();
        run_as(&self.rootfs, &self.user, &full_env, &argv)
    }
}
