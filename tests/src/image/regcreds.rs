//! The regcreds image: the `Dockerfile`'s final stage, restated for a build without Docker.
//!
//! ```text
//! layer 1  runtime (super::runtime): loader + libraries of the binary, CA bundle, nonroot user, /tmp
//! layer 2  /regcreds (0755 root:root)                       ◄─ COPY --chown=0:0 --chmod=0755 … /regcreds
//! config   User 65532:65532 · Entrypoint ["/regcreds"] · Cmd ["run"] · ExposedPorts 8080/tcp
//!          · Labels org.opencontainers.image.* (version: workspace, revision + created: git HEAD)
//!          · Env + WorkingDir of distroless cc-debian12:nonroot
//! ```
//!
//! The constants below repeat what the `Dockerfile` says on purpose: `tests/tests/image.rs` parses the
//! `Dockerfile` and fails when the two disagree, so neither can change alone.

use std::{collections::BTreeMap, path::Path, process::Command, sync::OnceLock};

use anyhow::{Context, Result};

use super::{
    layer::{Compression, LayerBuilder},
    oci::{ImageConfig, OciImage, OciLayout},
    rootfs::UnpackedImage,
    runtime::{self, BASE_ENV, BASE_WORKING_DIR},
};

/// Where the binary lives in the image.
pub const BINARY_PATH: &str = "/regcreds";
/// Mode of the binary (`COPY --chmod=0755`, owned by root: `--chown=0:0`).
pub const BINARY_MODE: u32 = 0o755;
/// `USER`: distroless' nonroot, numeric so `runAsNonRoot` can verify it.
pub const USER: &str = "65532:65532";
/// `ENTRYPOINT`.
pub const ENTRYPOINT: &[&str] = &["/regcreds"];
/// `CMD`: manifests written for upmc registry-creds or imagepullsecret-patcher pass no args.
pub const CMD: &[&str] = &["run"];
/// `EXPOSE`: metrics, `/healthz`, `/readyz`.
pub const EXPOSED_PORTS: &[&str] = &["8080/tcp"];

/// The `LABEL`s that do not depend on the build.
const FIXED_LABELS: &[(&str, &str)] = &[
    ("org.opencontainers.image.title", "regcreds"),
    (
        "org.opencontainers.image.description",
        "Mints container registry credentials and keeps a pull Secret in every namespace",
    ),
    ("org.opencontainers.image.licenses", "Apache-2.0"),
    (
        "org.opencontainers.image.source",
        "https://example.invalid/regcreds",
    ),
];

/// What varies per build: the `Dockerfile`'s `ARG VERSION`, `REVISION` and `CREATED`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageMetadata {
    /// The workspace version (`org.opencontainers.image.version`).
    pub version: String,
    /// Git commit of the sources (`…revision`), with `-dirty` when the checkout has uncommitted
    /// changes, `unknown` outside a git checkout.
    pub revision: String,
    /// RFC 3339 time of that commit, UTC (`…created` and the config's `created`), so that rebuilding
    /// the same commit gives the same image digest.
    pub created: String,
}

impl ImageMetadata {
    /// Version from the workspace, revision and time from `git` in `repo` (HEAD).
    pub fn from_workspace(repo: &Path) -> Self {
        let git = |args: &[&str]| -> Option<String> {
            let output = Command::new("git")
                .args(args)
                .current_dir(repo)
                .env("TZ", "UTC")
                .output()
                .ok()?;
            let text = String::from_utf8_lossy(&output.stdout).trim().to_string();
            (output.status.success() && !text.is_empty()).then_some(text)
        };
        let dirty = git(&["status", "--porcelain", "--untracked-files=no"]).is_some();
        let revision = git(&["rev-parse", "HEAD"]).map_or_else(
            || "unknown".to_string(),
            |commit| if dirty { format!("{commit}-dirty") } else { commit },
        );
        Self {
            version: env!("CARGO_PKG_VERSION").to_string(),
            revision,
            created: git(&[
                "log",
                "-1",
                "--format=%cd",
                "--date=format-local:%Y-%m-%dT%H:%M:%SZ",
            ])
            .unwrap_or_else(|| "1970-01-01T00:00:00Z".to_string()),
        }
    }

    /// The `--build-arg`s a `docker build` of the same sources would get.
    pub fn build_args(&self) -> BTreeMap<String, String> {
        BTreeMap::from([
            ("VERSION".to_string(), self.version.clone()),
            ("REVISION".to_string(), self.revision.clone()),
            ("CREATED".to_string(), self.created.clone()),
        ])
    }

    /// Every `org.opencontainers.image.*` label of the image.
    pub fn labels(&self) -> BTreeMap<String, String> {
        let mut labels: BTreeMap<String, String> = FIXED_LABELS
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        labels.insert("org.opencontainers.image.version".into(), self.version.clone());
        labels.insert("org.opencontainers.image.revision".into(), self.revision.clone());
        labels.insert("org.opencontainers.image.created".into(), self.created.clone());
        labels
    }
}

