//! The kubelet's image credential provider plugins: the `CredentialProviderConfig` the kit writes for
//! `--image-credential-provider-config` and the directory it fills for
//! `--image-credential-provider-bin-dir`.
//!
//! Read from the kubelet this kit builds (Go modules in `~/go/pkg/mod`):
//! - `k8s.io/kubelet@v0.37.2/config/v1/types.go`: `CredentialProviderConfig` (`kubelet.config.k8s.io/v1`)
//!   with `providers[]`: `name`, `matchImages`, `defaultCacheDuration` (a Go duration string),
//!   `apiVersion`, `args`, `env` (`[{name, value}]`), and `tokenAttributes`
//!   (`ServiceAccountTokenAttributes`: the ServiceAccount-token mode, [`TokenAttributes`]).
//! - `k8s.io/kubernetes@v1.37.2/pkg/credentialprovider/plugin/config.go`: the file is decoded by the
//!   universal decoder, so JSON is as good as YAML (and needs no quoting rules for passwords); a
//!   directory would be merged in lexical order. `validateCredentialProviderConfig` requires `name`
//!   (no `/`, no space), `apiVersion` (`credentialprovider.kubelet.k8s.io/v1`, v1beta1, v1alpha1),
//!   at least one `matchImages` entry and `defaultCacheDuration` ≥ 0; for `tokenAttributes` (with the
//!   `KubeletServiceAccountTokenForCredentialProviders` gate, beta and on since 1.34) a non-empty
//!   `serviceAccountTokenAudience`, `requireServiceAccount` set, `cacheType` `Token` or `ServiceAccount`,
//!   the provider's `apiVersion` `credentialprovider.kubelet.k8s.io/v1`, annotation keys that are
//!   qualified names (case aside), unique, never both required and optional, and required keys only
//!   with `requireServiceAccount: true`. The kubelet exits at start on any of them, so [`install`]
//!   refuses what [`crate::manifests::kubelet_config_problems`] (those rules, reproduced) finds.
//! - `.../plugin/plugin.go`: `RegisterCredentialProviderPlugins` needs the bin dir to exist and
//!   `exec.LookPath(<bin dir>/<name>)` to succeed, else the kubelet exits at start
//!   (`kuberuntime_manager.go`: "Failed to register CRI auth plugins", `os.Exit(1)`); `ExecPlugin` runs
//!   `<bin dir>/<name> args…` with the kubelet's own environment plus `env` appended
//!   (`mergeEnvVars`), a one-minute timeout, the request on stdin; `isImageAllowed` calls it only
//!   for images one of `matchImages` matches (`URLsMatchStr` in `pkg/credentialprovider/keyring.go`:
//!   same number of host parts, each a glob, the same port, a path prefix).
//! - `.../plugin/plugin.go`, `provide`: with `tokenAttributes` the kubelet gets the pod's ServiceAccount
//!   (`get serviceaccounts`; a missing required annotation skips the plugin), asks the apiserver for a
//!   token of `serviceAccountTokenAudience` bound to the pod (`create serviceaccounts/token`, its
//!   default lifetime) and passes it and the listed annotations in the request; answers are cached
//!   per ServiceAccount (namespace, name, UID, those annotations) and, with `cacheType: Token`, per token
//!   too. The Node authorizer lets a kubelet do both for pods bound to its node; the NodeRestriction
//!   admission plugin then also wants the audience allowed (see [`TokenAttributes`]).
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

/// `tokenAttributes.cacheType` (`ServiceAccountTokenCacheType` of `config/v1/types.go`): what the kubelet
/// keys the plugin's answers by, beyond the image and the ServiceAccount.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenCacheType {
    /// `Token`: per token, for credentials that live no longer than the ServiceAccount token.
    Token,
    /// `ServiceAccount`: per ServiceAccount, for credentials valid for every pod using it.
    ServiceAccount,
}

impl TokenCacheType {
    /// The value in the config.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Token => "Token",
            Self::ServiceAccount => "ServiceAccount",
        }
    }
}

