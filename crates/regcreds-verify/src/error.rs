//! The crate's error type: only building a [`crate::Verifier`] can fail. A failed *check* is not an
//! error but an [`crate::Outcome`].

/// Why a verifier could not be built.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An extra root certificate is not valid PEM.
    #[error("extra root certificate #{index} is not a valid PEM certificate: {source}")]
    RootCertificate {
        /// Position in [`crate::VerifierOptions::extra_root_certs`].
        index: usize,
        /// The parse error.
        #[source]
        source: reqwest::Error,
    },
    /// An extra root certificate entry holds no PEM certificate at all.
    #[error("extra root certificate #{index} contains no PEM certificate")]
    NoCertificate {
        /// Position in [`crate::VerifierOptions::extra_root_certs`].
        index: usize,
    },
    /// The HTTP client could not be built (TLS backend initialisation).
    #[error("cannot build the HTTP client: {0}")]
    HttpClient(#[source] reqwest::Error),
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
