//! Turning request failures into [`regcreds_core::Error`]: transient or permanent, with context, never
//! a secret. HTTP client errors name URLs, so only their kind and root network cause are kept.

use std::error::Error as StdError;

use crate::PROVIDER_NAME;

/// The core error for `what` failing at `context` (`installation token for installation 42 at …`).
pub(crate) fn error(transient: bool, context: &str, what: &str) -> regcreds_core::Error {
    let reason = format!("{context}: {what}");
    if transient {
        regcreds_core::Error::transient(PROVIDER_NAME, reason)
    } else {
        regcreds_core::Error::permanent(PROVIDER_NAME, reason)
    }
}

/// 5xx, 429 and 408 may pass; other 4xx (401 bad JWT, 404 no such installation, 422 narrowing the
/// installation cannot grant) need a configuration change.
pub(crate) fn status_is_transient(status: u16) -> bool {
    status >= 500 || status == 429 || status == 408
}

/// Classifies a request that got no response.
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

/// The first line of a server's error message, at most 200 characters, unless it contains `secret`
/// (a server echoing what it was sent must not put it into our logs).
pub(crate) fn server_message(message: Option<&str>, secret: &str) -> Option<String> {
    let line: String = message?.lines().next()?.trim().chars().take(200).collect();
    let echoes_secret = !secret.is_empty() && (line.contains(secret) || secret.contains(line.as_str()));
    (!line.is_empty() && !echoes_secret).then_some(line)
}

/// The innermost cause, e.g. "Connection refused (os error 111)" or a TLS verification failure.
fn root_cause(err: &(dyn StdError + 'static)) -> String {
    let innermost = std::iter::successors(Some(err), |&e| e.source())
        .last()
        .unwrap_or(err);
    innermost
        .to_string()
        .lines()
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
        assert!(status_is_transient(502));
        assert!(status_is_transient(429));
        for status in [400, 401, 403, 404, 422] {
            assert!(!status_is_transient(status), "{status}");
        }
    }

    #[test]
    fn a_server_message_that_echoes_the_secret_is_dropped() {
        assert_eq!(
            server_message(Some("Bad credentials\nmore"), "eyJ.x.y").as_deref(),
            Some("Bad credentials")
        );
        assert_eq!(server_message(Some("token eyJ.x.y is bad"), "eyJ.x.y"), None);
        assert_eq!(server_message(Some("  "), "s"), None);
        assert_eq!(server_message(None, "s"), None);
        assert_eq!(
            server_message(Some(&"x".repeat(500)), "s").map(|m| m.len()),
            Some(200)
        );
    }
}