/// `tokenAttributes` of a provider (`ServiceAccountTokenAttributes`, `k8s.io/kubelet@v0.37.2/config/v1/
/// types.go`): the kubelet's ServiceAccount token mode, in which each request carries a token of the pod's
/// ServiceAccount for `serviceAccountTokenAudience`, bound to the pod, and the listed annotations of
/// that ServiceAccount.
///
/// The kubelet requests that token as `system:node:<name>`: the Node authorizer allows it for pods bound
/// to the node, and since `ServiceAccountNodeAudienceRestriction` (beta, on by default since 1.33,
/// `pkg/features/kube_features.go`) the NodeRestriction admission plugin also requires the audience to
/// be one the pod mounts a projected token for, or one RBAC grants the node: verb
/// `request-serviceaccounts-token-audience` on resource `<audience>` in the core API group, optionally
/// limited to ServiceAccount names (`plugin/pkg/admission/noderestriction/admission.go`,
/// `validateNodeServiceAccountAudience`). Without that grant every pull in this mode fails with
/// "… is not authorized to request tokens for audience …". See
/// [`super::NodeWorld::allow_node_token_audience`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenAttributes {
    service_account_token_audience: String,
    cache_type: TokenCacheType,
    require_service_account: bool,
    required_service_account_annotation_keys: Vec<String>,
    optional_service_account_annotation_keys: Vec<String>,
}

impl TokenAttributes {
    /// Tokens for `audience`, answers cached by `cache_type`; `require_service_account`: the kubelet runs
    /// the plugin only for pods with a ServiceAccount (with `false` also for the others, without a token).
    pub fn new(audience: &str, cache_type: TokenCacheType, require_service_account: bool) -> Self {
        Self {
            service_account_token_audience: audience.to_string(),
            cache_type,
            require_service_account,
            required_service_account_annotation_keys: Vec::new(),
            optional_service_account_annotation_keys: Vec::new(),
        }
    }

    /// Adds `key` to `requiredServiceAccountAnnotationKeys`: passed to the plugin; a ServiceAccount
    /// without it gets no call at all (the kubelet logs that only at `-v=5`).
    pub fn required_annotation(mut self, key: &str) -> Self {
        self.required_service_account_annotation_keys
            .push(key.to_string());
        self
    }

    /// Adds `key` to `optionalServiceAccountAnnotationKeys`: passed to the plugin when set.
    pub fn optional_annotation(mut self, key: &str) -> Self {
        self.optional_service_account_annotation_keys
            .push(key.to_string());
        self
    }

    /// The audience of the tokens.
    pub fn audience(&self) -> &str {
        &self.service_account_token_audience
    }

