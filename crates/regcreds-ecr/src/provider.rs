//! The [`EcrProvider`]: building the SDK clients once, minting from all of them on every call.

use std::time::Duration;

use async_trait::async_trait;
use aws_config::{
    BehaviorVersion, Region, SdkConfig, retry::RetryConfig, sts::AssumeRoleProvider, timeout::TimeoutConfig,
};
use aws_credential_types::provider::SharedCredentialsProvider;
use regcreds_core::{CredentialSet, PodIdentity, Provider, ProviderName};

use crate::{
    AssumeRole, EcrSettings, PROVIDER_NAME, PUBLIC_REGION, Result, http_client, pod, private::RegionalClient,
    public::PublicClient,
};

/// `RoleSessionName` when none is configured.
const DEFAULT_SESSION_NAME: &str = "regcreds";
/// Attempts per call, counting the first. The binary retries failed mints with its own backoff, so the
/// SDK only needs to absorb a blip, not wait out an outage.
const MAX_ATTEMPTS: u32 = 3;

/// Mints ECR (and optionally ECR Public) credentials (provider name `ecr`).
#[derive(Debug, Clone)]
pub struct EcrProvider {
    settings: EcrSettings,
    regional: Vec<RegionalClient>,
    public: Option<PublicClient>,
    /// The SDK configuration before any configured role: pods assume their own from it.
    base: SdkConfig,
}

impl EcrProvider {
    /// Validates `settings` and builds clients on aws-config's standard credential chain (environment
    /// keys, web identity / IRSA, EKS Pod Identity, profiles, instance metadata). No AWS call is made
    /// here: credentials are resolved on the first mint.
    pub async fn new(settings: EcrSettings) -> Result<Self> {
        let settings = settings.validated()?;
        // NB: an explicit region skips the region chain, whose last step asks instance metadata and can
        // stall start-up off EC2; every client sets its own region anyway.
        let base = aws_config::defaults(BehaviorVersion::latest())
            .region(Region::new(home_region(&settings).to_string()))
            .retry_config(retry_config())
            .timeout_config(timeout_config(settings.timeout))
            .http_client(http_client::lazy_tls_client())
            .load()
            .await;
        Ok(Self::build(settings, &base).await)
    }

    /// Like [`EcrProvider::new`] on a caller-supplied base configuration (credentials, endpoint, HTTP
    /// client); for embedding and tests. Region, retries and timeouts are still set per client.
    pub async fn with_sdk_config(settings: EcrSettings, base: &SdkConfig) -> Result<Self> {
        let settings = settings.validated()?;
        Ok(Self::build(settings, base).await)
    }

    async fn build(settings: EcrSettings, base: &SdkConfig) -> Self {
        let signing = match &settings.assume_role {
            Some(role) => with_assumed_role(base, role, home_region(&settings)).await,
            None => base.clone(),
        };
        let (regional, public) = clients(&signing, &settings);
        Self {
            settings,
            regional,
            public,
            base: base.clone(),
        }
    }
}

/// One client per region, and ECR Public's if configured, all signing with `config`'s credentials.
fn clients(config: &SdkConfig, settings: &EcrSettings) -> (Vec<RegionalClient>, Option<PublicClient>) {
    let regional = settings
        .regions
        .iter()
        .map(|region| regional_client(config, settings, region))
        .collect();
    let public = settings.public.then(|| public_client(config, settings));
    (regional, public)
}

/// Every region's token (and ECR Public's), minted at once; one failure fails the mint.
async fn mint_with(
    regional: &[RegionalClient],
    public: Option<&PublicClient>,
) -> regcreds_core::Result<CredentialSet> {
    let private = futures::future::try_join_all(regional.iter().map(RegionalClient::mint));
    let public = async {
        match public {
            Some(public) => public.mint().await.map(Some),
            None => Ok(None),
        }
    };
    let (private, public) = futures::try_join!(private, public)?;
    Ok(private.into_iter().flatten().chain(public).collect())
}

/// The region for STS and the base configuration: the first ECR region, else ECR Public's.
fn home_region(settings: &EcrSettings) -> &str {
    settings.regions.first().map_or(PUBLIC_REGION, String::as_str)
}

/// The base configuration with its credentials replaced by the assumed role's, which STS issues on
/// first use and renews before they expire.
async fn with_assumed_role(base: &SdkConfig, role: &AssumeRole, region: &str) -> SdkConfig {
    let mut builder = AssumeRoleProvider::builder(role.role_arn.trim())
        .session_name(role.session_name.as_deref().unwrap_or(DEFAULT_SESSION_NAME))
        .region(Region::new(region.to_string()))
        .configure(base);
    if let Some(external_id) = &role.external_id {
        builder = builder.external_id(external_id);
    }
    let provider = builder.build().await;
    base.to_builder()
        .credentials_provider(SharedCredentialsProvider::new(provider))
        .build()
}

fn regional_client(base: &SdkConfig, settings: &EcrSettings, region: &str) -> RegionalClient {
    let mut config = aws_sdk_ecr::config::Builder::from(base)
        .region(Region::new(region.to_string()))
        .retry_config(retry_config())
        .timeout_config(timeout_config(settings.timeout));
    if let Some(url) = &settings.endpoint_url {
        config = config.endpoint_url(url);
    }
    RegionalClient {
        region: region.to_string(),
        client: aws_sdk_ecr::Client::from_conf(config.build()),
        registry_ids: settings.registry_ids.clone(),
        endpoint_url: settings.endpoint_url.clone(),
    }
}

