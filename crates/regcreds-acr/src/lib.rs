//! Azure Container Registry credentials.
//!
//! ```text
//!  Entra ID token ─────────────────────┐  client secret, workload identity (federated token file)
//!  (scope: ACR's own audience,         │  or managed identity, via azure_identity
//!   containerregistry.azure.net)       │
//!                                      ▼
//!  POST https://<registry>/oauth2/exchange  grant_type=access_token&service=<registry>&access_token=…
//!                                      │
//!                                      ▼  {"refresh_token":"<JWT>"}
//!  user 00000000-0000-0000-0000-000000000000, password = refresh token, expiry = the JWT's `exp`
//! ```
//!
//! The null-GUID user name tells ACR that the password is a refresh token. Entra tokens and refresh
//! tokens live between 75 minutes and 3 hours, so the expiry is read from the token itself rather than
//! assumed. The exchange is a plain HTTPS call made here (with timeouts); its base URL can be pointed
//! elsewhere independently of the `service` value, which must stay the login server name.
//!
//! [`AcrAuth::Static`] skips both steps: an admin user, a repository-scoped token or a service
//! principal's appId and secret are written as they are — upmc registry-creds' `ACR_URL`,
//! `ACR_CLIENT_ID`, `ACR_PASSWORD`.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

#[cfg(feature = "cli")]
mod args;
mod entra;
mod error;
mod exchange;
mod failure;
mod provider;
mod settings;

#[cfg(feature = "cli")]
pub use args::AcrArgs;
pub use error::{Error, Result};
pub use provider::{AcrProvider, CLIENT_ID_ANNOTATION, TENANT_ID_ANNOTATION};
pub use regcreds_token_endpoint::ClientError;
pub use settings::{AcrAuth, AcrSettings};

/// Provider name, as used in flags, logs and metrics.
pub const PROVIDER_NAME: &str = "acr";
/// Default Secret name, as in upmc registry-creds.
pub const DEFAULT_SECRET: &str = "acr-secret";
/// The user name that marks the password as an ACR refresh token.
pub const REFRESH_TOKEN_USER: &str = "00000000-0000-0000-0000-000000000000";
/// Default Entra scope: ACR's own audience (public cloud). A registry with ARM-audience tokens disabled
/// (`azureADAuthenticationAsArmPolicy`, Azure built-in policy "Container registries should have ARM
/// audience token authentication disabled") accepts only this audience; every registry accepts it.
/// Sources: kubernetes-sigs/cloud-provider-azure `pkg/credentialprovider/azure_credentials.go`
/// (`AcrAudience = "https://containerregistry.azure.net"`, scope `AcrAudience + "/.default"`, what AKS'
/// acr-credential-provider asks for); Microsoft Learn "Configure registry acceptance of Microsoft Entra
/// authentication scopes" (`container-registry/container-registry-disable-authentication-as-arm`).
pub const DEFAULT_SCOPE: &str = "https://containerregistry.azure.net/.default";
/// ACR's audience in Azure China (authority `login.chinacloudapi.cn`). Source:
/// ratify-project/ratify `pkg/common/oras/authprovider/azure/const.go` (`AADResourceChinaCloud`).
pub const CHINA_SCOPE: &str = "https://containerregistry.azure.cn/.default";
/// ACR's audience in Azure US Government (authority `login.microsoftonline.us`). Source: as
/// [`CHINA_SCOPE`] (`AADResourceUSGovernmentCloud`).
pub const US_GOVERNMENT_SCOPE: &str = "https://containerregistry.azure.us/.default";
/// Azure Resource Manager's audience, regcreds' default before (external-secrets' choice, ESO PR #2913):
/// refused by registries with ARM-audience tokens disabled.
pub const ARM_SCOPE: &str = "https://management.azure.com/.default";

/// ACR's audience for the cloud an Entra authority host belongs to: Azure China for
/// `login.chinacloudapi.cn`, US Government for `login.microsoftonline.us`, else the public cloud's.
pub fn default_scope(authority_host: Option<&str>) -> &'static str {
    let host = authority_host.map(|h| {
        let h = h.trim();
        let h = h.split_once("://").map_or(h, |(_, rest)| rest);
        let h = h.split(['/', ':']).next().unwrap_or_default();
        h.trim_end_matches('.').to_ascii_lowercase()
    });
    match host.as_deref() {
        Some("login.chinacloudapi.cn") => CHINA_SCOPE,
        Some("login.microsoftonline.us") => US_GOVERNMENT_SCOPE,
        _ => DEFAULT_SCOPE,
    }
}
