//! Turning Entra and exchange failures into [`regcreds_core::Error`]: transient or permanent, with
//! context, never a secret.
//!
//! Entra's `error_description` and ACR's error messages can quote request values (client IDs, scopes),
//! and HTTP client errors name URLs; only status codes, error codes and root network causes are kept.

use std::error::Error as StdError;

use azure_core::error::ErrorKind;

use crate::PROVIDER_NAME;

/// The core error for `what` failing at `context` (`Entra token (client-secret)`, `exchange at …`).
pub(crate) fn error(transient: bool, context: &str, what: &str) -> regcreds_core::Error {
    let reason = format!("{context}: {what}");
    if transient {
        regcreds_core::Error::transient(PROVIDER_NAME, reason)
    } else {
        regcreds_core::Error::permanent(PROVIDER_NAME, reason)
    }
}

/// 5xx and 429 may pass; any other status (401 wrong secret, 403 no role assignment, 400 bad tenant)
/// needs a configuration change.
pub(crate) fn status_is_transient(status: u16) -> bool {
    status >= 500 || status == 429 || status == 408
}

/// Classifies an azure_identity `get_token` error.
pub(crate) fn entra(err: &azure_core::Error, context: &str) -> regcreds_core::Error {
    // NB: credentials wrap the HTTP error in an ErrorKind::Credential one; the status is further down.
    if let Some((status, code)) = http_status(err) {
        let code = code.map(|c| format!(" (AADSTS {c})")).unwrap_or_default();
        return error(
            status_is_transient(status),
            context,
            &format!("HTTP {status}{code}"),
        );
    }
    let kinds = chain(err)
        .filter_map(|e| e.downcast_ref::<azure_core::Error>())
        .map(|e| e.kind());
    let network = kinds
        .clone()
        .any(|k| matches!(k, ErrorKind::Connection | ErrorKind::Io));
    if network {
        return error(true, context, &format!("network error ({})", root_cause(err)));
    }
    // NB: serde messages can quote the reply they failed on, which may hold a token.
    if kinds.clone().any(|k| matches!(k, ErrorKind::DataConversion)) {
        return error(true, context, "unreadable reply from the identity endpoint");
    }
    // Missing token file, unsupported managed identity source: azure_identity's own description of the
    // situation, not request data.
    error(true, context, &first_line(&err.to_string()))
}

/// Classifies a failed exchange request (no response).
pub(crate) fn request(err: &reqwest::Error, context: &str) -> regcreds_core::Error {
    let what = if err.is_timeout() {
        "timed out".to_string()
    } else if err.is_connect() {
        format!("cannot connect ({})", root_cause(err))
    } else {
        format!("request failed ({})", root_cause(err))
    };
    error(true, context, &what)
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

/// The innermost cause, e.g. "Connection refused (os error 111)" or a TLS verification failure.
fn root_cause(err: &(dyn StdError + 'static)) -> String {
    first_line(&chain(err).last().unwrap_or(err).to_string())
}

fn first_line(text: &str) -> String {
    text.lines()
        .next()
        .unwrap_or_default()
        .chars()
        .take(200)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_limits_and_server_errors_are_transient_client_errors_are_not() {
        assert!(status_is_transient(503));
        assert!(status_is_transient(429));
        assert!(!status_is_transient(401));
        assert!(!status_is_transient(400));
    }

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
        let err = entra(&wrapped, "Entra token (client-secret)");
        assert!(!err.is_transient());
        assert_eq!(
            err.to_string(),
            "provider acr: Entra token (client-secret): HTTP 401 (AADSTS 7000215)"
        );
    }
}
