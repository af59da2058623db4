//! The [`QuayProvider`]: the ServiceAccount token read anew and exchanged on every mint.

use std::path::{Path, PathBuf};

use async_trait::async_trait;
use regcreds_core::{Credential, CredentialSet, Provider, ProviderName, RegistryHost, SecretString};

use regcreds_token_endpoint::{MintStep, jwt};

use crate::{Error, PROVIDER_NAME, QuaySettings, Result, exchange::Exchange};

/// Mints Quay robot credentials by federation (provider name `quay`).
#[derive(Debug)]
pub struct QuayProvider {
    secret_name: String,
    registry: RegistryHost,
    robot: String,
    token_file: PathBuf,
    exchange: Exchange,
}

impl QuayProvider {
    /// Validates `settings` and reads the token file once, so a missing mount fails at start-up. Quay
    /// is not contacted here.
    pub async fn new(settings: QuaySettings) -> Result<Self> {
        let valid = settings.validated()?;
        read_token(&settings.token_file).await?;
        let http = regcreds_token_endpoint::client(settings.ca_file.as_deref(), settings.timeout).await?;
        let robot = settings.robot.trim().to_string();
        Ok(Self {
            secret_name: settings.secret_name.clone(),
            registry: valid.registry,
            exchange: Exchange::new(http, valid.exchange_url, robot.clone()),
            robot,
            token_file: settings.token_file,
        })
    }
}

/// The ServiceAccount JWT in `path`, trimmed.
async fn read_token(path: &Path) -> Result<SecretString> {
    let text = regcreds_core::read_bounded_to_string(path)
        .await
        .map_err(|source| Error::UnreadableTokenFile { source })?;
    let token = text.trim();
    if token.is_empty() {
        return Err(Error::EmptyTokenFile(path.to_path_buf()));
    }
    if !jwt::looks_like_jwt(token) {
        return Err(Error::TokenNotJwt(path.to_path_buf()));
    }
    Ok(SecretString::new(token))
}

#[async_trait]
impl Provider for QuayProvider {
    fn name(&self) -> ProviderName {
        PROVIDER_NAME
    }

    fn secret_name(&self) -> &str {
        &self.secret_name
    }

    /// The current ServiceAccount token (kubelet rotates the file), exchanged for a robot token.
    async fn mint(&self) -> regcreds_core::Result<CredentialSet> {
        // NB: kubelet swaps the projected file atomically; an unreadable one is still worth a retry,
        // and the last good Secret stays meanwhile.
        let service_account_token = read_token(&self.token_file)
            .await
            .map_err(|e| MintStep::new(PROVIDER_NAME, "ServiceAccount token").failed(true, &e.to_string()))?;
        let (token, expires_at) = self.exchange.robot_token(&service_account_token).await?;
        let credential =
            Credential::new(self.registry.clone(), self.robot.clone(), token).expiring_at(expires_at);
        tracing::debug!(registry = %self.registry, %expires_at, "minted a Quay robot token");
        Ok(CredentialSet::new().with(credential))
    }

    fn describe(&self) -> String {
        format!(
            "{} as robot {} by federation: ServiceAccount token {} (re-read on every mint) exchanged at {}",
            self.registry,
            self.robot,
            self.token_file.display(),
            self.exchange.url()
        )
    }

    fn serves(&self, image: &str) -> Option<bool> {
        Some(regcreds_core::reference::any_covers([&self.registry], image))
    }
}
