//! The crate's error type: what is wrong with [`AcrSettings`](crate::AcrSettings).

/// Invalid ACR settings. Never contains a secret: registry names, IDs, URLs and paths only.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No registry is configured.
    #[error("no registry configured (e.g. myregistry.azurecr.io)")]
    NoRegistry,
    /// A registry is not a bare login server name.
    #[error("registry {registry:?}: {reason}")]
    InvalidRegistry {
        /// The value given.
        registry: String,
        /// What is wrong.
        reason: String,
    },
    /// `exchange_base_url` redirects one registry; with several it would be ambiguous.
    #[error("exchange_base_url can only be used with a single registry")]
    ExchangeUrlWithSeveralRegistries,
    /// A URL setting is not a usable URL.
    #[error("{setting} {url:?} is not an http:// or https:// URL")]
    InvalidUrl {
        /// Which setting.
        setting: &'static str,
        /// The value.
        url: String,
    },
    /// azure_identity refuses authority hosts that are not https.
    #[error("authority_host {0:?} must be an https:// URL")]
    AuthorityNotHttps(String),
    /// The Entra scope is empty.
    #[error("scope is empty")]
    EmptyScope,
    /// A required identity value is empty.
    #[error("{0} is empty")]
    Empty(&'static str),
    /// A static user name contains ':' (kubelet splits `auth` on the first ':').
    #[error("username must not contain ':'")]
    ColonInUsername,
    /// The HTTP client could not be built: the CA file is unusable, or TLS could not be set up.
    #[error(transparent)]
    HttpClient(#[from] crate::ClientError),
    /// azure_identity rejected the identity settings (e.g. workload identity without its variables).
    #[error("{mode}: {reason}")]
    Identity {
        /// `client-secret`, `workload-identity` or `managed-identity`.
        mode: &'static str,
        /// azure_identity's message (configuration only, never a secret).
        reason: String,
    },
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
