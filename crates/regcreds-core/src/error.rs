//! The crate's error type.

use crate::{DockerConfigError, RegistryHostError};

/// Errors of the shared model and of providers. Messages never contain a credential.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A dockerconfigjson from `origin` (a variable or file name) is invalid.
    #[error("{origin}: dockerconfigjson {source}")]
    DockerConfig {
        /// Where the document came from (variable or path), for the user.
        origin: String,
        /// What is wrong with it.
        #[source]
        source: DockerConfigError,
    },
    /// A registry given in `origin` is invalid.
    #[error("{origin}: {source}")]
    Registry {
        /// Where the registry came from.
        origin: String,
        /// What is wrong with it.
        #[source]
        source: RegistryHostError,
    },
    /// A provider could not mint. `reason` must already be free of secrets.
    #[error("provider {provider}: {reason}")]
    Mint {
        /// The provider's name.
        provider: &'static str,
        /// What went wrong (endpoint, status, which setting), never a credential.
        reason: String,
        /// Whether trying again later may help (network, 5xx, throttling) or not (bad configuration).
        transient: bool,
    },
    /// A provider minted nothing; writing that would wipe a working Secret.
    #[error("provider {provider} returned no credentials")]
    EmptyMint {
        /// The provider's name.
        provider: &'static str,
    },
}

impl Error {
    /// A transient mint failure: trying again later may succeed.
    pub fn transient(provider: &'static str, reason: impl Into<String>) -> Self {
        Self::Mint {
            provider,
            reason: reason.into(),
            transient: true,
        }
    }

    /// A permanent mint failure: only a configuration change helps.
    pub fn permanent(provider: &'static str, reason: impl Into<String>) -> Self {
        Self::Mint {
            provider,
            reason: reason.into(),
            transient: false,
        }
    }

    /// Whether trying again may help.
    pub fn is_transient(&self) -> bool {
        matches!(self, Self::Mint { transient: true, .. } | Self::EmptyMint { .. })
    }

    /// A short stable label for metrics (`error` label values).
    pub fn metric_label(&self) -> &'static str {
        match self {
            Self::DockerConfig { .. } => "dockerconfig",
            Self::Registry { .. } => "registry",
            Self::Mint { transient: true, .. } => "mint_transient",
            Self::Mint { transient: false, .. } => "mint_permanent",
            Self::EmptyMint { .. } => "empty_mint",
        }
    }
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
