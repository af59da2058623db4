//! Turning SDK errors into [`regcreds_core::Error`]: transient or permanent, with context, no secrets.
//!
//! SDK error messages can quote request values, so only the HTTP status and the AWS error code are
//! kept from a service error. Credential failures (no credentials, STS refusing the web identity or
//! the role) arrive wrapped in a dispatch failure; the source chain is searched for them so the
//! message says "credentials" rather than "network".

use std::error::Error as StdError;

use aws_credential_types::provider::error::CredentialsError;
use aws_sdk_ecr::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_sts::operation::{
    assume_role::AssumeRoleError, assume_role_with_web_identity::AssumeRoleWithWebIdentityError,
};

use crate::PROVIDER_NAME;

/// A classified failure: what happened, and whether trying again later may help.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Failure {
    pub(crate) transient: bool,
    pub(crate) summary: String,
}

impl Failure {
    fn transient(summary: impl Into<String>) -> Self {
        Self {
            transient: true,
            summary: summary.into(),
        }
    }

    fn permanent(summary: impl Into<String>) -> Self {
        Self {
            transient: false,
            summary: summary.into(),
        }
    }

    /// The core error, prefixed with where it happened (`region eu-west-1`, `ECR Public`).
    pub(crate) fn into_error(self, context: &str) -> regcreds_core::Error {
        let reason = format!("{context}: {}", self.summary);
        if self.transient {
            regcreds_core::Error::transient(PROVIDER_NAME, reason)
        } else {
            regcreds_core::Error::permanent(PROVIDER_NAME, reason)
        }
    }
}

/// Classifies an SDK error of any operation.
pub(crate) fn classify<E>(err: &SdkError<E>) -> Failure
where
    E: ProvideErrorMetadata + StdError + 'static,
{
    if let Some(credentials) = find_in_chain::<CredentialsError>(err) {
        return credentials_failure(credentials);
    }
    match err {
        SdkError::ServiceError(service) => service_failure(
            service.raw().status().as_u16(),
            service.err().code().unwrap_or("unknown error code"),
        ),
        SdkError::TimeoutError(_) => Failure::transient("timed out"),
        SdkError::DispatchFailure(dispatch) => {
            let kind = if dispatch.is_timeout() {
                "connection timed out"
            } else {
                "request could not be sent"
            };
            Failure::transient(format!("{kind} ({})", innermost(err)))
        }
        SdkError::ResponseError(response) => Failure::transient(format!(
            "unreadable response (HTTP {})",
            response.raw().status().as_u16()
        )),
        SdkError::ConstructionFailure(_) => Failure::permanent("request could not be built"),
        _ => Failure::transient("unknown SDK error"),
    }
}

/// 5xx, 429 and throttling codes may pass; any other 4xx needs a configuration or IAM change.
fn service_failure(status: u16, code: &str) -> Failure {
    let summary = format!("HTTP {status} {code}");
    let throttled = [
        "Throttling",
        "ThrottlingException",
        "TooManyRequestsException",
        "RequestLimitExceeded",
    ];
    // NB: expired session tokens are renewed by the credentials cache, so a retry can succeed.
    let retryable = [
        "ExpiredToken",
        "ExpiredTokenException",
        "IDPCommunicationError",
        "ServerException",
    ];
    if status >= 500 || status == 429 || throttled.contains(&code) || retryable.contains(&code) {
        Failure::transient(summary)
    } else {
        Failure::permanent(summary)
    }
}

fn credentials_failure(err: &CredentialsError) -> Failure {
    let failure = match err {
        CredentialsError::CredentialsNotLoaded(_) => Failure::permanent(
            "no AWS credentials found (static keys, web identity, Pod Identity, profile or instance metadata)",
        ),
        CredentialsError::ProviderTimedOut(_) => Failure::transient("credential provider timed out"),
        CredentialsError::InvalidConfiguration(_) => {
            Failure::permanent(format!("invalid configuration ({})", innermost(err)))
        }
        CredentialsError::ProviderError(_) => {
            sts_failure(err).unwrap_or_else(|| Failure::transient("credential provider failed"))
        }
        _ => Failure::transient("credential provider failed unexpectedly"),
    };
    Failure {
        summary: format!("AWS credentials: {}", failure.summary),
        ..failure
    }
}

