//! The [`GcrProvider`]: one access token per mint, written for every configured registry.

use std::path::PathBuf;

use async_trait::async_trait;
use chrono::Utc;
use regcreds_core::{
    Credential, CredentialSet, PodIdentity, Provider, ProviderName, RegistryHost, SecretString,
};
use regcreds_token_endpoint::MintStep;

use crate::{
    Error, GcrCredentials, GcrSettings, PROVIDER_NAME, Result, TOKEN_USER, assertion,
    federation::{DEFAULT_IAM_CREDENTIALS_URL, DEFAULT_STS_URL, Federation},
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
    /// Pods' own identities (the kubelet plugin's ServiceAccount token mode), when configured.
    federation: Option<Federation>,
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
            federation: federation(&settings)?,
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

/// The pool provider and endpoints pods' tokens are federated with, checked like the metadata URL.
fn federation(settings: &GcrSettings) -> Result<Option<Federation>> {
    let Some(audience) = settings
        .workload_identity_provider
        .as_deref()
        .map(str::trim)
        .filter(|a| !a.is_empty())
    else {
        return Ok(None);
    };
    let url = |configured: &Option<String>, default: &str| -> Result<String> {
        let url = configured
            .as_deref()
            .map(str::trim)
            .filter(|u| !u.is_empty())
            .unwrap_or(default);
        match regcreds_core::is_http_url(url) {
            true => Ok(url.to_string()),
            false => Err(Error::InvalidMetadataUrl(url.to_string())),
        }
    };
    Ok(Some(Federation {
        audience: audience.to_string(),
        sts_url: url(&settings.sts_url, DEFAULT_STS_URL)?,
        iam_credentials_url: url(&settings.iam_credentials_url, DEFAULT_IAM_CREDENTIALS_URL)?,
    }))
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

impl GcrProvider {
    fn for_every_registry(&self, AccessToken { token, expires_at }: AccessToken) -> CredentialSet {
        self.registries
            .iter()
            .map(|registry| {
                Credential::new(registry.clone(), TOKEN_USER, token.clone()).expiring_at(expires_at)
            })
            .collect()
    }
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
        let set = self.for_every_registry(self.access_token().await?);
        tracing::debug!(registries = ?set.registries(), expires_at = ?set.expires_at(), "minted GCR credentials");
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

    /// With a workload identity pool provider: the pod's own federated identity (and the Google service
    /// account its ServiceAccount names); Google's STS and IAM decide.
    async fn mint_for_pod(&self, pod: &PodIdentity) -> Option<regcreds_core::Result<CredentialSet>> {
        let federation = self.federation.as_ref()?;
        Some(
            federation
                .token(&self.http, &self.scopes, pod)
                .await
                .map(|token| self.for_every_registry(token)),
        )
    }

    fn serves(&self, image: &str) -> Option<bool> {
        Some(regcreds_core::reference::any_covers(&self.registries, image))
    }
}
