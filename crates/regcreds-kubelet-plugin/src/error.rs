//! The crate's error type.

/// A request the plugin cannot answer, or a config it cannot be installed with. Messages never contain
/// the image pull credential, the ServiceAccount token or a variable's value: JSON errors give only a
/// position.
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
    /// A name for the config's `env` list that is not a variable name.
    #[error("{0:?} is not a variable name (letters, digits and _, not starting with a digit)")]
    NotAVariableName(String),
    /// A value for the config's `env` list with control characters (named by its variable, never shown).
    #[error("{0} contains control characters other than tab and line feed (a carriage return?)")]
    ControlCharacters(String),
}
