//! The images a test node needs, written as OCI layouts without any image tool:
//! - the sandbox ("pause") image: the static `pause` binary the node build compiled from the
//!   Kubernetes module's own `build/pause/linux/pause.c`;
//! - the workload image: Debian's static busybox with its applets, a real program pods can run.
//!
//! Each is one uncompressed layer with fixed mtimes, so the same inputs give the same digests.

use std::{
    fs,
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Context, Result, bail};
use sha2::{Digest, Sha256};

/// One file or symlink in a layer.
enum Entry {
    File { path: String, host: PathBuf, mode: u32 },
    Symlink { path: String, target: String },
    Dir { path: String, mode: u32 },
}

/// The config part of an image: what runs and as whom.
#[derive(Default)]
struct Config {
    entrypoint: Vec<String>,
    cmd: Vec<String>,
    env: Vec<String>,
    user: String,
}

/// The pause image's layout in `dir`, tagged `tag`.
pub(crate) fn write_pause(pause_binary: &Path, dir: &Path, tag: &str) -> Result<()> {
    let entries = vec![Entry::File {
        path: "pause".into(),
        host: pause_binary.to_path_buf(),
        mode: 0o755,
    }];
    let config = Config {
        entrypoint: vec!["/pause".into()],
        user: "65535:65535".into(),
        ..Config::default()
    };
    write_layout(dir, tag, &entries, &config)
}

/// The busybox workload image's layout in `dir`, tagged `tag`: `/bin/busybox` plus a symlink per
/// applet, `PATH=/bin`, default command `sh`.
pub(crate) fn write_busybox(dir: &Path, tag: &str) -> Result<()> {
    let busybox = which("busybox").context("busybox not found; install Debian's busybox-static")?;
    let file = Command::new("sh")
        .arg("-c")
        .arg(format!("LC_ALL=C ldd '{}' 2>&1 || true", busybox.display()))
        .output()?;
    if !String::from_utf8_lossy(&file.stdout).contains("not a dynamic executable") {
        bail!(
            "{} is dynamically linked; the test image needs Debian's busybox-static",
            busybox.display()
        );
    }
    let list = Command::new(&busybox).arg("--list").output()?;
    let mut entries = vec![
        Entry::File {
            path: "bin/busybox".into(),
            host: busybox.clone(),
            mode: 0o755,
        },
        Entry::Dir {
            path: "tmp".into(),
            mode: 0o1777,
        },
    ];
    for applet in String::from_utf8_lossy(&list.stdout).split_whitespace() {
        if applet != "busybox" {
            entries.push(Entry::Symlink {
                path: format!("bin/{applet}"),
                target: "busybox".into(),
            });
        }
    }
    let config = Config {
        cmd: vec!["sh".into()],
        env: vec!["PATH=/bin".into()],
        ..Config::default()
    };
    write_layout(dir, tag, &entries, &config)
}

/// regcreds' image (interim, see `regcreds_image`): the binary, its libraries, CA certificates.
pub(crate) fn write_regcreds(binary: &Path, dir: &Path, tag: &str) -> Result<()> {
    let mut entries = vec![
        Entry::File {
            path: "regcreds".into(),
            host: binary.to_path_buf(),
            mode: 0o755,
        },
        Entry::Dir {
            path: "tmp".into(),
            mode: 0o1777,
        },
        Entry::File {
            path: "etc/ssl/certs/ca-certificates.crt".into(),
            host: "/etc/ssl/certs/ca-certificates.crt".into(),
            mode: 0o644,
        },
    ];
    let ldd = Command::new("ldd").arg(binary).output()?;
    for line in String::from_utf8_lossy(&ldd.stdout).lines() {
        // `libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x…)` or `/lib64/ld-linux-x86-64.so.2 (0x…)`
        let path = line
            .split("=>")
            .last()
            .and_then(|rest| rest.split_whitespace().next())
            .filter(|p| p.starts_with('/'));
        if let Some(path) = path {
            let real = fs::canonicalize(path)?;
            entries.push(Entry::File {
                path: path.trim_start_matches('/').into(),
                host: real,
                mode: 0o755,
            });
        }
    }
    let config = Config {
        entrypoint: vec!["/regcreds".into()],
        cmd: vec!["run".into()],
        user: "65532:65532".into(),
        ..Config::default()
    };
    write_layout(dir, tag, &entries, &config)
}

