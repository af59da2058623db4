//! The [`AcrProvider`]: static credentials, or an Entra token exchanged at every registry.

use async_trait::async_trait;
use regcreds_core::{Credential, CredentialSet, Provider, ProviderName, RegistryHost};

use crate::{
    AcrAuth, AcrSettings, PROVIDER_NAME, REFRESH_TOKEN_USER, Result,
    entra::Entra,
    exchange::{Audience, Exchange},
};

/// Mints ACR credentials (provider name `acr`).
#[derive(Debug)]
pub struct AcrProvider {
    secret_name: String,
    source: Source,
    description: String,
}

#[derive(Debug)]
enum Source {
    /// Written as configured on every mint.
    Static(CredentialSet),
    /// One Entra token per mint, exchanged at each registry.
    Exchange { entra: Entra, exchanges: Vec<Exchange> },
}

impl AcrProvider {
    /// Validates `settings`, reads the CA file and builds the Entra credential. Nothing is sent yet;
    /// workload identity fails here if its token file or variables are missing.
    pub async fn new(settings: AcrSettings) -> Result<Self> {
        let registries = settings.validated_registries()?;
        let description = describe(&settings, &registries);
        let http = regcreds_token_endpoint::client(settings.ca_file.as_deref(), settings.timeout).await?;
        let source = match Entra::new(&settings, &http)? {
            None => Source::Static(static_credentials(&settings.auth, &registries)),
            Some(entra) => {
                let tenant = exchange_tenant(&settings.auth);
                let base = settings.exchange_base_url.as_deref();
                let audience = Audience {
                    scope: settings.effective_scope(),
                    acr_scope: settings.acr_scope(),
                };
                let exchanges = registries
                    .into_iter()
                    .map(|r| Exchange::new(http.clone(), r, base, tenant.clone(), audience.clone()))
                    .collect();
                Source::Exchange { entra, exchanges }
            }
        };
        Ok(Self {
            secret_name: settings.secret_name,
            source,
            description,
        })
    }
}

fn static_credentials(auth: &AcrAuth, registries: &[RegistryHost]) -> CredentialSet {
    let AcrAuth::Static { username, password } = auth else {
        return CredentialSet::new();
    };
    registries
        .iter()
        .map(|r| Credential::new(r.clone(), username.trim(), password.clone()))
        .collect()
}

/// The `tenant` form field of the exchange, when known: ACR uses it to pick the directory.
fn exchange_tenant(auth: &AcrAuth) -> Option<String> {
    match auth {
        AcrAuth::ClientSecret { tenant_id, .. } => Some(tenant_id.trim().to_string()),
        AcrAuth::WorkloadIdentity { tenant_id, .. } => tenant_id
            .clone()
            .or_else(|| std::env::var("AZURE_TENANT_ID").ok())
            .filter(|t| !t.is_empty()),
        AcrAuth::ManagedIdentity { .. } | AcrAuth::Static { .. } => None,
    }
}

fn describe(settings: &AcrSettings, registries: &[RegistryHost]) -> String {
    let names: Vec<String> = registries.iter().map(ToString::to_string).collect();
    let how = match &settings.auth {
        AcrAuth::Static { username, .. } => format!("static credentials of {}", username.trim()),
        AcrAuth::ClientSecret { client_id, .. } => format!("Entra client secret of {}", client_id.trim()),
        AcrAuth::WorkloadIdentity { .. } => "Entra workload identity".to_string(),
        AcrAuth::ManagedIdentity { client_id: Some(id) } => format!("managed identity {id}"),
        AcrAuth::ManagedIdentity { client_id: None } => "system-assigned managed identity".to_string(),
    };
    let mut description = format!("ACR {} with {how}", names.join(", "));
    if let Some(url) = &settings.exchange_base_url {
        description.push_str(&format!("; exchange at {url}"));
    }
    if let Some(host) = &settings.authority_host {
        description.push_str(&format!("; authority {host}"));
    }
    if !matches!(settings.auth, AcrAuth::Static { .. }) {
        description.push_str(&format!("; Entra scope {}", settings.effective_scope()));
    }
    description
}

#[async_trait]
impl Provider for AcrProvider {
    fn name(&self) -> ProviderName {
        PROVIDER_NAME
    }

    fn secret_name(&self) -> &str {
        &self.secret_name
    }

    /// Static: the configured set. Entra: one token, then every registry's exchange concurrently; any
    /// failure fails the mint, so a Secret never loses a registry.
    async fn mint(&self) -> regcreds_core::Result<CredentialSet> {
        let (entra, exchanges) = match &self.source {
            Source::Static(set) => return Ok(set.clone()),
            Source::Exchange { entra, exchanges } => (entra, exchanges),
        };
        let access_token = entra.token().await?;
        let minted = futures::future::try_join_all(exchanges.iter().map(|exchange| async {
            let (refresh_token, expires_at) = exchange.refresh_token(&access_token).await?;
            Ok::<_, regcreds_core::Error>(
                Credential::new(exchange.service().clone(), REFRESH_TOKEN_USER, refresh_token)
                    .expiring_at(expires_at),
            )
        }))
        .await?;
        let set: CredentialSet = minted.into_iter().collect();
        tracing::debug!(registries = ?set.registries(), expires_at = ?set.expires_at(), "minted ACR credentials");
        Ok(set)
    }

    fn describe(&self) -> String {
        self.description.clone()
    }
}
