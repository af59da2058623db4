//! Token endpoint replies and failures, shared by the key flow and the metadata server.
//!
//! Google's OAuth 2.0 errors are `{"error":"invalid_grant","error_description":"…"}`; the description
//! is the reason (Google Identity docs "Using OAuth 2.0 for Server to Server Applications", Error codes
//! table), kept unless it quotes what was sent, with a hint for the descriptions that table explains.

use chrono::{DateTime, Utc};
use regcreds_core::SecretString;
use regcreds_token_endpoint::{MintStep, server_message, status_is_transient};

/// `{"access_token":"…","expires_in":3599,"token_type":"Bearer"}`.
#[derive(serde::Deserialize)]
struct Reply {
    access_token: Option<String>,
    expires_in: Option<i64>,
}

/// OAuth2 error body: the code, and the description unless it echoes the credential sent.
#[derive(serde::Deserialize)]
struct ErrorReply {
    error: Option<String>,
    error_description: Option<String>,
}

/// Descriptions from Google's error table and what to do about them.
const HINTS: &[(&str, &str)] = &[
    (
        // Google: "Usually, it means that the local system time is not correct."
        "Invalid JWT: Token must be a short-lived token",
        "regcreds signs assertions valid for 60 minutes from now, so this machine's clock is probably \
         off (check its time synchronisation)",
    ),
    (
        "Invalid JWT Signature",
        "the key is not (or no longer) a key of this service account: create a new key",
    ),
    (
        "Invalid grant: account not found",
        "the service account no longer exists",
    ),
];

/// An access token and when it expires.
pub(crate) struct AccessToken {
    pub(crate) token: SecretString,
    pub(crate) expires_at: DateTime<Utc>,
}

/// Sends `request` and reads a token reply; `step` names the endpoint in errors, `sent` is the
/// credential in the request (the assertion; empty for the metadata server), never to be quoted.
pub(crate) async fn fetch(
    request: reqwest::RequestBuilder,
    sent: &str,
    step: &MintStep,
) -> regcreds_core::Result<AccessToken> {
    let response = request.send().await.map_err(|e| network(&e, step))?;
    let status = response.status().as_u16();
    let body = response.bytes().await.map_err(|e| network(&e, step))?;
    if !(200..300).contains(&status) {
        return Err(refused(status, &body, sent, step));
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
fn refused(status: u16, body: &[u8], sent: &str, step: &MintStep) -> regcreds_core::Error {
    let reply = serde_json::from_slice::<ErrorReply>(body).ok();
    let (code, description) = reply.map_or((None, None), |r| (r.error, r.error_description));
    let code = code
        .map(|c| format!(" {}", c.chars().take(60).collect::<String>()))
        .unwrap_or_default();
    let description = server_message(description.as_deref(), sent);
    let hint = description
        .as_deref()
        .and_then(|d| HINTS.iter().find(|(start, _)| d.starts_with(start)))
        .map(|(_, hint)| format!(": {hint}"))
        .unwrap_or_default();
    let description = description.map(|d| format!(" {d:?}")).unwrap_or_default();
    step.failed(
        status_is_transient(status),
        &format!("HTTP {status}{code}{description}{hint}"),
    )
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

    const ASSERTION: &str =
        "eyJhbGciOiJSUzI1NiIsInR5cCI6IkpXVCJ9.eyJpc3MiOiJwdWxsZXJAcC5pYW0ifQ.c2lnbmF0dXJlLWJ5dGVz";

    #[test]
    fn an_oauth_error_keeps_its_code_and_description_with_a_hint_for_known_ones() {
        let body = br#"{"error":"invalid_grant","error_description":"Invalid JWT: Token must be a short-lived token (60 minutes) and in a reasonable timeframe. Check your iat and exp values in the JWT claim."}"#;
        let err = refused(
            400,
            body,
            ASSERTION,
            &step("token endpoint https://oauth2.googleapis.com/token"),
        );
        assert!(!err.is_transient());
        assert_eq!(
            err.to_string(),
            "provider gcr: token endpoint https://oauth2.googleapis.com/token: HTTP 400 invalid_grant \
             \"Invalid JWT: Token must be a short-lived token (60 minutes) and in a reasonable timeframe. Check \
             your iat and exp values in the JWT claim.\": regcreds signs assertions valid for 60 minutes from \
             now, so this machine's clock is probably off (check its time synchronisation)"
        );
        let unknown = refused(
            400,
            br#"{"error":"invalid_scope","error_description":"Bad scope"}"#,
            ASSERTION,
            &step("x"),
        );
        assert_eq!(
            unknown.to_string(),
            "provider gcr: x: HTTP 400 invalid_scope \"Bad scope\""
        );
    }

    #[test]
    fn a_description_quoting_the_assertion_is_dropped() {
        let body = format!(r#"{{"error":"invalid_grant","error_description":"bad assertion {ASSERTION}"}}"#);
        let err = refused(400, body.as_bytes(), ASSERTION, &step("x"));
        assert_eq!(err.to_string(), "provider gcr: x: HTTP 400 invalid_grant");
    }

    #[test]
    fn server_errors_and_rate_limits_are_transient() {
        assert!(refused(503, b"", "", &step("x")).is_transient());
        assert!(refused(429, b"{}", "", &step("x")).is_transient());
        assert!(!refused(403, b"{}", "", &step("x")).is_transient());
    }
}
