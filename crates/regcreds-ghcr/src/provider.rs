//! The [`GhcrProvider`]: one installation token per mint, written for one registry.

use std::path::{Path, PathBuf};

use async_trait::async_trait;
use chrono::Utc;
use regcreds_core::{Credential, CredentialSet, Provider, ProviderName, RegistryHost};
use regcreds_token_endpoint::MintStep;

use crate::{
    Error, GhcrSettings, PROVIDER_NAME, PrivateKey, Result, app_jwt,
    installation::{Installation, Narrowing},
    key::AppKey,
};

/// Mints GitHub Container Registry credentials from a GitHub App installation (provider name `ghcr`).
#[derive(Debug)]
pub struct GhcrProvider {
    secret_name: String,
    app_id: String,
    registry: RegistryHost,
    username: String,
    key: KeySource,
    installation: Installation,
    description: String,
}

#[derive(Debug)]
enum KeySource {
    Inline(AppKey),
    File(PathBuf),
}

impl GhcrProvider {
    /// Validates `settings` and the private key (inline, or the file's current content), so a bad key
    /// fails at start-up. GitHub is not contacted here.
    pub async fn new(settings: GhcrSettings) -> Result<Self> {
        let valid = settings.validated()?;
        let key = match &settings.private_key {
            PrivateKey::Pem(pem) => {
                KeySource::Inline(AppKey::from_pem(pem.expose()).map_err(|source| Error::Key {
                    origin: "inline".into(),
                    source,
                })?)
            }
            PrivateKey::File(path) => {
                read_key(path).await?;
                KeySource::File(path.clone())
            }
        };
        let narrowing = Narrowing {
            repositories: settings
                .repositories
                .iter()
                .map(|r| r.trim().to_string())
                .collect(),
            repository_ids: valid.repository_ids.clone(),
            permissions: settings.permissions.clone(),
        };
        let http = regcreds_token_endpoint::client(settings.ca_file.as_deref(), settings.timeout).await?;
        let installation =
            Installation::new(http, &valid.api_url, valid.installation_id, narrowing.into_body());
        let description = describe(&settings, &valid.registry, &key, installation.url());
        Ok(Self {
            secret_name: settings.secret_name.clone(),
            app_id: settings.app_id.trim().to_string(),
            registry: valid.registry,
            username: settings.username.trim().to_string(),
            key,
            installation,
            description,
        })
    }

    async fn app_jwt(&self) -> regcreds_core::Result<regcreds_core::SecretString> {
        let file_key;
        let key = match &self.key {
            KeySource::Inline(key) => key,
            KeySource::File(path) => {
                // NB: a mounted Secret is swapped atomically, but a hand-edited file may be caught
                // half-written: an unreadable key is worth retrying, and the last good Secret stays.
                file_key = read_key(path).await.map_err(|e| {
                    MintStep::new(PROVIDER_NAME, "private key file").failed(true, &e.to_string())
                })?;
                &file_key
            }
        };
        app_jwt::signed(key, &self.app_id, Utc::now()).ok_or_else(|| {
            MintStep::new(PROVIDER_NAME, "app JWT").failed(false, "cannot sign with the private key")
        })
    }
}

async fn read_key(path: &Path) -> Result<AppKey> {
    let pem = regcreds_core::read_bounded_to_string(path)
        .await
        .map_err(|source| Error::UnreadableKeyFile { source })?;
    AppKey::from_pem(&pem).map_err(|source| Error::Key {
        origin: path.display().to_string(),
        source,
    })
}

fn describe(settings: &GhcrSettings, registry: &RegistryHost, key: &KeySource, url: &str) -> String {
    let key = match key {
        KeySource::Inline(_) => "inline key".to_string(),
        KeySource::File(path) => format!("key file {} (re-read on every mint)", path.display()),
    };
    let permissions = match &settings.permissions {
        None => "all the App's permissions".to_string(),
        Some(p) => p
            .iter()
            .map(|(n, l)| format!("{n}:{l}"))
            .collect::<Vec<_>>()
            .join(","),
    };
    let repositories = settings.repositories.len() + settings.repository_ids.len();
    let scope = if repositories == 0 {
        "every repository of the installation".to_string()
    } else {
        format!("{repositories} repositories")
    };
    format!(
        "{registry} as {} from GitHub App {} ({key}) via {url}; token narrowed to {permissions} on {scope}",
        settings.username.trim(),
        settings.app_id.trim()
    )
}

#[async_trait]
impl Provider for GhcrProvider {
    fn name(&self) -> ProviderName {
        PROVIDER_NAME
    }

    fn secret_name(&self) -> &str {
        &self.secret_name
    }

    /// A fresh app JWT, exchanged for an installation token; `expires_at` of the reply is the expiry.
    async fn mint(&self) -> regcreds_core::Result<CredentialSet> {
        let jwt = self.app_jwt().await?;
        let (token, expires_at) = self.installation.token(&jwt).await?;
        let credential =
            Credential::new(self.registry.clone(), self.username.clone(), token).expiring_at(expires_at);
        tracing::debug!(registry = %self.registry, %expires_at, "minted a GitHub App installation token");
        Ok(CredentialSet::new().with(credential))
    }

    fn describe(&self) -> String {
        self.description.clone()
    }

    fn serves(&self, image: &str) -> Option<bool> {
        Some(regcreds_core::reference::any_covers([&self.registry], image))
    }
}
