//! The crate's error types: invalid settings, and what is wrong with a service-account key.

/// Invalid GCR settings. Never contains key material.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A registry host is invalid.
    #[error("registry: {0}")]
    Registry(#[source] regcreds_core::RegistryHostError),
    /// No scope is configured.
    #[error("no OAuth2 scope configured")]
    NoScope,
    /// The metadata server URL is not an http(s) URL.
    #[error("metadata URL {0:?} is not an http:// or https:// URL")]
    InvalidMetadataUrl(String),
    /// The STS endpoint override is not an http(s) URL.
    #[error("STS URL {0:?} is not an http:// or https:// URL")]
    InvalidStsUrl(String),
    /// The IAM Credentials endpoint override is not an http(s) URL.
    #[error("IAM Credentials URL {0:?} is not an http:// or https:// URL")]
    InvalidIamCredentialsUrl(String),
    /// The key file could not be read (missing, unreadable, larger than 1 MiB).
    #[error("service-account key: {source}")]
    UnreadableKeyFile {
        /// What went wrong; names the file.
        #[source]
        source: regcreds_core::FileError,
    },
    /// The key is not a usable service-account key.
    #[error("service-account key ({origin}): {source}")]
    Key {
        /// `inline` or the file path.
        origin: String,
        /// What is wrong.
        #[source]
        source: KeyError,
    },
    /// The HTTP client could not be built (TLS setup).
    #[error(transparent)]
    HttpClient(#[from] regcreds_token_endpoint::ClientError),
}

/// What is wrong with a service-account key JSON. Names fields, never quotes their values (except
/// `type` and `token_uri`, which are not secret).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// Not JSON at all (only the position is kept: serde may quote the input).
    #[error("is not valid JSON (syntax error at line {line}, column {column})")]
    NotJson {
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
    },
    /// JSON, but not an object.
    #[error("must be a JSON object")]
    NotAnObject,
    /// `type` is not `service_account`.
    #[error("\"type\" is {0:?}, not \"service_account\"{hint}", hint = type_hint(.0))]
    NotServiceAccount(String),
    /// A required field is absent or empty.
    #[error("\"{0}\" is missing or empty")]
    MissingField(&'static str),
    /// A field is not a string.
    #[error("\"{0}\" must be a string")]
    NotAString(&'static str),
    /// `private_key` is PKCS#1 (`BEGIN RSA PRIVATE KEY`); Google issues, and gcp_auth needs, PKCS#8.
    #[error(
        "\"private_key\" is a PKCS#1 RSA key (BEGIN RSA PRIVATE KEY); convert it to PKCS#8 with \
         `openssl pkcs8 -topk8 -nocrypt`"
    )]
    Pkcs1Key,
    /// `private_key` is not a PKCS#8 PEM RSA key.
    #[error("\"private_key\" is not a PEM PKCS#8 RSA private key (BEGIN PRIVATE KEY)")]
    InvalidPrivateKey,
    /// `client_email` does not look like an e-mail address.
    #[error("\"client_email\" is not an e-mail address")]
    InvalidClientEmail,
    /// gcp_auth could not set itself up to use the key (e.g. no system CA certificates to load).
    #[error("the key cannot be loaded: {0}")]
    Loader(&'static str),
    /// `token_uri` is not an http(s) URL.
    #[error("\"token_uri\" {0:?} is not an http:// or https:// URL")]
    InvalidTokenUri(String),
}

fn type_hint(found: &str) -> &'static str {
    match found {
        "external_account" => {
            " (workload identity federation configs are not supported; use the metadata server)"
        }
        "authorized_user" => " (gcloud user credentials are not supported; use a service-account key)",
        _ => "",
    }
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
