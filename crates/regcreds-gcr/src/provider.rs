//! The [`GcrProvider`]: one access token per mint, written for every configured registry.

use std::path::PathBuf;

use async_trait::async_trait;
use chrono::Utc;
use regcreds_core::{Credential, CredentialSet, Provider, ProviderName, RegistryHost, SecretString};
use regcreds_token_endpoint::MintStep;

use crate::{
    Error, GcrCredentials, GcrSettings, PROVIDER_NAME, Result, TOKEN_USER, assertion,
    key::{self, ServiceAccountKey},
    metadata,
    token::{self, AccessToken},
};

/// Mints GCR / Artifact Registry credentials (provider name `gcr`).
#[derive(Debug)]
pub struct GcrProvider {
    secret_name: String,
    registries: Vec<RegistryHost>,
    scopes: Vec<String>,
    source: Source,
    http: reqwest::Client,
}

#[derive(Debug)]
enum Source {
    Inline(Box<ServiceAccountKey>),
    File(PathBuf),
    Metadata(String),
}

impl GcrProvider {
    /// Validates `settings` and the key (inline, or the file's current content), so a bad key fails at
    /// start-up. The metadata server is not contacted here.
    pub async fn new(settings: GcrSettings) -> Result<Self> {
        let registries = settings.validated_registries()?;
        let source = match settings.credentials.clone() {
            GcrCredentials::KeyJson(json) => Source::Inline(Box::new(parse_inline(&json)?)),
            GcrCredentials::KeyFile(path) => file_source(path).await?,
            GcrCredentials::Metadata => {
                Source::Metadata(metadata::base_url(settings.metadata_url.as_deref()))
            }
            GcrCredentials::ApplicationDefault => match std::env::var_os("GOOGLE_APPLICATION_CREDENTIALS") {
                Some(path) if !path.is_empty() => file_source(PathBuf::from(path)).await?,
                _ => Source::Metadata(metadata::base_url(settings.metadata_url.as_deref())),
            },
        };
        Ok(Self {
            secret_name: settings.secret_name.clone(),
            registries,
            scopes: settings.scopes(),
            source,
            http: regcreds_token_endpoint::client(None, settings.timeout).await?,
        })
    }

    async fn access_token(&self) -> regcreds_core::Result<AccessToken> {
        match &self.source {
            Source::Inline(key) => self.key_token(key).await,
            Source::File(path) => {
                // NB: a mounted Secret is replaced atomically, but a hand-edited file may be caught
                // half-written: an unreadable or invalid key is worth retrying.
                let key = read_key(path)
                    .await
                    .map_err(|e| MintStep::new(PROVIDER_NAME, "key file").failed(true, &e.to_string()))?;
                self.key_token(&key).await
            }
            Source::Metadata(base) => metadata::token(&self.http, base, &self.scopes).await,
        }
    }

    /// RFC 7523: a signed assertion for `scopes` exchanged at the key's `token_uri`.
    async fn key_token(&self, key: &ServiceAccountKey) -> regcreds_core::Result<AccessToken> {
        let step = MintStep::new(PROVIDER_NAME, format!("token endpoint {}", key.token_uri));
        let Some(assertion) = assertion::signed(key, &self.scopes, Utc::now()) else {
            return Err(step.failed(false, "cannot sign the assertion with the key"));
        };
        let form = [
            ("grant_type", "urn:ietf:params:oauth:grant-type:jwt-bearer"),
            ("assertion", &assertion),
        ];
        token::fetch(self.http.post(&key.token_uri).form(&form), &assertion, &step).await
    }
}

fn parse_inline(json: &SecretString) -> Result<ServiceAccountKey> {
    key::parse(json.expose()).map_err(|source| Error::Key {
        origin: "inline".into(),
        source,
    })
}

async fn file_source(path: PathBuf) -> Result<Source> {
    read_key(&path).await?;
    Ok(Source::File(path))
}

async fn read_key(path: &std::path::Path) -> Result<ServiceAccountKey> {
    let json = regcreds_core::read_bounded_to_string(path)
        .await
        .map_err(|source| Error::UnreadableKeyFile { source })?;
    key::parse(&json).map_err(|source| Error::Key {
        origin: path.display().to_string(),
        source,
    })
}

#[async_trait]
impl Provider for GcrProvider {
    fn name(&self) -> ProviderName {
        PROVIDER_NAME
    }

    fn secret_name(&self) -> &str {
        &self.secret_name
    }

    /// One token, the same credential under every registry key.
    async fn mint(&self) -> regcreds_core::Result<CredentialSet> {
        let AccessToken { token, expires_at } = self.access_token().await?;
        let set: CredentialSet = self
            .registries
            .iter()
            .map(|registry| {
                Credential::new(registry.clone(), TOKEN_USER, token.clone()).expiring_at(expires_at)
            })
            .collect();
        tracing::debug!(registries = ?set.registries(), %expires_at, "minted GCR credentials");
        Ok(set)
    }

    fn describe(&self) -> String {
        let registries: Vec<String> = self.registries.iter().map(ToString::to_string).collect();
        let source = match &self.source {
            Source::Inline(key) => format!("inline key of {}", key.client_email),
            Source::File(path) => format!("key file {} (re-read on every mint)", path.display()),
            Source::Metadata(base) => format!("metadata server {base}"),
        };
        format!("{} from {source}", registries.join(", "))
    }

    fn serves(&self, image: &str) -> Option<bool> {
        Some(regcreds_core::reference::any_covers(&self.registries, image))
    }
}