fn which(program: &str) -> Option<PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|dir| dir.join(program))
        .find(|p| p.is_file())
}

fn layer(entries: &[Entry]) -> Result<Vec<u8>> {
    let mut builder = tar::Builder::new(Vec::new());
    let mut dirs: Vec<String> = entries
        .iter()
        .filter_map(|e| match e {
            Entry::File { path, .. } | Entry::Symlink { path, .. } => {
                Path::new(path).parent().map(|p| p.display().to_string())
            }
            Entry::Dir { .. } => None,
        })
        .filter(|p| !p.is_empty())
        .collect();
    dirs.sort();
    dirs.dedup();
    for dir in dirs {
        let mut header = header(tar::EntryType::Directory, 0o755);
        header.set_path(format!("{dir}/"))?;
        header.set_cksum();
        builder.append(&header, std::io::empty())?;
    }
    for entry in entries {
        match entry {
            Entry::Dir { path, mode } => {
                let mut header = header(tar::EntryType::Directory, *mode);
                header.set_path(format!("{path}/"))?;
                header.set_cksum();
                builder.append(&header, std::io::empty())?;
            }
            Entry::File { path, host, mode } => {
                let bytes = fs::read(host).with_context(|| format!("reading {}", host.display()))?;
                let mut header = header(tar::EntryType::Regular, *mode);
                header.set_path(path)?;
                header.set_size(bytes.len() as u64);
                header.set_cksum();
                builder.append(&header, bytes.as_slice())?;
            }
            Entry::Symlink { path, target } => {
                let mut header = header(tar::EntryType::Symlink, 0o777);
                header.set_path(path)?;
                header.set_link_name(target)?;
                header.set_cksum();
                builder.append(&header, std::io::empty())?;
            }
        }
    }
    Ok(builder.into_inner()?)
}

fn header(kind: tar::EntryType, mode: u32) -> tar::Header {
    let mut header = tar::Header::new_ustar();
    header.set_entry_type(kind);
    header.set_mode(mode);
    header.set_mtime(0);
    header.set_uid(0);
    header.set_gid(0);
    header.set_size(0);
    header
}

fn write_layout(dir: &Path, tag: &str, entries: &[Entry], config: &Config) -> Result<()> {
    let blobs = dir.join("blobs/sha256");
    fs::create_dir_all(&blobs)?;
    let put = |bytes: &[u8], media_type: &str| -> Result<serde_json::Value> {
        let hex = format!("{:x}", Sha256::digest(bytes));
        fs::write(blobs.join(&hex), bytes)?;
        Ok(serde_json::json!({
            "mediaType": media_type, "digest": format!("sha256:{hex}"), "size": bytes.len(),
        }))
    };
    let layer = put(&layer(entries)?, "application/vnd.oci.image.layer.v1.tar")?;
    let mut runtime = serde_json::json!({ "Env": config.env });
    if !config.entrypoint.is_empty() {
        runtime["Entrypoint"] = config.entrypoint.clone().into();
    }
    if !config.cmd.is_empty() {
        runtime["Cmd"] = config.cmd.clone().into();
    }
    if !config.user.is_empty() {
        runtime["User"] = config.user.clone().into();
    }
    let image_config = serde_json::json!({
        "architecture": oci_arch(),
        "os": "linux",
        "config": runtime,
        "rootfs": { "type": "layers", "diff_ids": [layer["digest"]] },
    });
    let config_blob = put(
        &serde_json::to_vec(&image_config)?,
        "application/vnd.oci.image.config.v1+json",
    )?;
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": config_blob,
        "layers": [layer],
    });
    let mut descriptor = put(
        &serde_json::to_vec(&manifest)?,
        "application/vnd.oci.image.manifest.v1+json",
    )?;
    descriptor["annotations"] = serde_json::json!({ "org.opencontainers.image.ref.name": tag });
    let index = serde_json::json!({ "schemaVersion": 2, "manifests": [descriptor] });
    fs::write(dir.join("index.json"), serde_json::to_vec(&index)?)?;
    fs::write(dir.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#)?;
    Ok(())
}

/// The OCI name of this machine's architecture.
pub(crate) fn oci_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
}