/// The STS call behind web identity or AssumeRole, if that is what failed.
fn sts_failure(err: &CredentialsError) -> Option<Failure> {
    if let Some(sts) = find_in_chain::<SdkError<AssumeRoleWithWebIdentityError>>(err) {
        return Some(prefixed("STS AssumeRoleWithWebIdentity", classify_sts(sts)));
    }
    find_in_chain::<SdkError<AssumeRoleError>>(err).map(|sts| prefixed("STS AssumeRole", classify_sts(sts)))
}

/// Like [`classify`] without the credentials search (STS calls are unsigned or use base credentials).
pub(crate) fn classify_sts<E: ProvideErrorMetadata + StdError + 'static>(err: &SdkError<E>) -> Failure {
    match err {
        SdkError::ServiceError(service) => service_failure(
            service.raw().status().as_u16(),
            service.err().code().unwrap_or("unknown error code"),
        ),
        SdkError::ConstructionFailure(_) => Failure::permanent("request could not be built"),
        _ => Failure::transient(format!("request failed ({})", innermost(err))),
    }
}

fn prefixed(what: &str, failure: Failure) -> Failure {
    Failure {
        summary: format!("{what}: {}", failure.summary),
        ..failure
    }
}

/// The first error of type `T` in `err`'s source chain (including `err` itself).
fn find_in_chain<'a, T: StdError + 'static>(err: &'a (dyn StdError + 'static)) -> Option<&'a T> {
    std::iter::successors(Some(err), |&e| e.source()).find_map(|e| e.downcast_ref::<T>())
}

/// The root cause's message, e.g. "Connection refused (os error 111)"; these come from the network
/// stack and hold no request data. Capped so a misbehaving source cannot flood the logs.
fn innermost(err: &(dyn StdError + 'static)) -> String {
    let root = std::iter::successors(Some(err), |&e| e.source())
        .last()
        .unwrap_or(err);
    root.to_string().chars().take(160).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_errors_and_throttling_are_transient() {
        assert!(service_failure(500, "ServerException").transient);
        assert!(service_failure(503, "ServiceUnavailable").transient);
        assert!(service_failure(400, "ThrottlingException").transient);
        assert!(service_failure(429, "TooManyRequestsException").transient);
    }

    #[test]
    fn auth_and_parameter_errors_are_permanent() {
        let denied = service_failure(400, "AccessDeniedException");
        assert!(!denied.transient);
        assert_eq!(denied.summary, "HTTP 400 AccessDeniedException");
        assert!(!service_failure(400, "InvalidParameterException").transient);
        assert!(!service_failure(403, "UnrecognizedClientException").transient);
    }

    #[test]
    fn missing_credentials_are_permanent_and_timeouts_transient() {
        let missing = credentials_failure(&CredentialsError::not_loaded("nothing in the chain"));
        assert!(!missing.transient);
        assert!(
            missing
                .summary
                .starts_with("AWS credentials: no AWS credentials found"),
            "{}",
            missing.summary
        );
        let slow = credentials_failure(&CredentialsError::provider_timed_out(
            std::time::Duration::from_secs(5),
        ));
        assert!(slow.transient);
    }

    #[test]
    fn the_error_names_provider_and_context() {
        let err = Failure::permanent("HTTP 400 AccessDeniedException").into_error("region eu-west-1");
        assert!(!err.is_transient());
        assert_eq!(
            err.to_string(),
            "provider ecr: region eu-west-1: HTTP 400 AccessDeniedException"
        );
    }
}
