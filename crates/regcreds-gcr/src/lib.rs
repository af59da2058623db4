//! Google Container Registry and Artifact Registry credentials: an OAuth2 access token written as the
//! password of the user `oauth2accesstoken`, once per configured registry host.
//!
//! ```text
//!  service-account key JSON (inline, or a file re-read on every mint)
//!      │ validated field by field; gcp_auth parses the PKCS#8 key and signs (RS256, aws-lc-rs)
//!      ▼
//!  POST <token_uri>  grant_type=jwt-bearer&assertion=<JWT iss=client_email aud=token_uri scope=…>
//!                                                        ┐
//!  or GET <metadata>/computeMetadata/v1/instance/        ├─▶ {"access_token","expires_in"}
//!         service-accounts/default/token (GCE, GKE WI)   ┘
//!      ▼
//!  oauth2accesstoken:<token> for gcr.io, europe-docker.pkg.dev, …; expiry = now + expires_in
//! ```
//!
//! The token request is regcreds' own reqwest call rather than gcp_auth's `TokenProvider`: gcp_auth
//! reports every non-2xx answer as the same "token request failed" after five attempts, which would make
//! a revoked key (permanent) indistinguishable from an outage (transient). The metadata server is also
//! called directly, because gcp_auth hard-codes its address and regcreds honours `GCE_METADATA_HOST`.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

#[cfg(feature = "cli")]
mod args;
mod assertion;
mod error;
mod federation;
mod key;
mod metadata;
mod provider;
mod settings;
mod token;

#[cfg(feature = "cli")]
pub use args::GcrArgs;
pub use error::{Error, KeyError, Result};
pub use federation::SERVICE_ACCOUNT_ANNOTATION;
pub use provider::GcrProvider;
pub use settings::{GcrCredentials, GcrSettings};

/// Provider name, as used in flags, logs and metrics.
pub const PROVIDER_NAME: &str = "gcr";
/// Default Secret name, as in upmc registry-creds.
pub const DEFAULT_SECRET: &str = "gcr-secret";
/// Registry written when none is configured.
pub const DEFAULT_REGISTRY: &str = "gcr.io";
/// The user name GCR and Artifact Registry expect with an access token.
pub const TOKEN_USER: &str = "oauth2accesstoken";
/// Default OAuth2 scope: implies read (and write) access to GCR and Artifact Registry.
pub const DEFAULT_SCOPE: &str = "https://www.googleapis.com/auth/cloud-platform";
