//! The [`AcrProvider`]: static credentials, or an Entra token exchanged at every registry.

use async_trait::async_trait;
use regcreds_core::{Credential, CredentialSet, PodIdentity, Provider, ProviderName, RegistryHost};

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
    /// The login servers credentials are minted for.
    registries: Vec<RegistryHost>,
    /// What a pod's own Entra identity needs (Entra modes only; static credentials serve every pod).
    pods: Option<PodExchange>,
}

/// The kubelet plugin's ServiceAccount token mode: the pod's token is the client assertion of the app
/// registration its ServiceAccount names, the way AKS' workload identity webhook reads the same
/// annotations (`azure.workload.identity/client-id`, `…/tenant-id`; Azure/azure-workload-identity).
#[derive(Debug)]
struct PodExchange {
    settings: AcrSettings,
    http: reqwest::Client,
    registries: Vec<RegistryHost>,
}

/// The ServiceAccount annotation naming a pod's app registration (Azure workload identity's own).
pub const CLIENT_ID_ANNOTATION: &str = "azure.workload.identity/client-id";
/// The ServiceAccount annotation naming its tenant, when not the configured one.
pub const TENANT_ID_ANNOTATION: &str = "azure.workload.identity/tenant-id";

#[derive(Debug)]
enum Source {
    /// Written as configured on every mint.
    Static(CredentialSet),
    /// One Entra token per mint, exchanged at each registry.
    Exchange { entra: Entra, exchanges: Vec<Exchange> },
    /// Built for the kubelet's ServiceAccount token mode: only pods' own identities mint.
    PodsOnly,
}

impl AcrProvider {
    /// For the kubelet plugin, whose requests carry each pod's token: the Entra modes mint only with
    /// pods' own identities ([`Provider::mint_for_pod`]), so regcreds' own (a workload identity token
    /// file, a client secret) is neither needed nor used. Static credentials are as [`AcrProvider::new`].
    pub async fn for_pods(settings: AcrSettings) -> Result<Self> {
        if matches!(settings.auth, AcrAuth::Static { .. }) {
            return Self::new(settings).await;
        }
        let registries = settings.validated_registries()?;
        let description = format!(
            "{}; pods' own workload identities",
            describe(&settings, &registries)
        );
        let http = regcreds_token_endpoint::client(settings.ca_file.as_deref(), settings.timeout).await?;
        Ok(Self {
            secret_name: settings.secret_name.clone(),
            source: Source::PodsOnly,
            description,
            registries: registries.clone(),
            pods: Some(PodExchange {
                settings,
                http,
                registries,
            }),
        })
    }

    /// Validates `settings`, reads the CA file and builds the Entra credential. Nothing is sent yet;
    /// workload identity fails here if its token file or variables are missing.
    pub async fn new(settings: AcrSettings) -> Result<Self> {
        let registries = settings.validated_registries()?;
        let description = describe(&settings, &registries);
        let http = regcreds_token_endpoint::client(settings.ca_file.as_deref(), settings.timeout).await?;
        let pods = (!matches!(settings.auth, AcrAuth::Static { .. })).then(|| PodExchange {
            settings: settings.clone(),
            http: http.clone(),
            registries: registries.clone(),
        });
        let all_registries = registries.clone();
        let source = match Entra::new(&settings, &http)? {
            None => Source::Static(static_credentials(&settings.auth, &registries)),
            Some(entra) => {
                let tenant = exchange_tenant(&settings.auth);
                let base = settings.exchange_base_url.as_deref();
                let exchanges = exchanges(&settings, &http, registries, base, tenant);
                Source::Exchange { entra, exchanges }
            }
        };
        Ok(Self {
            secret_name: settings.secret_name,
            source,
            description,
            registries: all_registries,
            pods,
        })
    }
}

/// One exchange per registry, for Entra tokens of `tenant`.
fn exchanges(
    settings: &AcrSettings,
    http: &reqwest::Client,
    registries: Vec<RegistryHost>,
    base: Option<&str>,
    tenant: Option<String>,
) -> Vec<Exchange> {
    let audience = Audience {
        scope: settings.effective_scope(),
        acr_scope: settings.acr_scope(),
    };
    registries
        .into_iter()
        .map(|r| Exchange::new(http.clone(), r, base, tenant.clone(), audience.clone()))
        .collect()
}

/// An Entra access token exchanged at every registry concurrently; any failure fails the mint, so a
/// credential never lacks a registry.
async fn exchange_all(entra: &Entra, exchanges: &[Exchange]) -> regcreds_core::Result<CredentialSet> {
    let access_token = entra.token().await?;
    let minted = futures::future::try_join_all(exchanges.iter().map(|exchange| async {
        let (refresh_token, expires_at) = exchange.refresh_token(&access_token).await?;
        Ok::<_, regcreds_core::Error>(
            Credential::new(exchange.service().clone(), REFRESH_TOKEN_USER, refresh_token)
                .expiring_at(expires_at),
        )
    }))
    .await?;
    Ok(minted.into_iter().collect())
}

impl PodExchange {
    /// The pod's app registration and tenant from its ServiceAccount, its token as the assertion.
    async fn mint(&self, pod: &PodIdentity) -> regcreds_core::Result<CredentialSet> {
        let annotation = |key: &str| {
            pod.annotations
                .get(key)
                .map(|v| v.trim().to_string())
                .filter(|v| !v.is_empty())
        };
        let Some(client_id) = annotation(CLIENT_ID_ANNOTATION) else {
            return Err(regcreds_core::Error::permanent(
                PROVIDER_NAME,
                format!(
                    "the pod's ServiceAccount has no {CLIENT_ID_ANNOTATION} annotation: no identity to pull with"
                ),
            ));
        };
        let Some(tenant) = annotation(TENANT_ID_ANNOTATION).or_else(|| exchange_tenant(&self.settings.auth))
        else {
            return Err(regcreds_core::Error::permanent(
                PROVIDER_NAME,
                format!(
                    "no tenant for the pod: set REGCREDS_ACR_TENANT_ID or the ServiceAccount's {TENANT_ID_ANNOTATION}"
                ),
            ));
        };
        let entra = Entra::for_pod(&self.settings, &self.http, &tenant, &client_id, pod.token.clone())
            .map_err(|e| regcreds_core::Error::permanent(PROVIDER_NAME, e.to_string()))?;
        let base = self.settings.exchange_base_url.as_deref();
        let exchanges = exchanges(
            &self.settings,
            &self.http,
            self.registries.clone(),
            base,
            Some(tenant),
        );
        exchange_all(&entra, &exchanges).await
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
            Source::PodsOnly => {
                return Err(regcreds_core::Error::permanent(
                    PROVIDER_NAME,
                    "built for the kubelet's ServiceAccount token mode: a request without a pod's token has \
                     no identity to pull with",
                ));
            }
        };
        let set = exchange_all(entra, exchanges).await?;
        tracing::debug!(registries = ?set.registries(), expires_at = ?set.expires_at(), "minted ACR credentials");
        Ok(set)
    }

    fn describe(&self) -> String {
        self.description.clone()
    }

    fn serves(&self, image: &str) -> Option<bool> {
        Some(regcreds_core::reference::any_covers(&self.registries, image))
    }

    /// Entra modes: the pod's own app registration (its ServiceAccount's workload identity annotations)
    /// with its token as the assertion; Entra checks its federated credentials. Static: `None`.
    async fn mint_for_pod(&self, pod: &PodIdentity) -> Option<regcreds_core::Result<CredentialSet>> {
        let pods = self.pods.as_ref()?;
        Some(pods.mint(pod).await)
    }
}
