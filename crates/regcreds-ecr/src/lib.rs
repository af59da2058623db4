//! Amazon ECR credentials: private registries in one or more regions, and optionally ECR Public.
//!
//! ```text
//!  aws-config chain (static keys, IRSA web identity, Pod Identity, profiles, instance metadata)
//!        │ optional AssumeRole (STS)
//!        ▼
//!  per region: ECR GetAuthorizationToken ──▶ authorizationData[] ─┐
//!  ECR Public (us-east-1): GetAuthorizationToken ──▶ one entry ───┤  decode base64 "AWS:<pw>",
//!                                                                 ▼  expiry from expiresAt
//!                                      one CredentialSet keyed by proxyEndpoint / public.ecr.aws
//! ```
//!
//! A token is only valid in the region it was minted in, so every configured region gets its own call.
//! The calls run concurrently and the mint succeeds only if all of them do: a Secret missing one region
//! would break pulls that work today, so a partial result is never returned.
//!
//! `registry_ids` (upmc's `awsaccount`) asks for one entry per account; an empty list sends no
//! `registryIds` at all (upmc registry-creds sent `[""]`, which ECR rejects, issue #88).
#![forbid(unsafe_code)]
#![deny(missing_docs)]

#[cfg(feature = "cli")]
mod args;
mod error;
mod failure;
mod http_client;
mod pod;
mod private;
mod provider;
mod public;
mod settings;
mod token;

#[cfg(feature = "cli")]
pub use args::EcrArgs;
pub use error::{Error, Result};
pub use provider::EcrProvider;
pub use settings::{AssumeRole, DEFAULT_ROLE_ANNOTATION, EcrSettings, Endpoint};

/// Provider name, as used in flags, logs and metrics.
pub const PROVIDER_NAME: &str = "ecr";
/// Default Secret name, as in upmc registry-creds.
pub const DEFAULT_SECRET: &str = "awsecr-cred";
/// The `auths` key of ECR Public credentials.
pub const PUBLIC_REGISTRY: &str = "public.ecr.aws";
/// ECR Public's API exists only in this region (of the `aws` partition).
pub const PUBLIC_REGION: &str = "us-east-1";
