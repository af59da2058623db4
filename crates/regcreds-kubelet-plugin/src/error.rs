//! The crate's error type.

/// A request the plugin cannot answer. Messages never contain the image pull credential or the
/// ServiceAccount token: JSON errors give only a position.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// stdin is not a JSON object of the expected shape.
    #[error(
        "stdin is not a CredentialProviderRequest: invalid JSON at line {line} column {column} ({category})"
    )]
    NotJson {
        /// 1-based line of the error.
        line: usize,
        /// 1-based column of the error.
        column: usize,
        /// `syntax`, `data` (a field of the wrong type) or `eof`.
        category: &'static str,
    },
    /// The apiVersion is not one of the kubelet's credential provider versions.
    #[error(
        "apiVersion {0:?} is not supported; use credentialprovider.kubelet.k8s.io/v1 (or v1beta1, v1alpha1) \
         in the CredentialProviderConfig"
    )]
    UnsupportedApiVersion(String),
    /// The kind is not `CredentialProviderRequest`.
    #[error("kind {0:?} is not CredentialProviderRequest")]
    WrongKind(String),
    /// The image is missing or blank.
    #[error("the request has no image")]
    NoImage,
}
