//! Settings of the `ghcr` provider (GitHub Container Registry): a GitHub App's installation token as the
//! password of `x-access-token`, refreshed before its `expires_at` (about an hour). A personal access
//! token needs no provider of its own: it is a static credential (`REGCREDS_STATIC_*`, see
//! config/ghcr.env).

use std::{collections::BTreeMap, path::PathBuf, sync::Arc};

use async_trait::async_trait;
use clap::Args;
use regcreds_core::{RegistryHost, SecretString};
use regcreds_settings::{
    ConfigProblems, ConfiguredProvider, Enablement, ProbeRequirement, ProviderConfig, Schedule, SecretName,
    Source, first_set, given, non_blank, split_list, timeout_seconds,
};

use crate::{
    DEFAULT_API_URL, DEFAULT_REGISTRY, DEFAULT_SECRET, Error, GhcrProvider, GhcrSettings, PrivateKey,
    TOKEN_USER,
};

const APP_ID: Source = Source::new("REGCREDS_GHCR_APP_ID", "ghcr-app-id");
const INSTALLATION_ID: Source = Source::new("REGCREDS_GHCR_INSTALLATION_ID", "ghcr-installation-id");
const PRIVATE_KEY: Source = Source::new("REGCREDS_GHCR_PRIVATE_KEY", "ghcr-private-key");
const PRIVATE_KEY_FILE: Source = Source::new("REGCREDS_GHCR_PRIVATE_KEY_FILE", "ghcr-private-key-file");
const API_URL: Source = Source::new("REGCREDS_GHCR_API_URL", "ghcr-api-url");
const REGISTRY: Source = Source::new("REGCREDS_GHCR_REGISTRY", "ghcr-registry");
const USERNAME: Source = Source::new("REGCREDS_GHCR_USERNAME", "ghcr-username");
const REPOSITORIES: Source = Source::new("REGCREDS_GHCR_REPOSITORIES", "ghcr-repositories");
const REPOSITORY_IDS: Source = Source::new("REGCREDS_GHCR_REPOSITORY_IDS", "ghcr-repository-ids");
const PERMISSIONS: Source = Source::new("REGCREDS_GHCR_PERMISSIONS", "ghcr-permissions");
const CA_FILE: Source = Source::new("REGCREDS_GHCR_CA_FILE", "ghcr-ca-file");
const SECRET_NAME: Source = Source::new("REGCREDS_GHCR_SECRET_NAME", "ghcr-secret-name");
const SCHEDULE: Source = Source::new("REGCREDS_GHCR_SCHEDULE", "ghcr-schedule");
const TIMEOUT: Source = Source::new("REGCREDS_GHCR_TIMEOUT_SECONDS", "ghcr-timeout-seconds");

/// Why the App provider needs a probe image. GitHub documents a personal access token (classic) for
/// GitHub Packages; users report that ghcr.io accepts an App installation token at login and then
/// denies the pull of a private package (jikig-ai/soleur#6073, akuity/kargo#2391).
const APP_TOKENS_MAY_NOT_PULL: &str = "ghcr.io accepts GitHub App installation tokens at login but users report \
     it denies pulls of private packages with them; with a probe image regcreds proves every token can pull \
     before any namespace receives it (or use a classic personal access token with the static provider, \
     see config/ghcr.env)";

