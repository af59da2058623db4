//! The kubelet's image credential provider plugins: the `CredentialProviderConfig` the kit writes for
//! `--image-credential-provider-config` and the directory it fills for
//! `--image-credential-provider-bin-dir`.
//!
//! Read from the kubelet this kit builds (Go modules in `~/go/pkg/mod`):
//! - `k8s.io/kubelet@v0.37.2/config/v1/types.go`: `CredentialProviderConfig` (`kubelet.config.k8s.io/v1`)
//!   with `providers[]`: `name`, `matchImages`, `defaultCacheDuration` (a Go duration string),
//!   `apiVersion`, `args`, `env` (`[{name, value}]`), and `tokenAttributes` (the ServiceAccount-token
//!   mode, not written yet: it would be one more optional field of [`CredentialProvider`]).
//! - `k8s.io/kubernetes@v1.37.2/pkg/credentialprovider/plugin/config.go`: the file is decoded by the
//!   universal decoder, so JSON is as good as YAML (and needs no quoting rules for passwords); a
//!   directory would be merged in lexical order. `validateCredentialProviderConfig` requires `name`
//!   (no `/`, no space), `apiVersion` (`credentialprovider.kubelet.k8s.io/v1`, v1beta1, v1alpha1),
//!   at least one `matchImages` entry and `defaultCacheDuration` ≥ 0.
//! - `.../plugin/plugin.go`: `RegisterCredentialProviderPlugins` needs the bin dir to exist and
//!   `exec.LookPath(<bin dir>/<name>)` to succeed, else the kubelet exits at start
//!   (`kuberuntime_manager.go`: "Failed to register CRI auth plugins", `os.Exit(1)`); `ExecPlugin` runs
//!   `<bin dir>/<name> args…` with the kubelet's own environment plus `env` appended
//!   (`mergeEnvVars`), a one-minute timeout, the request on stdin; `isImageAllowed` calls it only
//!   for images one of `matchImages` matches (`URLsMatchStr` in `pkg/credentialprovider/keyring.go`:
//!   same number of host parts, each a glob, the same port, a path prefix).
//! - `.../plugin/metrics.go`: the kubelet then reports `kubelet_credential_provider_plugin_duration`
//!   and `kubelet_credential_provider_plugin_errors_total` per `plugin_name`, and
//!   `kubelet_credential_provider_config_info{hash="sha256:…"}` (see [`kubelet_config_hash`]).

use std::{
    path::{Path, PathBuf},
    time::Duration,
};

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

/// The exchange version the kit asks for (`apiVersion` of a provider entry): what regcreds answers.
pub const CREDENTIAL_PROVIDER_API_VERSION: &str = "credentialprovider.kubelet.k8s.io/v1";
/// How long the kubelet keeps an answer that carries no `cacheDuration`, unless set otherwise.
pub const DEFAULT_CACHE_DURATION: Duration = Duration::from_secs(60);

/// One entry of the kubelet's `CredentialProviderConfig`: an executable the kubelet runs at pull time
/// for the images it matches. Build it with [`CredentialProvider::new`] and the setters (or
/// [`super::NodeWorld::regcreds_credential_provider`]); hand it to
/// [`super::NodeWorld::restart_kubelet`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CredentialProvider {
    name: String,
    executable: PathBuf,
    match_images: Vec<String>,
    default_cache_duration: Duration,
    args: Vec<String>,
    env: Vec<(String, String)>,
}

impl CredentialProvider {
    /// A provider `name` (the file name the kubelet looks up in its bin dir, where the kit puts a copy
    /// of `executable`) for images matching any of `match_images` (`host[:port][/path]`, globs in the
    /// host), with [`DEFAULT_CACHE_DURATION`], no arguments and no extra environment.
    pub fn new(name: &str, executable: &Path, match_images: &[&str]) -> Self {
        Self {
            name: name.to_string(),
            executable: executable.to_path_buf(),
            match_images: match_images.iter().map(|m| m.to_string()).collect(),
            default_cache_duration: DEFAULT_CACHE_DURATION,
            args: Vec::new(),
            env: Vec::new(),
        }
    }

    /// The arguments the kubelet passes (`args`).
    pub fn args(mut self, args: &[&str]) -> Self {
        self.args = args.iter().map(|a| a.to_string()).collect();
        self
    }

    /// Adds `name=value` to the provider's `env` list (appended to the kubelet's own environment).
    pub fn env(mut self, name: &str, value: &str) -> Self {
        self.env.push((name.to_string(), value.to_string()));
        self
    }

    /// Another image pattern (`matchImages`).
    pub fn match_image(mut self, pattern: &str) -> Self {
        self.match_images.push(pattern.to_string());
        self
    }

    /// `defaultCacheDuration`: how long the kubelet keeps an answer that names no `cacheDuration`.
    pub fn default_cache_duration(mut self, duration: Duration) -> Self {
        self.default_cache_duration = duration;
        self
    }

