//! Entra ID access tokens through azure_identity, on regcreds' own HTTP client and time limits.
//!
//! azure_identity caches tokens until shortly before they expire, so one credential is built per
//! provider and asked on every mint. Its retries are trimmed (the managed-identity default alone waits
//! up to 72 s) and every request is bounded by the provider timeout.

use std::{sync::Arc, time::Duration};

use azure_core::{
    cloud::{CloudConfiguration, CustomConfiguration},
    credentials::{Secret, TokenCredential},
    http::{ClientMethodOptions, ClientOptions, ExponentialRetryOptions, RetryOptions, Transport},
};
use azure_identity::{
    ClientAssertion, ClientAssertionCredential, ClientAssertionCredentialOptions, ClientSecretCredential,
    ClientSecretCredentialOptions, ManagedIdentityCredential, ManagedIdentityCredentialOptions,
    UserAssignedId, WorkloadIdentityCredential, WorkloadIdentityCredentialOptions,
};
use regcreds_core::SecretString;
use regcreds_token_endpoint::MintStep;

use crate::{AcrAuth, AcrSettings, Error, PROVIDER_NAME, Result, failure};

/// An Entra credential for one scope.
pub(crate) struct Entra {
    credential: Arc<dyn TokenCredential>,
    scope: String,
    mode: &'static str,
    timeout: Duration,
}

impl std::fmt::Debug for Entra {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Entra")
            .field("mode", &self.mode)
            .field("scope", &self.scope)
            .finish_non_exhaustive()
    }
}

impl Entra {
    /// Builds the credential for `settings.auth`; `None` for static credentials.
    pub(crate) fn new(settings: &AcrSettings, http: &reqwest::Client) -> Result<Option<Self>> {
        let options = client_options(settings, http);
        let mode = settings.auth.mode();
        let identity = |e: azure_core::Error| Error::Identity {
            mode,
            reason: e.to_string(),
        };
        let credential: Arc<dyn TokenCredential> = match &settings.auth {
            AcrAuth::Static { .. } => return Ok(None),
            AcrAuth::ClientSecret {
                tenant_id,
                client_id,
                client_secret,
            } => {
                let options = ClientSecretCredentialOptions {
                    client_options: options,
                };
                let secret = Secret::new(client_secret.expose().to_string());
                ClientSecretCredential::new(
                    tenant_id.trim(),
                    client_id.trim().to_string(),
                    secret,
                    Some(options),
                )
                .map_err(identity)?
            }
            AcrAuth::WorkloadIdentity {
                tenant_id,
                client_id,
                token_file,
            } => {
                let options = WorkloadIdentityCredentialOptions {
                    credential_options: ClientAssertionCredentialOptions {
                        client_options: options,
                    },
                    client_id: client_id.clone(),
                    tenant_id: tenant_id.clone(),
                    token_file_path: token_file.clone(),
                };
                WorkloadIdentityCredential::new(Some(options)).map_err(identity)?
            }
            AcrAuth::ManagedIdentity { client_id } => {
                let options = ManagedIdentityCredentialOptions {
                    user_assigned_id: client_id.clone().map(UserAssignedId::ClientId),
                    client_options: options,
                };
                ManagedIdentityCredential::new(Some(options)).map_err(identity)?
            }
        };
        Ok(Some(Self {
            credential,
            scope: settings.effective_scope(),
            mode,
            timeout: settings.timeout,
        }))
    }

    /// A credential for one pod: its ServiceAccount token as the client assertion of the app registration
    /// `client_id` in `tenant_id` (Entra checks the token against that app's federated credentials).
    pub(crate) fn for_pod(
        settings: &AcrSettings,
        http: &reqwest::Client,
        tenant_id: &str,
        client_id: &str,
        token: SecretString,
    ) -> Result<Self> {
        let options = ClientAssertionCredentialOptions {
            client_options: client_options(settings, http),
        };
        let credential = ClientAssertionCredential::new(
            tenant_id.to_string(),
            client_id.to_string(),
            PodAssertion(token),
            Some(options),
        )
        .map_err(|e| Error::Identity {
            mode: POD_MODE,
            reason: e.to_string(),
        })?;
        Ok(Self {
            credential,
            scope: settings.effective_scope(),
            mode: POD_MODE,
            timeout: settings.timeout,
        })
    }

    /// A current access token (from azure_identity's cache when still fresh).
    pub(crate) async fn token(&self) -> regcreds_core::Result<SecretString> {
        let step = MintStep::new(PROVIDER_NAME, format!("Entra token ({})", self.mode));
        let scopes = [self.scope.as_str()];
        let request = self.credential.get_token(&scopes, None);
        match tokio::time::timeout(self.timeout, request).await {
            Ok(Ok(token)) => Ok(SecretString::new(token.token.secret())),
            Ok(Err(err)) => Err(failure::entra(&err, &step)),
            Err(_) => Err(step.failed(true, &format!("timed out after {:?}", self.timeout))),
        }
    }
}

/// How a pod's credential shows in errors.
const POD_MODE: &str = "the pod's workload identity";

/// The pod's ServiceAccount token, handed to Entra as it is.
struct PodAssertion(SecretString);

impl std::fmt::Debug for PodAssertion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PodAssertion(<redacted>)")
    }
}

#[async_trait::async_trait]
impl ClientAssertion for PodAssertion {
    async fn secret(&self, _: Option<ClientMethodOptions<'_>>) -> azure_core::Result<String> {
        Ok(self.0.expose().to_string())
    }
}

/// Our HTTP client (timeouts, extra CA), few retries, and the authority host override.
fn client_options(settings: &AcrSettings, http: &reqwest::Client) -> ClientOptions {
    let retry = ExponentialRetryOptions {
        max_retries: 2,
        initial_delay: azure_core::time::Duration::milliseconds(200),
        max_delay: azure_core::time::Duration::seconds(2),
        max_total_elapsed: azure_core::time::Duration::try_from(settings.timeout)
            .unwrap_or(azure_core::time::Duration::seconds(30)),
    };
    let mut options = ClientOptions {
        transport: Some(Transport::new(Arc::new(http.clone()))),
        retry: RetryOptions::exponential(retry),
        ..ClientOptions::default()
    };
    if let Some(host) = &settings.authority_host {
        let mut cloud = CustomConfiguration::default();
        cloud.authority_host = host.trim_end_matches('/').to_string();
        options.cloud = Some(Arc::new(CloudConfiguration::from(cloud)));
    }
    options
}
