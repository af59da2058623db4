//! Turning a failed step of a mint into a [`regcreds_core::Error`]: transient or permanent, with the
//! provider and the step as context, never a secret.
//!
//! HTTP client errors name URLs (which may carry a query string) and servers may echo what they were
//! sent, so only an error's kind and root network cause are kept, and a server's message only when it
//! does not contain the secret that was sent.

use std::error::Error as StdError;

/// The longest excerpt of a server message or an error cause that goes into a message.
const EXCERPT_CHARS: usize = 200;
/// This many characters of a secret in a row make a server message an echo of it.
const ECHO_CHARS: usize = 16;

/// One step of a provider's mint (`installation token for installation 42 at https://…`, `app JWT`,
/// `Entra token (client-secret)`), for the errors it can end in:
/// `provider <provider>: <step>: <what went wrong>`.
#[derive(Debug, Clone)]
pub struct MintStep {
    provider: &'static str,
    context: String,
}

impl MintStep {
    /// The step `context` of provider `provider`. `context` names endpoints, IDs and hosts, never a
    /// credential.
    pub fn new(provider: &'static str, context: impl Into<String>) -> Self {
        Self {
            provider,
            context: context.into(),
        }
    }

    /// The core error for `what` going wrong at this step; `transient` when trying again later may help
    /// (a network failure, 5xx, throttling), not when only a configuration change does.
    pub fn failed(&self, transient: bool, what: &str) -> regcreds_core::Error {
        let reason = format!("{}: {what}", self.context);
        if transient {
            regcreds_core::Error::transient(self.provider, reason)
        } else {
            regcreds_core::Error::permanent(self.provider, reason)
        }
    }

    /// A request that got no (complete) response: timed out, could not connect, or failed otherwise.
    /// Always transient.
    pub fn request_failed(&self, err: &reqwest::Error) -> regcreds_core::Error {
        let what = if err.is_timeout() {
            "timed out".to_string()
        } else if err.is_connect() {
            format!("cannot connect ({})", root_cause(err))
        } else {
            format!("request failed ({})", root_cause(err))
        };
        self.failed(true, &what)
    }
}

/// 5xx, 429 and 408 may pass; any other 4xx (a refused credential, no such installation, a narrowing
/// that cannot be granted) needs a configuration change.
pub fn status_is_transient(status: u16) -> bool {
    status >= 500 || status == 429 || status == 408
}

/// The first line of a server's error message, at most 200 characters, unless it quotes `secret` or
/// is part of it (a server echoing what it was sent must not put it into our logs).
///
/// NB: any 16 characters of the secret in a row count as a quote, and the check reaches 15 characters
/// past the excerpt: cutting a line that quotes a long JWT in full would otherwise keep most of the JWT
/// (no longer the whole secret, so no longer recognised), and a server may quote a secret cut short.
pub fn server_message(message: Option<&str>, secret: &str) -> Option<String> {
    let line = message?.lines().next()?.trim();
    let excerpt: String = line.chars().take(EXCERPT_CHARS).collect();
    let checked: String = line.chars().take(EXCERPT_CHARS + ECHO_CHARS - 1).collect();
    let echoes_secret = !secret.is_empty() && (quotes_a_run(&checked, secret) || secret.contains(&excerpt));
    (!excerpt.is_empty() && !echoes_secret).then_some(excerpt)
}

/// Whether `text` holds [`ECHO_CHARS`] characters of `secret` in a row (all of it, if shorter).
fn quotes_a_run(text: &str, secret: &str) -> bool {
    let chars: Vec<char> = secret.chars().collect();
    chars
        .windows(ECHO_CHARS.min(chars.len()))
        .any(|run| text.contains(&run.iter().collect::<String>()))
}

