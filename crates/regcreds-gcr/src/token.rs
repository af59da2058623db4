//! Token endpoint replies and failures, shared by the key flow and the metadata server.

use chrono::{DateTime, Utc};
use regcreds_core::SecretString;
use regcreds_token_endpoint::{MintStep, status_is_transient};

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

/// Sends `request` and reads a token reply; `step` names the endpoint in errors.
pub(crate) async fn fetch(
    request: reqwest::RequestBuilder,
    step: &MintStep,
) -> regcreds_core::Result<AccessToken> {
    let response = request.send().await.map_err(|e| network(&e, step))?;
    let status = response.status().as_u16();
    let body = response.bytes().await.map_err(|e| network(&e, step))?;
    if !(200..300).contains(&status) {
        return Err(refused(status, &body, step));
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
        _ => Err(step.failed(
            true,
            "malformed reply: no access_token with a positive expires_in",
        )),
    }
}

/// 5xx, 429 and 408 may pass; any other 4xx (`invalid_grant` for a deleted key, 403 for a missing
/// scope) needs a configuration change.
fn refused(status: u16, body: &[u8], step: &MintStep) -> regcreds_core::Error {
    let code = serde_json::from_slice::<ErrorReply>(body)
        .ok()
        .and_then(|r| r.error)
        .map(|c| format!(" {}", c.chars().take(60).collect::<String>()))
        .unwrap_or_default();
    step.failed(status_is_transient(status), &format!("HTTP {status}{code}"))
}

/// NB: not [`MintStep::request_failed`]: GCR's messages say `request failed (…)` for a refused
/// connection too, and users' alerts may match them.
fn network(err: &reqwest::Error, step: &MintStep) -> regcreds_core::Error {
    let root = std::iter::successors(Some(err as &(dyn std::error::Error + 'static)), |&e| e.source())
        .last()
        .map(|e| e.to_string().chars().take(160).collect::<String>())
        .unwrap_or_default();
    let what = if err.is_timeout() {
        "timed out".to_string()
    } else {
        format!("request failed ({root})")
    };
    step.failed(true, &what)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::PROVIDER_NAME;

    fn step(context: &str) -> MintStep {
        MintStep::new(PROVIDER_NAME, context)
    }

    #[test]
    fn an_oauth_error_keeps_its_code_but_not_its_description() {
        let body = br#"{"error":"invalid_grant","error_description":"Invalid JWT for puller@p.iam"}"#;
        let err = refused(
            400,
            body,
            &step("token endpoint https://oauth2.googleapis.com/token"),
        );
        assert!(!err.is_transient());
        assert_eq!(
            err.to_string(),
            "provider gcr: token endpoint https://oauth2.googleapis.com/token: HTTP 400 invalid_grant"
        );
    }

    #[test]
    fn server_errors_and_rate_limits_are_transient() {
        assert!(refused(503, b"", &step("x")).is_transient());
        assert!(refused(429, b"{}", &step("x")).is_transient());
        assert!(!refused(403, b"{}", &step("x")).is_transient());
    }
}
