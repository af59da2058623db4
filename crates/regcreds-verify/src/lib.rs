//! Proves that a registry credential really authenticates, the way a container runtime would.
//!
//! ```text
//! Credential ──▶ endpoint::base_url (key → https://host[:port]; Docker Hub → registry-1.docker.io)
//!            ──▶ GET /v2/ ──401──▶ challenge::select (Bearer realm/service/scope | Basic)
//!            ──▶ token endpoint (Bearer) ──▶ GET /v2/ authenticated ──▶ HEAD probe manifest (optional)
//!            ──▶ CheckResult { registry, Outcome::{Ok, Unauthorized, Unreachable, Error}, elapsed }
//! ```
//!
//! * [`Verifier`] owns one HTTP client (rustls with the platform roots plus any extra PEM roots) and
//!   checks one credential ([`Verifier::check`]) or a whole [`regcreds_core::CredentialSet`]
//!   ([`Verifier::check_all`]).
//! * A check never returns an error: every failure is an [`Outcome`] with a one-line reason naming
//!   the step and the HTTP status. Reasons never contain the password, a token or a response body.
//! * Plain http is used, and credentials are sent over it, only for hosts listed in
//!   [`VerifierOptions::insecure_http_hosts`] ([`HttpPolicy`]).
//! * `/v2/` answering 200 proves authentication only; a probe image ([`ImageRef`]) proves pull rights.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod challenge;
mod endpoint;
mod error;
mod error_code;
mod handshake;
mod image;
mod outcome;
mod verifier;

pub use challenge::{Challenge, ChallengeError};
pub use endpoint::{DOCKER_HUB_V2, EndpointError, HttpPolicy, base_url};
pub use error::{Error, Result};
pub use image::{ImageRef, ImageRefError};
pub use outcome::{AuthScheme, CheckResult, Outcome};
pub use verifier::{Verifier, VerifierOptions};
