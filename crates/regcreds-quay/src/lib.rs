//! Quay credentials by robot account federation: no robot password in the cluster, only the pod's own
//! ServiceAccount token, exchanged for a robot token that lives an hour.
//!
//! ```text
//!  projected ServiceAccount token (file, audience set in the pod spec; re-read on every mint: kubelet
//!      │                           rotates it)
//!      ▼
//!  GET https://<quay host>/oauth2/federation/robot/token
//!      Authorization: Basic base64("<org>+<robot>:<ServiceAccount JWT>")
//!      │  Quay matches the JWT's iss/sub against the robot's federation config, requires a `kid` and
//!      │  RS256/RS384, verifies the signature with the keys of the issuer's OIDC discovery document
//!      │  (fetched over HTTPS), and checks `aud` when the matching federation entry lists audiences
//!      ▼  200 {"token":"<JWT, sub = org+robot, exp = now + 1 h>"}   ·   400 {"message":"…"}   ·   401 {"error":"…"}
//!  <org>+<robot>:<token> for the Quay host; expiry = the token's `exp`
//! ```
//!
//! References: Red Hat Quay API reference "Auth Federated Robot Token" (`GET
//! oauth2/federation/robot/token`); Quay's `endpoints/oauth/robot_identity_federation.py`
//! (`process_federated_auth`), `util/security/federated_robot_auth.py` (`validate_federated_auth`,
//! `verify_federated_robot_jwt_token`: Basic auth with the robot name and the OIDC token, issuer,
//! audiences, subject), `oauth/oidc.py` (`decode_user_jwt`: `kid`, `ALLOWED_ALGORITHMS`),
//! `endpoints/decorated.py` (`handle_dme`: 400 `{"message"}`) and `data/model/user.py`
//! (`TMP_ROBOT_TOKEN_VALIDITY_LIFETIME_S = 60 * 60`);
//! external-secrets `generators/v1/quay` (the same call, `SetBasicAuth(robotAccount, fedToken)`).
//!
//! The robot token is a JWT, so its `exp` schedules the refresh. Should a Quay version answer with an
//! opaque token, its documented one-hour life is assumed from the moment it was received.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

#[cfg(feature = "cli")]
mod args;
mod error;
mod exchange;
mod provider;
mod settings;

#[cfg(feature = "cli")]
pub use args::QuayArgs;
pub use error::{Error, Result};
pub use provider::QuayProvider;
pub use regcreds_token_endpoint::ClientError;
pub use settings::QuaySettings;

/// Provider name, as used in flags, logs and metrics.
pub const PROVIDER_NAME: &str = "quay";
/// Default Secret name.
pub const DEFAULT_SECRET: &str = "quay-secret";
/// Registry used when none is configured.
pub const DEFAULT_REGISTRY: &str = "quay.io";
/// Where the chart and the overlay mount the projected ServiceAccount token.
pub const DEFAULT_TOKEN_FILE: &str = "/var/run/secrets/regcreds/quay/token";
/// Lifetime assumed for a robot token that carries no `exp` (Quay's `TMP_ROBOT_TOKEN_VALIDITY_LIFETIME_S`).
pub const ASSUMED_TOKEN_LIFETIME_SECS: i64 = 3600;
