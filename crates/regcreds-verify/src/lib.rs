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
//!
//! On top of the protocol, checking as regcreds does it (the binary only wires it to Kubernetes):
//!
//! ```text
//!  REGCREDS_CHECK_* ──CheckArgs::build() (feature `cli`)──▶ Checker { Verifier, [Probe] }
//!
//!  regcreds check:  provider.mint() ──CredentialSet──▶ Checker::check ──▶ Vec<CheckResult> ──▶ stdout, exit code
//!  regcreds run:    mint ──▶ Gate (probed registries, before publishing) ──▶ watch<desired state>
//!                        ──▶ ControllerChecks' loop (after a change, every interval) ──▶ CheckMetrics, logs
//! ```
//!
//! * [`Probe`]: probe images; [`Checker`]: checks with the right probe per registry; [`Gate`]: verify
//!   before propagate; [`ControllerChecks`]: the controller's re-checks of what it published
//!   ([`PublishedConfig`]); [`CheckMetrics`]: their series; `args` (feature `cli`): the `REGCREDS_CHECK_*`
//!   settings.
//!
//! Registry hosts and outcomes are not secret and become metric labels; reasons name a step, an HTTP
//! status and the registry's error code, never a password or token.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

#[cfg(feature = "cli")]
mod args;
mod challenge;
mod checker;
mod endpoint;
mod error;
mod error_code;
mod gate;
mod handshake;
mod image;
mod metrics;
mod outcome;
mod probe;
mod recheck;
mod verifier;

#[cfg(feature = "cli")]
pub use args::{CheckArgs, PeriodicCheckArgs, require_probes};

pub use challenge::{Challenge, ChallengeError};
pub use checker::Checker;
pub use endpoint::{DOCKER_HUB_V2, EndpointError, HttpPolicy, base_url};
pub use error::{Error, Result};
pub use gate::{Gate, Refusal};
pub use image::{ImageRef, ImageRefError};
pub use metrics::CheckMetrics;
pub use outcome::{AuthScheme, CheckResult, Outcome};
pub use probe::Probe;
pub use recheck::{ControllerChecks, PublishedConfig};
pub use verifier::{Verifier, VerifierOptions};