    /// The provider's name (also its `plugin_name` in the kubelet's metrics).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The `CredentialProviderConfig` holding this one provider, as the kubelet reads it.
    pub fn config(&self) -> Value {
        let env: Vec<Value> = self
            .env
            .iter()
            .map(|(name, value)| json!({ "name": name, "value": value }))
            .collect();
        json!({
            "apiVersion": "kubelet.config.k8s.io/v1",
            "kind": "CredentialProviderConfig",
            "providers": [{
                "name": self.name,
                "matchImages": self.match_images,
                // metav1.Duration: Go's time.ParseDuration syntax.
                "defaultCacheDuration": go_duration(self.default_cache_duration),
                "apiVersion": CREDENTIAL_PROVIDER_API_VERSION,
                "args": self.args,
                "env": env,
            }],
        })
    }
}

/// `90s`, or `1500ms` when not whole seconds.
fn go_duration(duration: Duration) -> String {
    if duration.subsec_millis() == 0 {
        format!("{}s", duration.as_secs())
    } else {
        format!("{}ms", duration.as_millis())
    }
}

/// The kubelet flags for a provider, and the files they name.
#[derive(Debug, Clone)]
pub(crate) struct Installed {
    /// `--image-credential-provider-config`.
    pub(crate) config: PathBuf,
    /// `--image-credential-provider-bin-dir`.
    pub(crate) bin_dir: PathBuf,
}

/// Writes `provider`'s config (`config.json`) and executable (`bin/<name>`) under `dir`, which should
/// not exist yet. The executable is copied, not linked: a rebuild of the binary under test while the
/// kubelet runs cannot change what it executes.
pub(crate) fn install(provider: &CredentialProvider, dir: &Path) -> Result<Installed> {
    if provider.name.contains(['/', ' ']) || matches!(provider.name.as_str(), "" | "." | "..") {
        bail!("credential provider name {:?} is not a file name", provider.name);
    }
    let bin_dir = dir.join("bin");
    std::fs::create_dir_all(&bin_dir).with_context(|| format!("creating {}", bin_dir.display()))?;
    let target = bin_dir.join(&provider.name);
    std::fs::copy(&provider.executable, &target).with_context(|| {
        format!(
            "copying the credential provider {} to {}",
            provider.executable.display(),
            target.display()
        )
    })?;
    let config = dir.join("config.json");
    std::fs::write(&config, serde_json::to_vec_pretty(&provider.config())?)?;
    Ok(Installed { config, bin_dir })
}

/// The value of `kubelet_credential_provider_config_info`'s `hash` label for a kubelet given the
/// single config file `contents`: `readCredentialProviderConfig` hashes each file as its length
/// (8 bytes, big-endian) followed by its bytes, and prints `sha256:<hex>`.
pub fn kubelet_config_hash(contents: &[u8]) -> String {
    let mut hasher = Sha256::new();
    hasher.update((contents.len() as u64).to_be_bytes());
    hasher.update(contents);
    let hex: String = hasher.finalize().iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256:{hex}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_config_has_every_field_the_kubelet_requires() {
        let provider = CredentialProvider::new("regcreds", Path::new("/bin/true"), &["127.0.0.1:5000"])
            .args(&["credential-provider"])
            .env("REGCREDS_STATIC_SERVER", "127.0.0.1:5000")
            .default_cache_duration(Duration::from_secs(90));
        let config = provider.config();
        assert_eq!(config["apiVersion"], "kubelet.config.k8s.io/v1");
        assert_eq!(config["kind"], "CredentialProviderConfig");
        let entry = &config["providers"][0];
        assert_eq!(entry["name"], "regcreds");
        assert_eq!(entry["matchImages"], json!(["127.0.0.1:5000"]));
        assert_eq!(entry["defaultCacheDuration"], "90s");
        assert_eq!(entry["apiVersion"], "credentialprovider.kubelet.k8s.io/v1");
        assert_eq!(entry["args"], json!(["credential-provider"]));
        assert_eq!(
            entry["env"],
            json!([{ "name": "REGCREDS_STATIC_SERVER", "value": "127.0.0.1:5000" }])
        );
        assert!(entry.get("tokenAttributes").is_none());
    }

    #[test]
    fn the_config_hash_is_the_kubelets() {
        // The first single-file case of TestReadCredentialProviderConfig (`config_test.go`, "config with
        // 1 plugin and 1 image matcher"), file contents and expected hash as written there.
        let file = "---
kind: CredentialProviderConfig
apiVersion: kubelet.config.k8s.io/v1alpha1
providers:
  - name: test
    matchImages:
    - \"registry.io/foobar\"
    defaultCacheDuration: 10m
    apiVersion: credentialprovider.kubelet.k8s.io/v1alpha1
    args:
    - --v=5
    env:
    - name: FOO
      value: BAR";
        assert_eq!(
            kubelet_config_hash(file.as_bytes()),
            "sha256:8a62755289ba50c4ca9495baab69eb861068503f8bd49b853e8ba6cf95c72bb8"
        );
    }
}
