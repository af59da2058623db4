//! Pushing a layout to a registry and reading images back, with skopeo (Debian package).
//!
//! `skopeo copy --preserve-digests oci:DIR:TAG docker://HOST/REPO:TAG`: the registry stores the
//! layout's blobs unchanged, so the pushed manifest digest is the layout's. A password given as
//! `user:password` goes to skopeo in a private authfile, never on a command line (other users can read
//! those in `/proc`), and never into an error message.

use std::{
    fs,
    io::Write,
    os::unix::fs::OpenOptionsExt,
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Context, Result, bail};
use base64::{Engine, engine::general_purpose::STANDARD};
use serde_json::Value;

use super::oci::OciLayout;
use crate::registry::TestRegistry;

/// How to reach a registry.
#[derive(Debug, Clone)]
pub struct RegistryAccess {
    /// A directory with the registry's CA certificate as `ca.crt` (skopeo's `--cert-dir`); `None`
    /// trusts the system roots only.
    pub cert_dir: Option<PathBuf>,
    /// `false` for a plain-http registry (or one whose certificate cannot be verified).
    pub tls_verify: bool,
    /// The user to log in as.
    pub credentials: Credentials,
}

impl Default for RegistryAccess {
    /// System roots, TLS verified, skopeo's own login.
    fn default() -> Self {
        Self {
            cert_dir: None,
            tls_verify: true,
            credentials: Credentials::Default,
        }
    }
}

/// Who skopeo is towards the registry.
#[derive(Clone)]
pub enum Credentials {
    /// skopeo's own defaults (`$REGISTRY_AUTH_FILE`, `${XDG_RUNTIME_DIR}/containers/auth.json`, …).
    Default,
    /// Anonymous.
    None,
    /// A user and password.
    Basic {
        /// The user.
        user: String,
        /// The password.
        password: String,
    },
    /// A dockerconfigjson file (`--authfile`).
    Authfile(PathBuf),
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Default => f.write_str("Default"),
            Self::None => f.write_str("None"),
            Self::Basic { user, .. } => write!(f, "Basic({user}:***)"),
            Self::Authfile(path) => write!(f, "Authfile({})", path.display()),
        }
    }
}

impl Credentials {
    /// Parses `user:password`.
    pub fn basic(user_password: &str) -> Result<Self> {
        match user_password.split_once(':') {
            Some((user, password)) if !user.is_empty() => Ok(Self::Basic {
                user: user.to_string(),
                password: password.to_string(),
            }),
            _ => bail!("credentials must look like user:password"),
        }
    }
}

/// Pushing to the test kit's registry ([`TestRegistry`] lives in `regcreds-fakes`, which knows
/// nothing of images; bring this trait into scope to push).
pub trait PushToRegistry {
    /// How skopeo reaches this registry as its first user (anonymously without users).
    fn access(&self) -> RegistryAccess;

    /// Pushes an image layout (e.g. [`super::regcreds::test_image`]) as `repository:tag` (no host), as
    /// the first user; returns the manifest digest. Pods then pull `{host}/{repository}:{tag}`.
    fn push_layout(&self, layout: &OciLayout, repository_tag: &str) -> Result<String>;
}

impl PushToRegistry for TestRegistry {
    fn access(&self) -> RegistryAccess {
        RegistryAccess {
            cert_dir: self.tls().then(|| self.cert_dir()),
            tls_verify: self.tls(),
            credentials: match self.users().first() {
                Some((user, password)) => Credentials::Basic {
                    user: user.clone(),
                    password: password.clone(),
                },
                None => Credentials::None,
            },
        }
    }

    fn push_layout(&self, layout: &OciLayout, repository_tag: &str) -> Result<String> {
        push(
            layout,
            &format!("{}/{repository_tag}", self.host()),
            &self.access(),
        )
    }
}

/// Pushes the layout's image to `destination` (`host[:port]/repository:tag`); returns the manifest
/// digest the registry now serves (skopeo's `--digestfile`), which equals the layout's.
pub fn push(layout: &OciLayout, destination: &str, access: &RegistryAccess) -> Result<String> {
    let scratch = tempfile::Builder::new().prefix("regcreds-push-").tempdir()?;
    let digest_file = scratch.path().join("digest");
    let mut copy = skopeo(scratch.path());
    copy.args(["copy", "--quiet", "--insecure-policy", "--preserve-digests"])
        .arg("--digestfile")
        .arg(&digest_file);
    copy.args(access_args(
        access,
        "dest-",
        registry_host(destination),
        scratch.path(),
    )?);
    copy.arg(layout.skopeo_reference())
        .arg(format!("docker://{destination}"));
    run(copy).with_context(|| format!("pushing {} to {destination}", layout.skopeo_reference()))?;
    let digest = fs::read_to_string(&digest_file).context("skopeo wrote no digest file")?;
    Ok(digest.trim().to_string())
}

