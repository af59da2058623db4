//! The model every other regcreds crate shares. It knows nothing about Kubernetes or any cloud.
//!
//! ```text
//!  provider crates ──mint()──▶ Minted { CredentialSet, expiry }
//!                                        │ render()
//!                                        ▼
//!                            deterministic .dockerconfigjson bytes ──▶ propagator (Secrets in every namespace)
//! ```
//!
//! * [`Credential`] is one registry login (host, user, [`SecretString`] password, optional expiry).
//! * [`CredentialSet`] renders many of them as one `.dockerconfigjson`; the bytes depend only on the
//!   content, so an unchanged credential never looks like a change and never causes a write.
//! * [`DockerConfig::parse`] validates user-supplied dockerconfigjson and reports *where* it is wrong
//!   without ever echoing a secret.
//! * [`Provider`] is the one trait a credential source implements.
//! * [`read_bounded`] reads the files users point regcreds at, never more than 1 MiB.
//! * [`RegistryHost::parse_bare_host`] and [`is_http_url`] check the hosts and URLs providers are
//!   configured with, before anything is sent there.
//! * [`reference`] says which registry an image or a key names, and which key kubelet offers for an
//!   image.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod credential;
mod dockerconfig;
mod error;
mod file;
mod provider;
pub mod reference;
mod registry;
mod secret;
mod url;

pub use credential::{Credential, CredentialSet};
pub use dockerconfig::{DockerConfig, DockerConfigError};
pub use error::{Error, Result};
pub use file::{FileError, MAX_INPUT_FILE_BYTES, read_bounded, read_bounded_async, read_bounded_to_string};
pub use provider::{PodIdentity, Provider, ProviderName};
pub use registry::{BareHostError, RegistryHost, RegistryHostError, redact_registry};
pub use secret::SecretString;
pub use url::is_http_url;
