//! GitHub Container Registry credentials from a GitHub App: short-lived installation tokens instead of a
//! personal access token that never expires.
//!
//! ```text
//!  App private key (PEM, PKCS#1 as GitHub issues it or PKCS#8; inline, or a file re-read on every mint)
//!      │ RS256 app JWT: iss = App ID (or client ID), iat = now − 60 s, exp = now + 9 min
//!      ▼
//!  POST {api}/app/installations/{installation_id}/access_tokens
//!       Accept: application/vnd.github+json, X-GitHub-Api-Version: 2022-11-28, Authorization: Bearer <JWT>
//!       {"repositories":[…],"repository_ids":[…],"permissions":{"packages":"read"}}   (narrowing, optional)
//!      │
//!      ▼  201 {"token":"ghs_…","expires_at":"2026-05-01T12:00:00Z",…}
//!  x-access-token:<token> for ghcr.io (or a GitHub Enterprise Server registry); expiry = expires_at
//! ```
//!
//! Installation tokens live one hour; `expires_at` is taken from the reply rather than assumed, and the
//! binary refreshes halfway through. The JWT is signed anew for every mint (it is cheap and must not
//! outlive ten minutes). GitHub Enterprise Server: point `api_url` at `https://HOST/api/v3` and
//! `registry` at the instance's container registry host.
//!
//! References: GitHub Docs "Generating a JSON Web Token (JWT) for a GitHub App", "Generating an
//! installation access token for a GitHub App", REST "Create an installation access token for an app".
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod app_jwt;
#[cfg(feature = "cli")]
mod args;
mod error;
mod installation;
mod key;
mod pem;
mod provider;
mod settings;

#[cfg(feature = "cli")]
pub use args::GhcrArgs;
pub use error::{Error, KeyError, Result};
pub use provider::GhcrProvider;
pub use regcreds_token_endpoint::ClientError;
pub use settings::{GhcrSettings, PrivateKey};

/// Provider name, as used in flags, logs and metrics.
pub const PROVIDER_NAME: &str = "ghcr";
/// Default Secret name.
pub const DEFAULT_SECRET: &str = "ghcr-secret";
/// Registry written when none is configured.
pub const DEFAULT_REGISTRY: &str = "ghcr.io";
/// GitHub's REST API (github.com and GitHub Enterprise Cloud).
pub const DEFAULT_API_URL: &str = "https://api.github.com";
/// The user name written with the installation token.
///
/// GitHub documents `x-access-token` as the user name that goes with an installation access token
/// ("Authenticating as a GitHub App installation": `git clone https://x-access-token:TOKEN@github.com/…`);
/// the container registry authenticates by the token, so the same name is used there.
pub const TOKEN_USER: &str = "x-access-token";
/// The REST API version requested (`X-GitHub-Api-Version`).
pub const API_VERSION: &str = "2022-11-28";
/// The narrowing applied unless configured otherwise: a pull credential needs nothing but this.
pub const DEFAULT_PERMISSIONS: &[(&str, &str)] = &[("packages", "read")];
