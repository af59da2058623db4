//! The images a test node needs, built with [`crate::image`] (no image tool, deterministic digests):
//! - the sandbox ("pause") image: the static `pause` binary the node build compiled from the
//!   Kubernetes module's own `build/pause/linux/pause.c`, run as 65535 like upstream's;
//! - the workload image: Debian's static busybox with its applets, a real program pods can run;
//! - regcreds' own image: [`crate::image::regcreds::build`] around the binary under test, exactly
//!   what `cargo xtask image` builds (there around the release binary).

use std::{path::Path, process::Command};

use anyhow::{Context, Result, bail};

use crate::{
    image::{Compression, ImageConfig, LayerBuilder, OciImage, OciLayout, regcreds},
    regcreds_binary,
};

/// Written into the image configs' `created` (the images are test fixtures).
const CREATED: &str = "1970-01-01T00:00:00Z";

/// The pause image's layout in `dir`, tagged `tag`.
pub(crate) fn write_pause(pause_binary: &Path, dir: &Path, tag: &str) -> Result<OciLayout> {
    let mut layer = LayerBuilder::new();
    layer.file_from_host("/pause", pause_binary, 0o755)?;
    let config = ImageConfig {
        entrypoint: vec!["/pause".into()],
        user: "65535:65535".into(),
        ..ImageConfig::default()
    };
    image(
        config,
        layer,
        "pause from k8s.io/kubernetes build/pause/linux/pause.c",
    )?
    .write_layout(dir, tag)
}

/// The busybox workload image's layout in `dir`, tagged `tag`: `/bin/busybox` plus a symlink per
/// applet, `PATH=/bin`, default command `sh`.
pub(crate) fn write_busybox(dir: &Path, tag: &str) -> Result<OciLayout> {
    write_busybox_with_env(dir, tag, &[])
}

/// [`write_busybox`] with `env` added to its config: the same layer under another image ID (the
/// config's digest) for each different `env`.
pub(crate) fn write_busybox_with_env(dir: &Path, tag: &str, env: &[String]) -> Result<OciLayout> {
    let busybox = which("busybox").context("busybox not found; install Debian's busybox-static")?;
    let ldd = Command::new("sh")
        .arg("-c")
        .arg(format!("LC_ALL=C ldd '{}' 2>&1 || true", busybox.display()))
        .output()?;
    if !String::from_utf8_lossy(&ldd.stdout).contains("not a dynamic executable") {
        bail!(
            "{} is dynamically linked; the test image needs Debian's busybox-static",
            busybox.display()
        );
    }
    let applets = Command::new(&busybox).arg("--list").output()?;
    let mut layer = LayerBuilder::new();
    layer.file_from_host("/bin/busybox", &busybox, 0o755)?;
    layer.dir("/tmp", 0o1777, (0, 0))?;
    for applet in String::from_utf8_lossy(&applets.stdout).split_whitespace() {
        if applet != "busybox" {
            layer.symlink(format!("/bin/{applet}"), "busybox")?;
        }
    }
    let config = ImageConfig {
        cmd: vec!["sh".into()],
        env: std::iter::once("PATH=/bin".to_string())
            .chain(env.iter().cloned())
            .collect(),
        ..ImageConfig::default()
    };
    image(config, layer, "busybox-static from Debian")?.write_layout(dir, tag)
}

/// regcreds' image around the binary under test, first stripped into `stripped` (debug info: the image
/// needs none of it).
pub(crate) fn write_regcreds(dir: &Path, stripped: &Path) -> Result<OciLayout> {
    std::fs::create_dir_all(stripped.parent().context("a file has a directory")?)?;
    super::run(
        Command::new("strip")
            .arg("-o")
            .arg(stripped)
            .arg(regcreds_binary()),
    )?;
    regcreds::build(stripped, dir, &regcreds::BuildOptions::for_tests())
}

fn image(config: ImageConfig, layer: LayerBuilder, created_by: &str) -> Result<OciImage> {
    Ok(OciImage {
        created: CREATED.into(),
        config,
        layers: vec![(layer.build(Compression::None)?, created_by.into())],
    })
}

fn which(program: &str) -> Option<std::path::PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|dir| dir.join(program))
        .find(|p| p.is_file())
}