/// The innermost cause of `err`, e.g. "Connection refused (os error 111)" or a TLS verification
/// failure: the outer layers of an HTTP client error name the URL.
pub fn root_cause(err: &(dyn StdError + 'static)) -> String {
    let innermost = std::iter::successors(Some(err), |&e| e.source())
        .last()
        .unwrap_or(err);
    first_line(&innermost.to_string())
}

/// The first line of `text`, at most 200 characters.
pub fn first_line(text: &str) -> String {
    text.lines()
        .next()
        .unwrap_or_default()
        .chars()
        .take(EXCERPT_CHARS)
        .collect()
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn a_failed_step_names_the_provider_and_the_step() {
        let step = MintStep::new("quay", "robot federation for myorg+puller at https://quay.io/x");
        let err = step.failed(false, "HTTP 401");
        assert!(!err.is_transient());
        assert_eq!(
            err.to_string(),
            "provider quay: robot federation for myorg+puller at https://quay.io/x: HTTP 401"
        );
        assert!(step.failed(true, "HTTP 503").is_transient());
    }

    #[test]
    fn rate_limits_and_server_errors_are_transient_client_errors_are_not() {
        for status in [500, 502, 503, 429, 408] {
            assert!(status_is_transient(status), "{status}");
        }
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
        assert_eq!(
            server_message(Some("eyJ.x"), "eyJ.x.y"),
            None,
            "part of the secret"
        );
        assert_eq!(
            server_message(Some("bad\neyJ.x.y"), "eyJ.x.y").as_deref(),
            Some("bad")
        );
        assert_eq!(server_message(Some("  "), "s"), None);
        assert_eq!(server_message(None, "s"), None);
        assert_eq!(
            server_message(Some(&"x".repeat(500)), "s").map(|m| m.len()),
            Some(200)
        );
    }

    #[test]
    fn an_echo_of_a_long_secret_is_dropped_even_when_the_excerpt_would_cut_it_short() {
        let jwt = format!("eyJhbGciOiJSUzI1NiJ9.eyJpc3MiOjEyM30.{}", "S1gnature_".repeat(40));
        let quoted = format!("injected failure for credential {jwt}");
        assert_eq!(server_message(Some(&quoted), &jwt), None, "quoted in full");
        let cut_short = format!("token {}… rejected", &jwt[..40]);
        assert_eq!(server_message(Some(&cut_short), &jwt), None, "quoted in part");
        let signature_part = format!("bad signature {}", &jwt[100..116]);
        assert_eq!(server_message(Some(&signature_part), &jwt), None, "16 characters");
        let at_the_cut = format!("{}{jwt}", "x".repeat(195));
        assert_eq!(
            server_message(Some(&at_the_cut), &jwt),
            None,
            "5 characters in the excerpt"
        );
        let past_the_cut = format!("{}{jwt}", "x".repeat(200));
        assert_eq!(
            server_message(Some(&past_the_cut), &jwt),
            Some("x".repeat(200)),
            "nothing of it in the excerpt"
        );
        assert_eq!(
            server_message(Some("A JSON web token could not be decoded"), &jwt).as_deref(),
            Some("A JSON web token could not be decoded")
        );
    }

    /// A loopback port nothing listens on.
    fn closed_port() -> u16 {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.local_addr().expect("addr").port()
    }

    #[tokio::test]
    async fn a_refused_connection_keeps_the_cause_but_not_the_url() {
        let url = format!("http://127.0.0.1:{}/token?code=Hidden-Query-Value", closed_port());
        let err = reqwest::Client::new()
            .get(&url)
            .send()
            .await
            .expect_err("refused");
        let err = MintStep::new("ghcr", "installation token").request_failed(&err);
        assert!(err.is_transient());
        let message = err.to_string();
        assert!(
            message.starts_with("provider ghcr: installation token: cannot connect ("),
            "{message}"
        );
        assert!(!message.contains("Hidden-Query-Value"), "{message}");
    }

    #[tokio::test]
    async fn a_silent_server_times_out() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let url = format!("http://{}/token", listener.local_addr().expect("addr"));
        let client = reqwest::Client::builder()
            .timeout(Duration::from_millis(200))
            .build()
            .expect("client");
        let err = client.get(&url).send().await.expect_err("no answer");
        let err = MintStep::new("quay", "exchange").request_failed(&err);
        assert_eq!(err.to_string(), "provider quay: exchange: timed out");
        drop(listener);
    }
}
