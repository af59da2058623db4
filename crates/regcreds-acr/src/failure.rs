//! Turning Entra failures into [`regcreds_core::Error`]: transient or permanent, with context, never a
//! secret. (Exchange failures are classified by [`regcreds_token_endpoint`], like other token endpoints'.)
//!
//! Entra's `error_description` can quote request values (client IDs, scopes), and HTTP client errors
//! name URLs; only status codes, AADSTS error codes and root network causes are kept.

use std::error::Error as StdError;

use azure_core::error::ErrorKind;
use regcreds_token_endpoint::{MintStep, first_line, root_cause, status_is_transient};

/// Classifies an azure_identity `get_token` error at `step` (`Entra token (client-secret)`). A status
/// of 5xx, 429 or 408 may pass; any other (401 wrong secret, 403 no role assignment, 400 bad tenant)
/// needs a configuration change.
pub(crate) fn entra(err: &azure_core::Error, step: &MintStep) -> regcreds_core::Error {
    // NB: credentials wrap the HTTP error in an ErrorKind::Credential one; the status is further down.
    if let Some((status, code)) = http_status(err) {
        // NB: AADSTS500011 "resource principal not found": the scope names a resource this tenant's
        // cloud does not know (a registry URL, another cloud's ACR audience).
        let hint = if code.as_deref() == Some("500011") {
            ": Entra knows no resource for the requested scope (REGCREDS_ACR_SCOPE; ACR's audience differs \
             per cloud and follows REGCREDS_ACR_AUTHORITY_HOST)"
        } else {
            ""
        };
        let code = code.map(|c| format!(" (AADSTS {c})")).unwrap_or_default();
        return step.failed(status_is_transient(status), &format!("HTTP {status}{code}{hint}"));
    }
    let kinds = chain(err)
        .filter_map(|e| e.downcast_ref::<azure_core::Error>())
        .map(|e| e.kind());
    let network = kinds
        .clone()
        .any(|k| matches!(k, ErrorKind::Connection | ErrorKind::Io));
    if network {
        return step.failed(true, &format!("network error ({})", root_cause(err)));
    }
    // NB: serde messages can quote the reply they failed on, which may hold a token.
    if kinds.clone().any(|k| matches!(k, ErrorKind::DataConversion)) {
        return step.failed(true, "unreadable reply from the identity endpoint");
    }
    // Missing token file, unsupported managed identity source: azure_identity's own description of the
    // situation, not request data.
    step.failed(true, &first_line(&err.to_string()))
}

fn http_status(err: &azure_core::Error) -> Option<(u16, Option<String>)> {
    chain(err)
        .filter_map(|e| e.downcast_ref::<azure_core::Error>())
        .find_map(|e| match e.kind() {
            ErrorKind::HttpResponse {
                status, error_code, ..
            } => Some((u16::from(*status), error_code.clone())),
            _ => None,
        })
}

fn chain<'a>(
    err: &'a (dyn StdError + 'static),
) -> impl Iterator<Item = &'a (dyn StdError + 'static)> + Clone {
    std::iter::successors(Some(err), |&e| e.source())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::PROVIDER_NAME;

    #[test]
    fn an_entra_http_error_keeps_status_and_code_but_not_the_description() {
        let inner = azure_core::Error::new(
            ErrorKind::HttpResponse {
                status: azure_core::http::StatusCode::Unauthorized,
                error_code: Some("7000215".into()),
                raw_response: None,
            },
            "AADSTS7000215: Invalid client secret provided for app 'c0ffee'",
        );
        let wrapped = azure_core::Error::with_error(ErrorKind::Credential, inner, "authentication failed");
        let err = entra(
            &wrapped,
            &MintStep::new(PROVIDER_NAME, "Entra token (client-secret)"),
        );
        assert!(!err.is_transient());
        assert_eq!(
            err.to_string(),
            "provider acr: Entra token (client-secret): HTTP 401 (AADSTS 7000215)"
        );
    }

    #[test]
    fn an_entra_server_error_may_pass() {
        let inner = azure_core::Error::new(
            ErrorKind::HttpResponse {
                status: azure_core::http::StatusCode::ServiceUnavailable,
                error_code: None,
                raw_response: None,
            },
            "busy",
        );
        let err = entra(
            &inner,
            &MintStep::new(PROVIDER_NAME, "Entra token (managed-identity)"),
        );
        assert!(err.is_transient());
        assert_eq!(
            err.to_string(),
            "provider acr: Entra token (managed-identity): HTTP 503"
        );
    }

    #[test]
    fn an_unknown_resource_names_the_scope_setting() {
        let inner = azure_core::Error::new(
            ErrorKind::HttpResponse {
                status: azure_core::http::StatusCode::BadRequest,
                error_code: Some("500011".into()),
                raw_response: None,
            },
            "AADSTS500011: The resource principal named https://containerregistry.azure.cn was not found",
        );
        let err = entra(
            &inner,
            &MintStep::new(PROVIDER_NAME, "Entra token (client-secret)"),
        );
        assert!(!err.is_transient());
        assert_eq!(
            err.to_string(),
            "provider acr: Entra token (client-secret): HTTP 400 (AADSTS 500011): Entra knows no resource for \
             the requested scope (REGCREDS_ACR_SCOPE; ACR's audience differs per cloud and follows \
             REGCREDS_ACR_AUTHORITY_HOST)"
        );
    }
}
