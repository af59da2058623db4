//! The crate's error types: invalid settings, and what is wrong with a private key.

/// Invalid GHCR settings. Never contains key material: IDs, names, URLs and paths only.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The App ID is neither a number nor a client ID.
    #[error("app ID {0:?} is neither a numeric GitHub App ID nor a client ID (Iv…)")]
    InvalidAppId(String),
    /// The installation ID is not a positive number.
    #[error(
        "installation ID {0:?} is not a positive number (it is the last part of \
         https://github.com/organizations/ORG/settings/installations/ID)"
    )]
    InvalidInstallationId(String),
    /// The key file could not be read.
    #[error("private key file: {source}")]
    UnreadableKeyFile {
        /// What went wrong (missing, unreadable, larger than 1 MiB); names the file.
        #[source]
        source: regcreds_core::FileError,
    },
    /// The key is not a usable RSA private key.
    #[error("private key ({origin}) {source}")]
    Key {
        /// `inline` or the file path.
        origin: String,
        /// What is wrong.
        #[source]
        source: KeyError,
    },
    /// The registry is not a bare host.
    #[error("registry {registry:?}: {reason}")]
    InvalidRegistry {
        /// The value given.
        registry: String,
        /// What is wrong.
        reason: String,
    },
    /// The API URL is not an http(s) URL.
    #[error("API URL {0:?} is not an http:// or https:// URL (e.g. https://github.example.com/api/v3)")]
    InvalidApiUrl(String),
    /// A repository name is unusable.
    #[error("repository {name:?}: {reason}")]
    InvalidRepository {
        /// The value given.
        name: String,
        /// What is wrong.
        reason: &'static str,
    },
    /// A repository ID is not a positive number.
    #[error("repository ID {0:?} is not a positive number")]
    InvalidRepositoryId(String),
    /// GitHub accepts at most 500 repositories per token.
    #[error("{0} repositories given; GitHub narrows a token to at most 500")]
    TooManyRepositories(usize),
    /// A permission is not `name:level`.
    #[error("permission {0:?} is not name:read, name:write or name:admin (e.g. packages:read)")]
    InvalidPermission(String),
    /// The user name is empty or contains ':' (kubelet splits `auth` on the first ':').
    #[error("username must be non-empty and must not contain ':'")]
    InvalidUsername,
    /// The HTTP client could not be built: the CA file is unusable, or TLS could not be set up.
    #[error(transparent)]
    HttpClient(#[from] crate::ClientError),
}

/// What is wrong with a private key. Names the PEM label at most, never key material.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// No `-----BEGIN …-----` / `-----END …-----` block.
    #[error(
        "is not a PEM private key (expected the .pem file GitHub generated: \
         -----BEGIN RSA PRIVATE KEY----- … -----END RSA PRIVATE KEY-----)"
    )]
    NotPem,
    /// An encrypted key; regcreds has no passphrase to open it with.
    #[error("is encrypted; store it unencrypted (`openssl rsa -in key.pem -out plain.pem`)")]
    Encrypted,
    /// The PEM body is not base64.
    #[error("is not valid PEM: its body is not base64")]
    NotBase64,
    /// A PEM block of another kind.
    #[error("holds a {0}, not the GitHub App's RSA private key")]
    NotAnRsaPrivateKey(String),
    /// The DER inside is not an RSA key aws-lc-rs accepts.
    #[error("is not a usable RSA private key (PKCS#1 or PKCS#8, 2048 to 8192 bits)")]
    Rejected,
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
