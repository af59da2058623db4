//! What the providers that mint by calling a token endpoint over HTTPS (ACR, GHCR, Quay, GCR) share.
//! Like them, it knows nothing of Kubernetes.
//!
//! ```text
//!  settings ──▶ client(ca_file, timeout) ──▶ reqwest::Client   (timeouts, no redirects, extra CA)
//!                                              │ POST/GET the token endpoint
//!        no response ──▶ MintStep::request_failed ─┤
//!        non-2xx ──▶ status_is_transient + server_message (never the secret sent) ──▶ MintStep::failed
//!        2xx ──▶ token ──▶ jwt::expiry (the `exp` claim, unverified) ──▶ when to mint next
//! ```
//!
//! * [`client`] builds the one HTTP client of a provider; a CA file is read with regcreds-core's
//!   bounded reader, so `/dev/zero` fails at once. Its failures are a [`ClientError`], which each
//!   provider's own error enum wraps.
//! * [`MintStep`] turns a failed step of a mint into a [`regcreds_core::Error`] naming the provider and
//!   the step (endpoint, installation, robot), transient or permanent. HTTP client errors name URLs
//!   and may carry request data, so only their kind and root network cause are kept.
//! * [`jwt`] reads a JWT's `exp` without verifying it: tokens are forwarded, not trusted.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod client;
mod error;
mod failure;
pub mod jwt;

pub use client::client;
pub use error::ClientError;
pub use failure::{MintStep, first_line, root_cause, server_message, status_is_transient};
