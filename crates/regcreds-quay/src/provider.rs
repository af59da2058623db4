//! The [`QuayProvider`]: the ServiceAccount token read anew and exchanged on every mint.

use std::path::{Path, PathBuf};

use async_trait::async_trait;
use regcreds_core::{
    Credential, CredentialSet, PodIdentity, Provider, ProviderName, RegistryHost, SecretString,
};

use regcreds_token_endpoint::{MintStep, jwt};

use crate::{Error, PROVIDER_NAME, QuaySettings, Result, exchange::Exchange, settings::validate_robot};

/// Mints Quay robot credentials by federation (provider name `quay`).
#[derive(Debug)]
pub struct QuayProvider {
    secret_name: String,
    registry: RegistryHost,
    robot: String,
    token_file: PathBuf,
    exchange: Exchange,
    robot_annotation: Option<String>,
}

impl QuayProvider {
    /// Validates `settings` and reads the token file once, so a missing mount fails at start-up. Quay
    /// is not contacted here.
    pub async fn new(settings: QuaySettings) -> Result<Self> {
        read_token(&settings.token_file).await?;
        Self::for_pods(settings).await
    }

    /// Like [`QuayProvider::new`] without reading the token file: for the kubelet plugin, whose requests
    /// carry each pod's token ([`Provider::mint_for_pod`]).
    pub async fn for_pods(settings: QuaySettings) -> Result<Self> {
        let valid = settings.validated()?;
        let http = regcreds_token_endpoint::client(settings.ca_file.as_deref(), settings.timeout).await?;
        let robot = settings.robot.trim().to_string();
        Ok(Self {
            secret_name: settings.secret_name.clone(),
            registry: valid.registry,
            exchange: Exchange::new(http, valid.exchange_url, robot.clone()),
            robot,
            token_file: settings.token_file,
            robot_annotation: settings.robot_annotation.filter(|key| !key.trim().is_empty()),
        })
    }

    /// The robot a pod's token is exchanged for: its ServiceAccount's annotation, else the configured one.
    fn robot_for(&self, pod: &PodIdentity) -> regcreds_core::Result<String> {
        let named = self
            .robot_annotation
            .as_ref()
            .and_then(|key| pod.annotations.get(key).map(|robot| (key, robot.trim())));
        match named {
            None => Ok(self.robot.clone()),
            Some((key, robot)) => match validate_robot(robot) {
                Ok(()) => Ok(robot.to_string()),
                Err(error) => Err(regcreds_core::Error::permanent(
                    PROVIDER_NAME,
                    format!("the ServiceAccount's annotation {key}: {error}"),
                )),
            },
        }
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

impl QuayProvider {
    async fn mint_as_pod(&self, pod: &PodIdentity) -> regcreds_core::Result<CredentialSet> {
        let robot = self.robot_for(pod)?;
        let (token, expires_at) = self
            .exchange
            .for_robot(robot.clone())
            .robot_token(&pod.token)
            .await?;
        let credential = Credential::new(self.registry.clone(), robot, token).expiring_at(expires_at);
        Ok(CredentialSet::new().with(credential))
    }
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

    /// The pod's own ServiceAccount token exchanged for its robot's token: Quay, not regcreds, decides
    /// whether that ServiceAccount may pull as that robot.
    async fn mint_for_pod(&self, pod: &PodIdentity) -> Option<regcreds_core::Result<CredentialSet>> {
        Some(self.mint_as_pod(pod).await)
    }
}