/// `ghcr` provider.
#[derive(Args, Debug, Clone)]
#[command(next_help_heading = "Provider: ghcr (GitHub Container Registry via a GitHub App)")]
pub struct GhcrArgs {
    /// The GitHub App's ID (a number) or client ID (Iv…).
    #[arg(long = "ghcr-app-id", env = "REGCREDS_GHCR_APP_ID")]
    ghcr_app_id: Option<String>,
    /// The App's installation ID on the organization or user owning the packages.
    #[arg(long = "ghcr-installation-id", env = "REGCREDS_GHCR_INSTALLATION_ID")]
    ghcr_installation_id: Option<String>,
    /// The App's private key itself (PEM, PKCS#1 as GitHub issues it, or PKCS#8).
    #[arg(
        long = "ghcr-private-key",
        env = "REGCREDS_GHCR_PRIVATE_KEY",
        hide_env_values = true
    )]
    ghcr_private_key: Option<SecretString>,
    /// The App's private key file (e.g. a mounted Secret), re-read on every mint.
    #[arg(long = "ghcr-private-key-file", env = "REGCREDS_GHCR_PRIVATE_KEY_FILE")]
    ghcr_private_key_file: Option<PathBuf>,
    /// REST API base; GitHub Enterprise Server: https://HOST/api/v3.
    #[arg(long = "ghcr-api-url", env = "REGCREDS_GHCR_API_URL", default_value = DEFAULT_API_URL)]
    ghcr_api_url: String,
    /// Registry host the token is written for; GitHub Enterprise Server: its container registry host.
    #[arg(long = "ghcr-registry", env = "REGCREDS_GHCR_REGISTRY", default_value = DEFAULT_REGISTRY)]
    ghcr_registry: String,
    /// User name written with the token.
    #[arg(long = "ghcr-username", env = "REGCREDS_GHCR_USERNAME", default_value = TOKEN_USER)]
    ghcr_username: String,
    /// Narrow the token to these repositories (names without the owner), comma-separated.
    #[arg(long = "ghcr-repositories", env = "REGCREDS_GHCR_REPOSITORIES")]
    ghcr_repositories: Option<String>,
    /// Narrow the token to these repository IDs, comma-separated.
    #[arg(long = "ghcr-repository-ids", env = "REGCREDS_GHCR_REPOSITORY_IDS")]
    ghcr_repository_ids: Option<String>,
    /// Permissions of the token as name:level pairs, or `all` for everything the App was granted.
    #[arg(
        long = "ghcr-permissions",
        env = "REGCREDS_GHCR_PERMISSIONS",
        default_value = "packages:read"
    )]
    ghcr_permissions: String,
    /// Extra CA certificates (PEM) for the API (GitHub Enterprise Server with a private CA).
    #[arg(long = "ghcr-ca-file", env = "REGCREDS_GHCR_CA_FILE")]
    ghcr_ca_file: Option<PathBuf>,
    /// Name of the Secret written to every namespace.
    #[arg(long = "ghcr-secret-name", env = "REGCREDS_GHCR_SECRET_NAME", default_value = DEFAULT_SECRET)]
    ghcr_secret_name: String,
    /// Refresh schedule (6-field cron); tokens are also refreshed halfway to their expires_at.
    #[arg(
        long = "ghcr-schedule",
        env = "REGCREDS_GHCR_SCHEDULE",
        default_value = "0 */30 * * * *"
    )]
    ghcr_schedule: String,
    /// Upper bound for the token request, in seconds.
    #[arg(
        long = "ghcr-timeout-seconds",
        env = "REGCREDS_GHCR_TIMEOUT_SECONDS",
        default_value_t = 30
    )]
    ghcr_timeout_seconds: u64,
}

#[async_trait]
impl ProviderConfig for GhcrArgs {
    fn name(&self) -> &'static str {
        "ghcr"
    }

    /// Builds the provider if an App ID, installation ID or key is configured.
    async fn build(&self, problems: &mut ConfigProblems) -> Enablement {
        let set = [
            (APP_ID, given(&self.ghcr_app_id)),
            (INSTALLATION_ID, given(&self.ghcr_installation_id)),
            (PRIVATE_KEY_FILE, given(&self.ghcr_private_key_file)),
            (PRIVATE_KEY, given(&self.ghcr_private_key)),
        ];
        let Some(configured_by) = first_set(&set) else {
            return Enablement::Disabled(format!(
                "set {}, {} and {}",
                APP_ID.env, INSTALLATION_ID.env, PRIVATE_KEY_FILE.env
            ));
        };
        let required = |value: Option<String>, source: Source, problems: &mut ConfigProblems| {
            if value.is_none() {
                problems.add(source, "is required when the ghcr provider is configured");
            }
            value
        };
        let app_id = required(non_blank(&self.ghcr_app_id), APP_ID, problems);
        let installation_id = required(non_blank(&self.ghcr_installation_id), INSTALLATION_ID, problems);
        let key = self.private_key(problems);
        let permissions = parse_permissions(&self.ghcr_permissions, problems);
        let schedule = Schedule::parse(&self.ghcr_schedule, SCHEDULE, problems);
        let timeout = timeout_seconds(self.ghcr_timeout_seconds, TIMEOUT, problems);
        let secret_name = SecretName::read(&self.ghcr_secret_name, SECRET_NAME.env, problems);
        let (Some(app_id), Some(installation_id), Some(key), Some(permissions)) =
            (app_id, installation_id, key, permissions)
        else {
            return Enablement::Invalid;
        };
        let (Some(schedule), Some(timeout), Some(secret_name)) = (schedule, timeout, secret_name) else {
            return Enablement::Invalid;
        };
        let mut settings = GhcrSettings::new(app_id, installation_id, key);
        settings.secret_name = secret_name.into();
        settings.api_url = self.ghcr_api_url.clone();
        settings.registry = self.ghcr_registry.clone();
        settings.username = self.ghcr_username.clone();
        settings.repositories = split_list(self.ghcr_repositories.as_deref().unwrap_or_default());
        settings.repository_ids = split_list(self.ghcr_repository_ids.as_deref().unwrap_or_default());
        settings.permissions = permissions;
        settings.ca_file = non_blank(&self.ghcr_ca_file);
        settings.timeout = timeout;
        match GhcrProvider::new(settings).await {
            Ok(provider) => {
                let configured =
                    ConfiguredProvider::new(Arc::new(provider), schedule, format!("{configured_by} is set"));
                Enablement::Enabled(match RegistryHost::parse(&self.ghcr_registry) {
                    Ok(registry) => configured.requiring_probe(ProbeRequirement {
                        registry,
                        why: APP_TOKENS_MAY_NOT_PULL,
                    }),
                    Err(_) => configured, // NB: GhcrProvider::new has already refused such a host.
                })
            }
            Err(error) => {
                problems.add(self.blame(&error), error);
                Enablement::Invalid
            }
        }
    }
}