    /// The `tokenAttributes` object, every field under its name in `types.go`
    /// (`requireServiceAccount` always written: it is a required `*bool`).
    pub fn config(&self) -> Value {
        let mut attributes = json!({
            "serviceAccountTokenAudience": self.service_account_token_audience,
            "cacheType": self.cache_type.as_str(),
            "requireServiceAccount": self.require_service_account,
        });
        if !self.required_service_account_annotation_keys.is_empty() {
            attributes["requiredServiceAccountAnnotationKeys"] =
                json!(self.required_service_account_annotation_keys);
        }
        if !self.optional_service_account_annotation_keys.is_empty() {
            attributes["optionalServiceAccountAnnotationKeys"] =
                json!(self.optional_service_account_annotation_keys);
        }
        attributes
    }
}

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
    token_attributes: Option<TokenAttributes>,
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
            token_attributes: None,
        }
    }

    /// `tokenAttributes`: the kubelet's ServiceAccount token mode (see [`TokenAttributes`]).
    pub fn token_attributes(mut self, attributes: TokenAttributes) -> Self {
        self.token_attributes = Some(attributes);
        self
    }

    /// Its `tokenAttributes`, if any.
    pub fn service_account_token_attributes(&self) -> Option<&TokenAttributes> {
        self.token_attributes.as_ref()
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
        let mut provider = json!({
            "name": self.name,
            "matchImages": self.match_images,
            // metav1.Duration: Go's time.ParseDuration syntax.
            "defaultCacheDuration": go_duration(self.default_cache_duration),
            "apiVersion": CREDENTIAL_PROVIDER_API_VERSION,
            "args": self.args,
            "env": env,
        });
        if let Some(attributes) = &self.token_attributes {
            provider["tokenAttributes"] = attributes.config();
        }
        json!({
            "apiVersion": "kubelet.config.k8s.io/v1",
            "kind": "CredentialProviderConfig",
            "providers": [provider],
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

/// The files the kubelet's two credential provider flags name: written by [`install`] for a
/// [`CredentialProvider`], or by someone else on the node (the chart's DaemonSet), handed to
/// [`super::KubeletOptions::credential_provider_files`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CredentialProviderFiles {
    /// `--image-credential-provider-config`: the config file (or, since 1.34, a directory of them).
    pub config: PathBuf,
    /// `--image-credential-provider-bin-dir`.
    pub bin_dir: PathBuf,
}

/// Writes `provider`'s config (`config.json`) and executable (`bin/<name>`) under `dir`, which should
/// not exist yet. The executable is copied, not linked: a rebuild of the binary under test while the
/// kubelet runs cannot change what it executes.
pub(crate) fn install(provider: &CredentialProvider, dir: &Path) -> Result<CredentialProviderFiles> {
    if provider.name.contains(['/', ' ']) || matches!(provider.name.as_str(), "" | "." | "..") {
        bail!("credential provider name {:?} is not a file name", provider.name);
    }
    // What the kubelet would refuse, exiting at start: refused here, naming its rule.
    let problems = crate::manifests::kubelet_config_problems(&provider.config());
    if !problems.is_empty() {
        bail!(
            "the kubelet would refuse the config of credential provider {:?} (and exit at start): {}",
            provider.name,
            problems.join("; ")
        );
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
    Ok(CredentialProviderFiles { config, bin_dir })
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
    fn token_attributes_are_written_under_the_names_of_types_go() {
        let attributes = TokenAttributes::new("quay.example.com", TokenCacheType::ServiceAccount, true)
            .required_annotation("regcreds.dev/quay-robot")
            .optional_annotation("eks.amazonaws.com/role-arn");
        let provider = CredentialProvider::new("regcreds", Path::new("/bin/true"), &["127.0.0.1:5000"])
            .token_attributes(attributes.clone());
        assert_eq!(
            provider.config()["providers"][0]["tokenAttributes"],
            json!({
                "serviceAccountTokenAudience": "quay.example.com",
                "cacheType": "ServiceAccount",
                "requireServiceAccount": true,
                "requiredServiceAccountAnnotationKeys": ["regcreds.dev/quay-robot"],
                "optionalServiceAccountAnnotationKeys": ["eks.amazonaws.com/role-arn"],
            })
        );
        assert_eq!(
            crate::manifests::kubelet_config_problems(&provider.config()),
            Vec::<String>::new()
        );
        // `requireServiceAccount: false` is written too (a required *bool), no empty key lists.
        let minimal = TokenAttributes::new("a", TokenCacheType::Token, false).config();
        assert_eq!(
            minimal,
            json!({ "serviceAccountTokenAudience": "a", "cacheType": "Token", "requireServiceAccount": false })
        );
    }

    #[test]
    fn a_provider_the_kubelet_would_refuse_is_not_installed() {
        // A required annotation key without `requireServiceAccount` (config.go: "requireServiceAccount
        // cannot be false when requiredServiceAccountAnnotationKeys is set"); the rules themselves are
        // tested with `manifests::kubelet_config_problems`.
        let provider = CredentialProvider::new("regcreds", Path::new("/bin/true"), &["127.0.0.1:5000"])
            .token_attributes(
                TokenAttributes::new("a", TokenCacheType::Token, false)
                    .required_annotation("regcreds.dev/quay-robot"),
            );
        let dir = tempfile::tempdir().expect("tempdir");
        let error = install(&provider, &dir.path().join("provider"))
            .expect_err("the kubelet would exit on this config");
        assert!(
            format!("{error:#}").contains("requireServiceAccount cannot be false"),
            "{error:#}"
        );
        assert!(!dir.path().join("provider").exists(), "nothing written");
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