fn public_client(base: &SdkConfig, settings: &EcrSettings) -> PublicClient {
    let mut config = aws_sdk_ecrpublic::config::Builder::from(base)
        .region(Region::new(PUBLIC_REGION))
        .retry_config(retry_config())
        .timeout_config(timeout_config(settings.timeout));
    if let Some(url) = &settings.public_endpoint_url {
        config = config.endpoint_url(url);
    }
    PublicClient {
        client: aws_sdk_ecrpublic::Client::from_conf(config.build()),
        endpoint_url: settings.public_endpoint_url.clone(),
    }
}

fn retry_config() -> RetryConfig {
    RetryConfig::standard()
        .with_max_attempts(MAX_ATTEMPTS)
        .with_initial_backoff(Duration::from_millis(200))
        .with_max_backoff(Duration::from_secs(2))
}

/// `timeout` bounds the whole call including retries; each attempt gets a third of it.
fn timeout_config(timeout: Duration) -> TimeoutConfig {
    TimeoutConfig::builder()
        .connect_timeout(timeout.min(Duration::from_secs(5)))
        .operation_attempt_timeout(timeout / MAX_ATTEMPTS)
        .operation_timeout(timeout)
        .build()
}

#[async_trait]
impl Provider for EcrProvider {
    fn name(&self) -> ProviderName {
        PROVIDER_NAME
    }

    fn secret_name(&self) -> &str {
        &self.settings.secret_name
    }

    /// All regions (and ECR Public) concurrently; the first failure fails the whole mint.
    async fn mint(&self) -> regcreds_core::Result<CredentialSet> {
        let set = mint_with(&self.regional, self.public.as_ref()).await?;
        tracing::debug!(registries = ?set.registries(), expires_at = ?set.expires_at(), "minted ECR credentials");
        Ok(set)
    }

    fn describe(&self) -> String {
        describe(&self.settings)
    }

    /// Private registries are `<account>.dkr.ecr.<region>.amazonaws.com` (`.amazonaws.com.cn` in China),
    /// ECR Public is `public.ecr.aws`. With an endpoint override (VPC endpoints, tests against a local
    /// stand-in) the registry host comes from the reply's proxyEndpoint alone: only a mint can tell.
    fn serves(&self, image: &str) -> Option<bool> {
        if self.settings.endpoint_url.is_some() || self.settings.public_endpoint_url.is_some() {
            return None;
        }
        let host = regcreds_core::reference::split_registry(image).map(|(host, _)| host.to_ascii_lowercase());
        let Some(host) = host else {
            return Some(false);
        };
        let private = self.settings.regions.iter().any(|region| {
            [".amazonaws.com", ".amazonaws.com.cn"].iter().any(|domain| {
                host.strip_suffix(&format!(".dkr.ecr.{region}{domain}"))
                    .is_some_and(|account| self.serves_account(account))
            })
        });
        Some(private || (self.settings.public && host == crate::PUBLIC_REGISTRY))
    }

    /// The pod's own role (its ServiceAccount's annotation), assumed with its token; never the role or
    /// credentials regcreds itself is configured with.
    async fn mint_for_pod(&self, pod: &PodIdentity) -> Option<regcreds_core::Result<CredentialSet>> {
        Some(self.mint_as_pod(pod).await)
    }
}

impl EcrProvider {
    /// A 12-digit account: one of the configured ones, or any when none is configured (the caller's own,
    /// whichever that is).
    fn serves_account(&self, account: &str) -> bool {
        let listed = &self.settings.registry_ids;
        account.len() == 12
            && account.chars().all(|c| c.is_ascii_digit())
            && (listed.is_empty() || listed.iter().any(|id| id == account))
    }

    async fn mint_as_pod(&self, pod: &PodIdentity) -> regcreds_core::Result<CredentialSet> {
        let role = pod::role_of(pod, &self.settings.role_annotation)?;
        let (config, session_end) = pod::assume(&self.base, &role, pod).await?;
        let (regional, public) = clients(&config, &self.settings);
        let minted = mint_with(&regional, public.as_ref()).await?;
        Ok(pod::bounded_by(minted, session_end))
    }
}

fn describe(settings: &EcrSettings) -> String {
    let mut parts = Vec::new();
    if !settings.regions.is_empty() {
        parts.push(format!("ECR in {}", settings.regions.join(", ")));
    }
    if !settings.registry_ids.is_empty() {
        parts.push(format!("registry IDs {}", settings.registry_ids.join(", ")));
    }
    if settings.public {
        parts.push(format!("ECR Public ({})", crate::PUBLIC_REGISTRY));
    }
    if let Some(role) = &settings.assume_role {
        parts.push(format!("assuming {}", role.role_arn.trim()));
    }
    if let Some(url) = &settings.endpoint_url {
        parts.push(format!("endpoint {url}"));
    }
    if let Some(url) = &settings.public_endpoint_url {
        parts.push(format!("public endpoint {url}"));
    }
    parts.join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn describe_lists_regions_accounts_public_and_role() {
        let settings = EcrSettings {
            regions: vec!["eu-west-1".into(), "us-east-1".into()],
            registry_ids: vec!["111111111111".into()],
            public: true,
            assume_role: Some(AssumeRole::new("arn:aws:iam::123456789012:role/r")),
            ..EcrSettings::default()
        };
        assert_eq!(
            describe(&settings),
            "ECR in eu-west-1, us-east-1; registry IDs 111111111111; ECR Public (public.ecr.aws); \
             assuming arn:aws:iam::123456789012:role/r"
        );
    }

    #[test]
    fn sdk_retries_stay_well_inside_the_timeout() {
        let timeouts = timeout_config(Duration::from_secs(30));
        assert_eq!(timeouts.operation_timeout(), Some(Duration::from_secs(30)));
        assert_eq!(
            timeouts.operation_attempt_timeout(),
            Some(Duration::from_secs(10))
        );
        assert_eq!(retry_config().max_attempts(), 3);
    }
}
