//! Token endpoint replies and failures, shared by the key flow and the metadata server.

use chrono::{DateTime, Utc};
use regcreds_core::SecretString;

use crate::PROVIDER_NAME;

/// `{"access_token":"…","expires_in":3599,"token_type":"Bearer"}`.
#[derive(serde::Deserialize)]
struct Reply {
    access_token: Option<String>,
    expires_in: Option<i64>,
}

/// OAuth2 error body; only the code is kept (`error_description` may quote request values).
#[derive(serde::Deserialize)]
struct ErrorReply {
    error: Option<String>,
}

/// An access token and when it expires.
pub(crate) struct AccessToken {
    pub(crate) token: SecretString,
    pub(crate) expires_at: DateTime<Utc>,
}

/// Sends `request` and reads a token reply; `context` names the endpoint in errors.
pub(crate) async fn fetch(
    request: reqwest::RequestBuilder,
    context: &str,
) -> regcreds_core::Result<AccessToken> {
    let response = request.send().await.map_err(|e| network(&e, context))?;
    let status = response.status().as_u16();
    let body = response.bytes().await.map_err(|e| network(&e, context))?;
    if !(200..300).contains(&status) {
        return Err(refused(status, &body, context));
    }
    let reply: Option<Reply> = serde_json::from_slice(&body).ok();
    match reply {
        Some(Reply {
            access_token: Some(token),
            expires_in: Some(secs),
        }) if !token.is_empty() && secs > 0 => Ok(AccessToken {
            token: SecretString::new(token),
            expires_at: Utc::now() + chrono::Duration::seconds(secs),
        }),
        _ => Err(mint_error(
            true,
            context,
            "malformed reply: no access_token with a positive expires_in",
        )),
    }
}

/// 5xx, 429 and 408 may pass; any other 4xx (`invalid_grant` for a deleted key, 403 for a missing
/// scope) needs a configuration change.
fn refused(status: u16, body: &[u8], context: &str) -> regcreds_core::Error {
    let code = serde_json::from_slice::<ErrorReply>(body)
        .ok()
        .and_then(|r| r.error)
        .map(|c| format!(" {}", c.chars().take(60).collect::<String>()))
        .unwrap_or_default();
    let transient = status >= 500 || status == 429 || status == 408;
    mint_error(transient, context, &format!("HTTP {status}{code}"))
}

fn network(err: &reqwest::Error, context: &str) -> regcreds_core::Error {
    let root = std::iter::successors(Some(err as &(dyn std::error::Error + 'static)), |&e| e.source())
        .last()
        .map(|e| e.to_string().chars().take(160).collect::<String>())
        .unwrap_or_default();
    let what = if err.is_timeout() {
        "timed out".to_string()
    } else {
        format!("request failed ({root})")
    };
    mint_error(true, context, &what)
}

/// The core error for a failed step at `context`.
pub(crate) fn mint_error(transient: bool, context: &str, what: &str) -> regcreds_core::Error {
    let reason = format!("{context}: {what}");
    if transient {
        regcreds_core::Error::transient(PROVIDER_NAME, reason)
    } else {
        regcreds_core::Error::permanent(PROVIDER_NAME, reason)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_oauth_error_keeps_its_code_but_not_its_description() {
        let body = br#"{"error":"invalid_grant","error_description":"Invalid JWT for puller@p.iam"}"#;
        let err = refused(400, body, "token endpoint https://oauth2.googleapis.com/token");
        assert!(!err.is_transient());
        assert_eq!(
            err.to_string(),
            "provider gcr: token endpoint https://oauth2.googleapis.com/token: HTTP 400 invalid_grant"
        );
    }

    #[test]
    fn server_errors_and_rate_limits_are_transient() {
        assert!(refused(503, b"", "x").is_transient());
        assert!(refused(429, b"{}", "x").is_transient());
        assert!(!refused(403, b"{}", "x").is_transient());
    }
}
