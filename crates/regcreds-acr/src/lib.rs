//! Azure Container Registry credentials.
//!
//! ```text
//!  Entra ID token ─────────────────────┐  client secret, workload identity (federated token file)
//!  (scope management.azure.com)        │  or managed identity, via azure_identity
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

mod entra;
mod error;
mod exchange;
mod failure;
mod provider;
mod settings;

pub use error::{Error, Result};
pub use provider::AcrProvider;
pub use regcreds_token_endpoint::ClientError;
pub use settings::{AcrAuth, AcrSettings};

/// Provider name, as used in flags, logs and metrics.
pub const PROVIDER_NAME: &str = "acr";
/// Default Secret name, as in upmc registry-creds.
pub const DEFAULT_SECRET: &str = "acr-secret";
/// The user name that marks the password as an ACR refresh token.
pub const REFRESH_TOKEN_USER: &str = "00000000-0000-0000-0000-000000000000";
/// Default Entra scope (the one external-secrets settled on; `https://containerregistry.azure.net/.default`
/// works as well).
pub const DEFAULT_SCOPE: &str = "https://management.azure.com/.default";