impl GhcrArgs {
    /// Exactly one of the inline key and the key file.
    fn private_key(&self, problems: &mut ConfigProblems) -> Option<PrivateKey> {
        match (
            non_blank(&self.ghcr_private_key),
            non_blank(&self.ghcr_private_key_file),
        ) {
            (Some(pem), None) => Some(PrivateKey::Pem(pem)),
            (None, Some(path)) => Some(PrivateKey::File(path)),
            (None, None) => {
                problems.add(
                    PRIVATE_KEY_FILE,
                    format!(
                        "is required (or {}) when the ghcr provider is configured",
                        PRIVATE_KEY.env
                    ),
                );
                None
            }
            (Some(_), Some(_)) => {
                problems.add(
                    PRIVATE_KEY_FILE,
                    format!("set only one of {} and {}", PRIVATE_KEY.env, PRIVATE_KEY_FILE.env),
                );
                None
            }
        }
    }

    /// The variable a provider error is about.
    fn blame(&self, error: &Error) -> Source {
        match error {
            Error::InvalidAppId(_) => APP_ID,
            Error::InvalidInstallationId(_) => INSTALLATION_ID,
            Error::UnreadableKeyFile { .. } => PRIVATE_KEY_FILE,
            Error::Key { .. } if given(&self.ghcr_private_key) => PRIVATE_KEY,
            Error::Key { .. } => PRIVATE_KEY_FILE,
            Error::InvalidRegistry { .. } => REGISTRY,
            Error::InvalidApiUrl(_) => API_URL,
            Error::InvalidRepository { .. } | Error::TooManyRepositories(_) => REPOSITORIES,
            Error::InvalidRepositoryId(_) => REPOSITORY_IDS,
            Error::InvalidPermission(_) => PERMISSIONS,
            Error::InvalidUsername => USERNAME,
            Error::HttpClient(_) => CA_FILE,
        }
    }
}

/// `packages:read,contents:read` → a map; `all` → no narrowing.
fn parse_permissions(value: &str, problems: &mut ConfigProblems) -> Option<Option<BTreeMap<String, String>>> {
    let value = value.trim();
    if value.eq_ignore_ascii_case("all") {
        return Some(None);
    }
    let mut permissions = BTreeMap::new();
    for entry in split_list(value) {
        let Some((name, level)) = entry.split_once(':') else {
            problems.add(
                PERMISSIONS,
                format!("{entry:?} is not name:level (e.g. packages:read), and not `all`"),
            );
            return None;
        };
        permissions.insert(name.trim().to_string(), level.trim().to_string());
    }
    if permissions.is_empty() {
        problems.add(PERMISSIONS, "is empty; give e.g. packages:read, or `all`");
        return None;
    }
    Some(Some(permissions))
}