/// How to build the image.
#[derive(Debug, Clone)]
pub struct BuildOptions {
    /// Labels and creation time.
    pub metadata: ImageMetadata,
    /// Tag inside the layout.
    pub tag: String,
    /// gzip for publishing; none for tests (faster, and a debug binary is large).
    pub compression: Compression,
}

impl BuildOptions {
    /// For tests: this checkout's metadata, tag = the version, uncompressed layers.
    pub fn for_tests() -> Self {
        let metadata = ImageMetadata::from_workspace(&workspace_root());
        Self {
            tag: metadata.version.clone(),
            metadata,
            compression: Compression::None,
        }
    }
}

/// The regcreds image of the binary under test ([`crate::regcreds_binary`], normally the debug build),
/// built once per test process with [`BuildOptions::for_tests`] into a temporary directory that a
/// janitor deletes when the process is gone. Panics if the image cannot be built.
pub fn test_image() -> &'static OciLayout {
    static IMAGE: OnceLock<(OciLayout, Option<std::process::Child>)> = OnceLock::new();
    &IMAGE
        .get_or_init(|| {
            let dir = std::env::temp_dir().join(format!("regcreds-image-{}", std::process::id()));
            // Statics are never dropped: the janitor removes the directory after this process exits.
            let janitor = crate::child::spawn_janitor(&dir)
                .inspect_err(|e| eprintln!("regcreds-testkit: no janitor for {}: {e}", dir.display()))
                .ok();
            let layout = build(
                &crate::regcreds_binary(),
                &dir.join("oci"),
                &BuildOptions::for_tests(),
            )
            .unwrap_or_else(|e| panic!("building the regcreds test image: {e:#}"));
            (layout, janitor)
        })
        .0
}

/// Builds the regcreds image around `binary` and writes it as an OCI layout in `dir`.
pub fn build(binary: &Path, dir: &Path, options: &BuildOptions) -> Result<OciLayout> {
    let runtime = runtime::runtime_layer(&[binary])
        .context("assembling the runtime from this machine's files")?
        .build(options.compression)?;
    let mut app = LayerBuilder::new();
    app.file_from_host(BINARY_PATH, binary, BINARY_MODE)?;
    let app = app.build(options.compression)?;
    let image = OciImage {
        created: options.metadata.created.clone(),
        config: config(&options.metadata),
        layers: vec![
            (
                runtime,
                format!(
                    "regcreds runtime like {}: loader, shared libraries, CA certificates, users (host Debian files)",
                    runtime::BASE_IMAGE
                ),
            ),
            (
                app,
                format!("COPY --chown=0:0 --chmod=0755 regcreds {BINARY_PATH}"),
            ),
        ],
    };
    image
        .write_layout(dir, &options.tag)
        .with_context(|| format!("writing the image layout {}", dir.display()))
}

/// Runs `regcreds --version` and `regcreds config check` (a static provider) inside the unpacked
/// image as its user; returns the first line each printed. Catches a missing library or an unreadable
/// file before a node does. Needs root.
pub fn smoke_check(layout: &OciLayout) -> Result<Vec<String>> {
    let unpacked = UnpackedImage::new(layout)?;
    let provider = [
        ("REGCREDS_STATIC_SERVER", "registry.example:5000"),
        ("REGCREDS_STATIC_USER", "smoke"),
        ("REGCREDS_STATIC_PASSWORD", "smoke"),
    ];
    let mut lines = Vec::new();
    for (args, env) in [
        (&["--version"][..], &[][..]),
        (&["config", "check"][..], &provider[..]),
    ] {
        let output = unpacked.run(args, env)?;
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        if !output.status.success() {
            anyhow::bail!(
                "`regcreds {}` inside the image as {} failed ({}):\n{text}",
                args.join(" "),
                unpacked.user,
                output.status
            );
        }
        lines.push(format!(
            "regcreds {}: {}",
            args.join(" "),
            text.lines().next().unwrap_or("").trim()
        ));
    }
    Ok(lines)
}

/// The image config: the `Dockerfile`'s instructions over the base image's `Env` and `WorkingDir`.
pub fn config(metadata: &ImageMetadata) -> ImageConfig {
    let strings = |items: &[&str]| items.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    ImageConfig {
        user: USER.to_string(),
        entrypoint: strings(ENTRYPOINT),
        cmd: strings(CMD),
        env: strings(BASE_ENV),
        working_dir: BASE_WORKING_DIR.to_string(),
        exposed_ports: strings(EXPOSED_PORTS),
        labels: metadata.labels(),
    }
}

/// The repository root (the test kit lives in `tests/`).
pub fn workspace_root() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ is inside the workspace")
        .to_path_buf()
}
