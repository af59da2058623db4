//! The crate's error type: why a provider's HTTP client could not be built.

use std::path::PathBuf;

/// The HTTP client could not be built. Names the CA file at most, never its content.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The CA file could not be read (missing, unreadable, larger than 1 MiB).
    #[error("CA file: {source}")]
    UnreadableCaFile {
        /// What went wrong; names the file.
        #[source]
        source: regcreds_core::FileError,
    },
    /// The CA file holds no usable PEM certificate.
    #[error("CA file {0} holds no PEM certificate")]
    InvalidCaFile(PathBuf),
    /// reqwest could not set up the client (TLS).
    #[error("cannot build the HTTP client: {0}")]
    Build(String),
}

impl ClientError {
    /// Whether the CA file is to blame (as opposed to the TLS set-up).
    pub fn is_ca_file(&self) -> bool {
        matches!(self, Self::UnreadableCaFile { .. } | Self::InvalidCaFile(_))
    }
}