/// `skopeo inspect --config` of `reference` (`docker://…`, `oci:DIR:TAG`, …): the image config.
pub fn inspect_config(reference: &str, access: &RegistryAccess) -> Result<Value> {
    let output = inspect(reference, access, &["--config"])?;
    serde_json::from_str(&output).with_context(|| format!("skopeo inspect --config {reference}: not JSON"))
}

/// `skopeo inspect` of `reference`: the manifest digest.
pub fn inspect_digest(reference: &str, access: &RegistryAccess) -> Result<String> {
    inspect(reference, access, &["--format", "{{.Digest}}"])
}

fn inspect(reference: &str, access: &RegistryAccess, extra: &[&str]) -> Result<String> {
    let scratch = tempfile::Builder::new().prefix("regcreds-inspect-").tempdir()?;
    let mut command = skopeo(scratch.path());
    command.arg("inspect").args(extra);
    if let Some(rest) = reference.strip_prefix("docker://") {
        command.args(access_args(access, "", registry_host(rest), scratch.path())?);
    }
    command.arg(reference);
    run(command).with_context(|| format!("skopeo inspect {reference}"))
}

/// skopeo with a private HOME, so a login elsewhere on the machine cannot stand in for the one given.
fn skopeo(home: &Path) -> Command {
    let mut command = Command::new("skopeo");
    command.env("HOME", home).env("XDG_RUNTIME_DIR", home);
    command
}

/// `--{prefix}cert-dir`/`--{prefix}tls-verify` and the credential flags.
fn access_args(access: &RegistryAccess, prefix: &str, host: &str, scratch: &Path) -> Result<Vec<String>> {
    let mut args = Vec::new();
    if let Some(dir) = &access.cert_dir {
        args.push(format!("--{prefix}cert-dir={}", dir.display()));
    }
    args.push(format!("--{prefix}tls-verify={}", access.tls_verify));
    match &access.credentials {
        Credentials::Default => {
            // The private HOME hides the user's own login; point skopeo back at it.
            if let Some(file) = default_authfile() {
                args.push(format!("--{prefix}authfile={}", file.display()));
            }
        }
        Credentials::None => args.push(format!("--{prefix}no-creds")),
        Credentials::Authfile(path) => args.push(format!("--{prefix}authfile={}", path.display())),
        Credentials::Basic { user, password } => {
            let path = scratch.join("auth.json");
            let auth = STANDARD.encode(format!("{user}:{password}"));
            let document = serde_json::json!({ "auths": { host: { "auth": auth } } });
            let mut file = fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&path)?;
            file.write_all(document.to_string().as_bytes())?;
            args.push(format!("--{prefix}authfile={}", path.display()));
        }
    }
    Ok(args)
}

/// The login a plain `skopeo` would use: `$REGISTRY_AUTH_FILE`, then the containers and Docker files.
fn default_authfile() -> Option<PathBuf> {
    if let Some(file) = std::env::var_os("REGISTRY_AUTH_FILE") {
        return Some(file.into());
    }
    let runtime = std::env::var_os("XDG_RUNTIME_DIR").map(|d| PathBuf::from(d).join("containers/auth.json"));
    let home = std::env::var_os("HOME").map(PathBuf::from);
    let config = home.as_ref().map(|h| h.join(".config/containers/auth.json"));
    let docker = std::env::var_os("DOCKER_CONFIG")
        .map(|d| PathBuf::from(d).join("config.json"))
        .or_else(|| home.map(|h| h.join(".docker/config.json")));
    [runtime, config, docker]
        .into_iter()
        .flatten()
        .find(|p| p.is_file())
}

/// `127.0.0.1:5443` of `127.0.0.1:5443/regcreds/regcreds:0.1.0`.
fn registry_host(reference: &str) -> &str {
    reference.split('/').next().unwrap_or(reference)
}

/// Runs skopeo: trimmed stdout, or an error with its stderr (skopeo never prints passwords).
fn run(mut command: Command) -> Result<String> {
    let output = command
        .output()
        .context("running skopeo (install it: apt-get install skopeo)")?;
    if !output.status.success() {
        bail!("{}", String::from_utf8_lossy(&output.stderr).trim());
    }
    Ok(String::from_utf8_lossy(&output.stdout).trim().to_string())
}
