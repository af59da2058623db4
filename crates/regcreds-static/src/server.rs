//! One registry from server, user and password.

use async_trait::async_trait;
use regcreds_core::{Credential, CredentialSet, Provider, ProviderName, RegistryHost, SecretString};

use crate::{Error, Result};

/// Provides one fixed credential for one registry (provider name `static`).
#[derive(Debug, Clone)]
pub struct StaticProvider {
    secret_name: String,
    credential: Credential,
}

impl StaticProvider {
    /// Validates server, user and password; nothing is sent anywhere.
    pub fn new(
        secret_name: impl Into<String>,
        server: &str,
        user: &str,
        password: SecretString,
    ) -> Result<Self> {
        let registry = RegistryHost::parse(server).map_err(Error::Server)?;
        validate_user(user)?;
        if password.is_empty() {
            return Err(Error::EmptyPassword);
        }
        Ok(Self {
            secret_name: secret_name.into(),
            credential: Credential::new(registry, user, password),
        })
    }
}

/// Shared by providers whose user name goes into `auth` as `user:password`.
pub(crate) fn validate_user(user: &str) -> Result<()> {
    if user.trim().is_empty() {
        return Err(Error::EmptyUser);
    }
    if user.contains(':') {
        return Err(Error::ColonInUser);
    }
    Ok(())
}

#[async_trait]
impl Provider for StaticProvider {
    fn name(&self) -> ProviderName {
        "static"
    }

    fn secret_name(&self) -> &str {
        &self.secret_name
    }

    async fn mint(&self) -> regcreds_core::Result<CredentialSet> {
        Ok(CredentialSet::new().with(self.credential.clone()))
    }

    fn describe(&self) -> String {
        format!(
            "registry {} as user {}",
            self.credential.registry, self.credential.username
        )
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
    async fn mints_the_configured_credential() {
        let provider =
            StaticProvider::new("dpr-secret", "registry.example:5000", "bob", "pw".into()).expect("valid");
        let minted = provider.mint().await.expect("mint");
        assert_eq!(minted.registries(), vec!["registry.example:5000".to_string()]);
        assert_eq!(provider.secret_name(), "dpr-secret");
    }

    #[test]
    fn rejects_bad_values_with_specific_errors() {
        let new = |server: &str, user: &str, password: &str| {
            StaticProvider::new("s", server, user, password.into())
        };
        assert!(matches!(new("", "bob", "pw"), Err(Error::Server(_))));
        assert!(matches!(new("r.example", " ", "pw"), Err(Error::EmptyUser)));
        assert!(matches!(new("r.example", "a:b", "pw"), Err(Error::ColonInUser)));
        assert!(matches!(new("r.example", "bob", ""), Err(Error::EmptyPassword)));
    }
}
