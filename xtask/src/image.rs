//! `cargo xtask image`: the regcreds container image without a Docker daemon.
//!
//! ```text
//!  1  cargo build --release --locked -p regcreds        (or --binary PATH)
//!  2  regcreds_testkit::image::regcreds::build          runtime layer from this machine's Debian files
//!                                                       (distroless cc-debian12:nonroot equivalent) +
//!                                                       /regcreds, config as in the Dockerfile → OCI layout
//!  3  unpack + chroot as 65532: regcreds --version, config check   (as root; else skipped, said so)
//!  4  --archive FILE: the layout as one tar (ctr images import, skopeo oci-archive:)
//!  5  --push HOST/REPO:TAG: skopeo copy, digest preserved
//! ```
//!
//! The same sources and host files give the same digest (mtime 0, commit time as `created`).

use std::{path::PathBuf, time::Instant};

use anyhow::Result;
use regcreds_testkit::image::{
    self, Compression, Credentials, OciLayout, RegistryAccess,
    regcreds::{BuildOptions, ImageMetadata},
    rootfs,
};

use crate::shell::{self, cargo, human};

/// Options of `image`.
#[derive(clap::Args)]
pub struct Args {
    /// Package this regcreds binary instead of building the release one.
    #[arg(long, env = "REGCREDS_IMAGE_BINARY", value_name = "PATH")]
    binary: Option<PathBuf>,
    /// The OCI image layout directory to write, replaced if it holds a layout [default: target/image/oci
    /// in the repository].
    #[arg(long, env = "REGCREDS_IMAGE_OUT", value_name = "DIR")]
    out: Option<PathBuf>,
    /// Tag inside the layout (default: the workspace version).
    #[arg(long, env = "REGCREDS_IMAGE_TAG")]
    tag: Option<String>,
    /// Also write the layout as one tar (an OCI archive) to this file.
    #[arg(long, env = "REGCREDS_IMAGE_ARCHIVE", value_name = "FILE")]
    archive: Option<PathBuf>,
    /// Push to this reference, e.g. `127.0.0.1:5443/regcreds/regcreds:0.1.0`.
    #[arg(long, env = "REGCREDS_IMAGE_PUSH", value_name = "HOST/REPO:TAG")]
    push: Option<String>,
    /// Directory holding the registry's CA certificate as `ca.crt` (skopeo's --dest-cert-dir).
    #[arg(long, env = "REGCREDS_IMAGE_CERT_DIR", value_name = "DIR")]
    cert_dir: Option<PathBuf>,
    /// Registry credentials as user:password (handed to skopeo in a private file, never on a command line).
    #[arg(
        long,
        env = "REGCREDS_IMAGE_CREDS",
        hide_env_values = true,
        value_name = "USER:PASSWORD",
        conflicts_with = "authfile"
    )]
    creds: Option<String>,
    /// A dockerconfigjson with the registry's credentials (default: skopeo's own login).
    #[arg(long, env = "REGCREDS_IMAGE_AUTHFILE", value_name = "FILE")]
    authfile: Option<PathBuf>,
    /// The registry speaks plain http (or its certificate is not verifiable).
    #[arg(long, env = "REGCREDS_IMAGE_INSECURE")]
    insecure: bool,
    /// Do not run the binary inside the image before writing/pushing it.
    #[arg(long)]
    no_smoke: bool,
}

/// Builds, checks, and optionally archives and pushes the image.
pub fn run(args: Args) -> Result<()> {
    let started = Instant::now();
    let root = shell::repo_root();
    let binary = match &args.binary {
        Some(path) => path.clone(),
        None => {
            shell::run(cargo().args([
                "build",
                "--release",
                "--locked",
                "-p",
                "regcreds",
                "--bin",
                "regcreds",
            ]))?;
            root.join("target/release/regcreds")
        }
    };
    let out = args.out.clone().unwrap_or_else(|| root.join("target/image/oci"));
    let metadata = ImageMetadata::from_workspace(&root);
    let options = BuildOptions {
        tag: args.tag.clone().unwrap_or_else(|| metadata.version.clone()),
        metadata,
        compression: Compression::Gzip,
    };
    let build_started = Instant::now();
    let layout = image::regcreds::build(&binary, &out, &options)?;
    println!(
        "image layout {} in {}",
        layout.skopeo_reference(),
        human(build_started.elapsed())
    );
    summary(&layout, &options)?;

    if args.no_smoke {
        println!("smoke check skipped (--no-smoke)");
    } else if !rootfs::is_root() {
        println!("smoke check skipped: running the binary inside the image needs root (chroot)");
    } else {
        for line in image::regcreds::smoke_check(&layout)? {
            println!("smoke check (chroot, as the image's user): {line}");
        }
    }
    if let Some(archive) = &args.archive {
        layout.write_archive(archive)?;
        println!("OCI archive {}", archive.display());
    }
    if let Some(destination) = &args.push {
        let access = RegistryAccess {
            cert_dir: args.cert_dir.clone(),
            tls_verify: !args.insecure,
            credentials: match (&args.creds, &args.authfile) {
                (Some(creds), _) => Credentials::basic(creds)?,
                (None, Some(file)) => Credentials::Authfile(file.clone()),
                (None, None) => Credentials::Default,
            },
        };
        let digest = image::push::push(&layout, destination, &access)?;
        println!("pushed {destination}@{digest}");
    }
    println!("done in {}", human(started.elapsed()));
    Ok(())
}

/// Layers, sizes, digest, and the labels a registry UI shows.
fn summary(layout: &OciLayout, options: &BuildOptions) -> Result<()> {
    for (digest, media_type, size) in layout.layers()? {
        println!("  layer {digest}  {:>8} KiB  {media_type}", size / 1024);
    }
    println!(
        "  total {} KiB (compressed), manifest {}",
        layout.size()? / 1024,
        layout.manifest_digest
    );
    let m = &options.metadata;
    println!(
        "  version {}  revision {}  created {}",
        m.version, m.revision, m.created
    );
    Ok(())
}
