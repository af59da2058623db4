//! The crate's error type: what is wrong with [`QuaySettings`](crate::QuaySettings).

use std::path::PathBuf;

/// Invalid Quay settings. Never contains a token: names, hosts, URLs and paths only.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The robot account is not `<namespace>+<shortname>`.
    #[error("robot account {robot:?}: {reason}")]
    InvalidRobot {
        /// The value given.
        robot: String,
        /// What is wrong.
        reason: &'static str,
    },
    /// The registry is not a bare host.
    #[error("registry {registry:?}: {reason}")]
    InvalidRegistry {
        /// The value given.
        registry: String,
        /// What is wrong.
        reason: String,
    },
    /// The federation base URL is not an http(s) URL.
    #[error("federation URL {0:?} is not an http:// or https:// URL")]
    InvalidUrl(String),
    /// The ServiceAccount token file could not be read.
    #[error("ServiceAccount token file: {source} (mount a projected serviceAccountToken volume there)")]
    UnreadableTokenFile {
        /// What went wrong (missing, unreadable, larger than 1 MiB); names the file.
        #[source]
        source: regcreds_core::FileError,
    },
    /// The token file is empty.
    #[error("the ServiceAccount token file {0} is empty")]
    EmptyTokenFile(PathBuf),
    /// The token file holds something other than a JWT.
    #[error("the ServiceAccount token file {0} does not hold a JWT (a projected ServiceAccount token)")]
    TokenNotJwt(PathBuf),
    /// The HTTP client could not be built: the CA file is unusable, or TLS could not be set up.
    #[error(transparent)]
    HttpClient(#[from] crate::ClientError),
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
