//! Docker Hub credentials: a Docker ID with a password or a personal access token (`dckr_pat_…`).
//!
//! The entry is keyed `https://index.docker.io/v1/`, the key docker CLI writes; kubelet strips the scheme
//! and `/v1/` and matches it for images with no registry, `docker.io/…` and `index.docker.io/…`.
//! No cloud plugin exists for Docker Hub, so pull Secrets are the only way to lift its anonymous rate limit.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

#[cfg(feature = "cli")]
mod args;

#[cfg(feature = "cli")]
pub use args::DockerHubArgs;
use async_trait::async_trait;
use regcreds_core::{Credential, CredentialSet, Provider, ProviderName, RegistryHost, SecretString};

/// The `auths` key Docker Hub credentials are written under.
pub const DOCKER_HUB_REGISTRY: &str = "https://index.docker.io/v1/";
/// Default Secret name.
pub const DEFAULT_SECRET: &str = "dockerhub-secret";

/// What is wrong with Docker Hub settings. Never contains the password.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The Docker ID is empty.
    #[error("user (Docker ID) is empty")]
    EmptyUser,
    /// The Docker ID has characters Docker IDs never have (`:` would also break `auth`).
    #[error("user (Docker ID) must not contain ':', '@' or whitespace")]
    InvalidUser,
    /// The password or token is empty.
    #[error("password or access token is empty")]
    EmptyPassword,
}

/// Provides one Docker Hub credential (provider name `dockerhub`).
#[derive(Debug, Clone)]
pub struct DockerHubProvider {
    secret_name: String,
    credential: Credential,
}

impl DockerHubProvider {
    /// Validates the Docker ID and password/token.
    pub fn new(secret_name: impl Into<String>, user: &str, password: SecretString) -> Result<Self, Error> {
        if user.trim().is_empty() {
            return Err(Error::EmptyUser);
        }
        if user.chars().any(|c| c == ':' || c == '@' || c.is_whitespace()) {
            return Err(Error::InvalidUser);
        }
        if password.is_empty() {
            return Err(Error::EmptyPassword);
        }
        // NB: a constant that parses; the fallback is unreachable but keeps this function panic-free.
        let registry = RegistryHost::parse(DOCKER_HUB_REGISTRY).map_err(|_| Error::EmptyUser)?;
        Ok(Self {
            secret_name: secret_name.into(),
            credential: Credential::new(registry, user, password),
        })
    }

    /// Whether the password looks like a personal access token rather than an account password.
    pub fn uses_access_token(&self) -> bool {
        self.credential.password.expose().starts_with("dckr_pat_")
    }
}

#[async_trait]
impl Provider for DockerHubProvider {
    fn name(&self) -> ProviderName {
        "dockerhub"
    }

    fn secret_name(&self) -> &str {
        &self.secret_name
    }

    async fn mint(&self) -> regcreds_core::Result<CredentialSet> {
        Ok(CredentialSet::new().with(self.credential.clone()))
    }

    fn describe(&self) -> String {
        let kind = if self.uses_access_token() {
            "personal access token"
        } else {
            "password"
        };
        format!("Docker Hub as {} with a {kind}", self.credential.username)
    }

    fn serves(&self, image: &str) -> Option<bool> {
        Some(regcreds_core::reference::any_covers(
            [&self.credential.registry],
            image,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn mints_under_the_docker_hub_key() {
        let provider = DockerHubProvider::new(DEFAULT_SECRET, "alice", "dckr_pat_abc".into()).expect("valid");
        let rendered = String::from_utf8(provider.mint().await.expect("mint").render()).expect("utf8");
        assert!(
            rendered.starts_with(r#"{"auths":{"https://index.docker.io/v1/":{"username":"alice""#),
            "{rendered}"
        );
        assert!(provider.uses_access_token());
        assert!(!provider.describe().contains("dckr_pat_abc"));
    }

    #[test]
    fn rejects_bad_settings() {
        assert!(matches!(
            DockerHubProvider::new("s", "", "pw".into()),
            Err(Error::EmptyUser)
        ));
        assert!(matches!(
            DockerHubProvider::new("s", "a:b", "pw".into()),
            Err(Error::InvalidUser)
        ));
        assert!(matches!(
            DockerHubProvider::new("s", "alice", "".into()),
            Err(Error::EmptyPassword)
        ));
    }
}
