//! The crate's error type.

/// What is wrong with a static credential source. Never contains a password.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The registry server is not a valid registry key.
    #[error("server: {0}")]
    Server(#[source] regcreds_core::RegistryHostError),
    /// The user name is empty.
    #[error("user is empty")]
    EmptyUser,
    /// The user name contains ':' (kubelet splits `auth` on the first ':').
    #[error("user must not contain ':'")]
    ColonInUser,
    /// The password is empty.
    #[error("password is empty")]
    EmptyPassword,
    /// A dockerconfigjson file could not be read (missing, unreadable, larger than 1 MiB).
    #[error(transparent)]
    UnreadableFile {
        /// What went wrong; names the file.
        source: regcreds_core::FileError,
    },
    /// A dockerconfigjson (inline or file) is invalid.
    #[error("{origin}: dockerconfigjson {source}")]
    DockerConfig {
        /// `inline` or the file path.
        origin: String,
        /// What is wrong.
        #[source]
        source: regcreds_core::DockerConfigError,
    },
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
