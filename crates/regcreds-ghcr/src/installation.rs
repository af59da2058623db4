//! `POST {api}/app/installations/{id}/access_tokens`: an app JWT in, an installation token out.
//!
//! GitHub REST API, "Create an installation access token for an app": headers `Accept:
//! application/vnd.github+json`, `X-GitHub-Api-Version`, `Authorization: Bearer <app JWT>`; optional body
//! `{"repositories":["name"],"repository_ids":[1],"permissions":{"packages":"read"}}`; `201` with
//! `{"token","expires_at"(ISO 8601),"permissions","repository_selection"}`. Errors carry
//! `{"message","documentation_url"}`: 401 (JWT rejected), 403, 404 (no such installation), 422
//! (narrowing the installation cannot grant). The token is opaque and of no fixed length: since
//! 2026-04-27 GitHub issues `ghs_<APPID>_<JWT>` tokens of about 520 characters (docs "Generating an
//! installation access token for a GitHub App"), so nothing here looks at its length or characters.
//!
//! Rate limits (docs "Rate limits for the REST API" and "Troubleshooting the REST API", Rate limit
//! errors): 403 or 429; with `x-ratelimit-remaining: 0` no request before `x-ratelimit-reset` (UTC epoch
//! seconds); with `retry-after` none before that many seconds; a secondary limit without either, at
//! least a minute. Asking on regardless "may result in the banning of your integration", so the
//! installation remembers until when it is not to ask and refuses to send before then.
//!
//! GitHub Enterprise Server serves the REST API only under `https://HOST/api/v3`; a base URL without it
//! reaches the web front end, which answers 404.

use std::{
    collections::BTreeMap,
    sync::{Arc, Mutex},
};

use chrono::{DateTime, SecondsFormat, TimeDelta, Utc};
use regcreds_core::SecretString;
use regcreds_token_endpoint::{MintStep, server_message, status_is_transient};

use crate::{API_VERSION, DEFAULT_API_URL, PROVIDER_NAME};

/// How long to wait after a secondary rate limit that names no time ("wait for at least one minute").
const SECONDARY_WAIT: TimeDelta = TimeDelta::seconds(60);
/// The longest wait taken from GitHub's headers (the primary window is an hour): a clock far off or a
/// nonsensical header must not stop minting for longer.
const LONGEST_WAIT: TimeDelta = TimeDelta::hours(1);

/// The token endpoint of one installation, with the narrowing to request.
#[derive(Debug, Clone)]
pub(crate) struct Installation {
    http: reqwest::Client,
    url: String,
    installation_id: u64,
    body: Option<Narrowing>,
    /// Set when the API URL is neither github.com's nor ends in `/api/v3`: a 404 may then be a GitHub
    /// Enterprise Server base URL without `/api/v3`.
    maybe_missing_api_v3: Option<String>,
    /// The last rate limit GitHub reported, until it passes.
    rate_limit: Arc<Mutex<Option<RateLimit>>>,
}

/// When GitHub allows the next request, and which header (or rule) said so.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct RateLimit {
    until: DateTime<Utc>,
    source: &'static str,
}

impl RateLimit {
    /// The rate limit a refusal reports, if it is one (`message` is GitHub's, unfiltered).
    fn of(
        status: u16,
        headers: &reqwest::header::HeaderMap,
        message: Option<&str>,
        now: DateTime<Utc>,
    ) -> Option<Self> {
        if status != 403 && status != 429 {
            return None;
        }
        let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).map(str::trim);
        let retry_after = header("retry-after").and_then(|v| v.parse::<u32>().ok());
        let exhausted = header("x-ratelimit-remaining") == Some("0");
        let reset = header("x-ratelimit-reset")
            .and_then(|v| v.parse::<i64>().ok())
            .and_then(|secs| DateTime::from_timestamp(secs, 0));
        let says_so = message.is_some_and(|m| m.to_ascii_lowercase().contains("rate limit"));
        let (until, source) = match (retry_after, exhausted, reset) {
            (Some(secs), ..) => (now + TimeDelta::seconds(secs.into()), "retry-after"),
            (None, true, Some(reset)) => (reset.max(now), "x-ratelimit-reset"),
            _ if status == 429 || exhausted || says_so => (
                now + SECONDARY_WAIT,
                "a secondary limit without retry-after: at least a minute",
            ),
            _ => return None,
        };
        Some(Self {
            until: until.min(now + LONGEST_WAIT),
            source,
        })
    }

    fn describe(&self, now: DateTime<Utc>) -> String {
        format!(
            "rate limited by GitHub ({}): not asking again before {} (in {} s)",
            self.source,
            self.until.to_rfc3339_opts(SecondsFormat::Secs, true),
            (self.until - now).num_seconds().max(0)
        )
    }
}

/// The optional request body.
#[derive(Debug, Clone, serde::Serialize)]
pub(crate) struct Narrowing {
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub(crate) repositories: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub(crate) repository_ids: Vec<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) permissions: Option<BTreeMap<String, String>>,
}

impl Narrowing {
    /// `None` when nothing is narrowed (GitHub then grants all the installation has).
    pub(crate) fn into_body(self) -> Option<Self> {
        let empty =
            self.repositories.is_empty() && self.repository_ids.is_empty() && self.permissions.is_none();
        (!empty).then_some(self)
    }
}

#[derive(serde::Deserialize)]
struct Reply {
    token: Option<String>,
    expires_at: Option<String>,
}

#[derive(serde::Deserialize)]
struct ErrorReply {
    message: Option<String>,
}

impl Installation {
    pub(crate) fn new(
        http: reqwest::Client,
        api_url: &str,
        installation_id: u64,
        body: Option<Narrowing>,
    ) -> Self {
        let maybe_missing_api_v3 = (api_url != DEFAULT_API_URL && !api_url.ends_with("/api/v3"))
            .then(|| format!("{api_url}/api/v3"));
        Self {
            http,
            url: format!("{api_url}/app/installations/{installation_id}/access_tokens"),
            installation_id,
            body,
            maybe_missing_api_v3,
            rate_limit: Arc::default(),
        }
    }

    /// The endpoint, for descriptions.
    pub(crate) fn url(&self) -> &str {
        &self.url
    }

    /// A fresh installation token and its expiry.
    pub(crate) async fn token(
        &self,
        app_jwt: &SecretString,
    ) -> regcreds_core::Result<(SecretString, DateTime<Utc>)> {
        let step = self.step();
        let now = Utc::now();
        if let Some(limit) = self.rate_limited_until(now) {
            return Err(step.failed(true, &limit.describe(now)));
        }
        let mut request = self
            .http
            .post(&self.url)
            .header("Accept", "application/vnd.github+json")
            .header("X-GitHub-Api-Version", API_VERSION)
            .bearer_auth(app_jwt.expose());
        if let Some(body) = &self.body {
            request = request.json(body);
        }
        let response = request.send().await.map_err(|e| step.request_failed(&e))?;
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let body = response.bytes().await.map_err(|e| step.request_failed(&e))?;
        if !(200..300).contains(&status) {
            return Err(self.refused(status, &headers, &body, app_jwt));
        }
        let reply = serde_json::from_slice::<Reply>(&body).ok();
        let Some(Reply {
            token: Some(token),
            expires_at: Some(expires_at),
        }) = reply.filter(|r| r.token.as_ref().is_some_and(|t| !t.is_empty()))
        else {
            return Err(step.failed(true, "malformed reply: no token and expires_at"));
        };
        let Ok(expires_at) = DateTime::parse_from_rfc3339(&expires_at) else {
            return Err(step.failed(true, "malformed reply: expires_at is not an ISO 8601 time"));
        };
        Ok((SecretString::new(token), expires_at.with_timezone(&Utc)))
    }

    /// The rate limit still in force at `now`, if any.
    fn rate_limited_until(&self, now: DateTime<Utc>) -> Option<RateLimit> {
        let limit = self.rate_limit.lock().map(|guard| *guard).unwrap_or_default();
        limit.filter(|l| l.until > now)
    }

    fn refused(
        &self,
        status: u16,
        headers: &reqwest::header::HeaderMap,
        body: &[u8],
        app_jwt: &SecretString,
    ) -> regcreds_core::Error {
        let raw = serde_json::from_slice::<ErrorReply>(body)
            .ok()
            .and_then(|r| r.message);
        let message = server_message(raw.as_deref(), app_jwt.expose())
            .map(|m| format!(" {m:?}"))
            .unwrap_or_default();
        let now = Utc::now();
        if let Some(limit) = RateLimit::of(status, headers, raw.as_deref(), now) {
            if let Ok(mut guard) = self.rate_limit.lock() {
                *guard = Some(limit);
            }
            return self
                .step()
                .failed(true, &format!("HTTP {status}{message}: {}", limit.describe(now)));
        }
        let id = self.installation_id;
        let (transient, hint) = match status {
            401 => (
                false,
                "GitHub refused the app JWT: check the App ID and the private key, and that the clock is right"
                    .to_string(),
            ),
            404 => {
                let mut hint = format!(
                    "no installation {id} of this App: check the installation ID and that the App is still installed"
                );
                if let Some(with_api_v3) = &self.maybe_missing_api_v3 {
                    hint.push_str(&format!(
                        "; GitHub Enterprise Server answers only under /api/v3: should the API URL \
                         (REGCREDS_GHCR_API_URL) be {with_api_v3}?"
                    ));
                }
                (false, hint)
            }
            422 => (
                false,
                "the installation cannot grant the requested repositories or permissions \
                 (does the App have Packages: read, and access to those repositories?)"
                    .to_string(),
            ),
            other => (status_is_transient(other), String::new()),
        };
        let hint = if hint.is_empty() {
            hint
        } else {
            format!(": {hint}")
        };
        self.step()
            .failed(transient, &format!("HTTP {status}{message}{hint}"))
    }

    fn step(&self) -> MintStep {
        MintStep::new(
            PROVIDER_NAME,
            format!(
                "installation token for installation {} at {}",
                self.installation_id, self.url
            ),
        )
    }
}

#[cfg(test)]
mod tests {
    use reqwest::header::{HeaderMap, HeaderValue};

    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        pairs
            .iter()
            .map(|(name, value)| (*name, HeaderValue::from_str(value).expect("value")))
            .map(|(name, value)| (reqwest::header::HeaderName::from_static(name), value))
            .collect()
    }

    fn at(secs: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(secs, 0).expect("time")
    }

    #[test]
    fn a_used_up_primary_limit_waits_for_x_ratelimit_reset() {
        let now = at(1_800_000_000);
        let h = headers(&[
            ("x-ratelimit-remaining", "0"),
            ("x-ratelimit-reset", "1800000600"),
        ]);
        let limit = RateLimit::of(
            403,
            &h,
            Some("API rate limit exceeded for installation ID 1."),
            now,
        );
        assert_eq!(
            limit,
            Some(RateLimit {
                until: at(1_800_000_600),
                source: "x-ratelimit-reset"
            })
        );
        assert_eq!(
            limit.expect("limit").describe(now),
            "rate limited by GitHub (x-ratelimit-reset): not asking again before 2027-01-15T08:10:00Z (in 600 s)"
        );
    }

    #[test]
    fn a_secondary_limit_waits_for_retry_after_or_a_minute() {
        let now = at(1_800_000_000);
        let limit = RateLimit::of(429, &headers(&[("retry-after", "90")]), None, now).expect("429");
        assert_eq!((limit.until, limit.source), (at(1_800_000_090), "retry-after"));
        let message = "You have exceeded a secondary rate limit. Please wait a few minutes.";
        let limit = RateLimit::of(403, &HeaderMap::new(), Some(message), now).expect("403");
        assert_eq!(limit.until, at(1_800_000_060));
        let bare = RateLimit::of(429, &HeaderMap::new(), None, now).expect("bare 429");
        assert_eq!(bare.until, at(1_800_000_060));
    }

    #[test]
    fn a_plain_403_is_no_rate_limit_and_waits_are_bounded() {
        let now = at(1_800_000_000);
        let forbidden = RateLimit::of(
            403,
            &headers(&[("x-ratelimit-remaining", "4999")]),
            Some("Forbidden"),
            now,
        );
        assert_eq!(forbidden, None);
        assert_eq!(
            RateLimit::of(500, &headers(&[("retry-after", "5")]), None, now),
            None
        );
        let far = RateLimit::of(429, &headers(&[("retry-after", "86400")]), None, now).expect("429");
        assert_eq!(far.until, at(1_800_003_600), "at most an hour");
        let past = headers(&[
            ("x-ratelimit-remaining", "0"),
            ("x-ratelimit-reset", "1700000000"),
        ]);
        assert_eq!(RateLimit::of(403, &past, None, now).expect("403").until, now);
    }

    #[test]
    fn a_404_from_a_base_url_without_api_v3_suggests_it() {
        let ghes = Installation::new(reqwest::Client::new(), "https://github.example.com", 7, None);
        let err = ghes.refused(
            404,
            &HeaderMap::new(),
            b"<!DOCTYPE html>",
            &SecretString::new("jwt"),
        );
        assert!(!err.is_transient());
        assert!(
            err.to_string().ends_with(
                "HTTP 404: no installation 7 of this App: check the installation ID and that the App is still \
                 installed; GitHub Enterprise Server answers only under /api/v3: should the API URL \
                 (REGCREDS_GHCR_API_URL) be https://github.example.com/api/v3?"
            ),
            "{err}"
        );
        for api_url in [DEFAULT_API_URL, "https://github.example.com/api/v3"] {
            let installation = Installation::new(reqwest::Client::new(), api_url, 7, None);
            let err = installation.refused(404, &HeaderMap::new(), b"{}", &SecretString::new("jwt"));
            assert!(!err.to_string().contains("/api/v3:"), "{err}");
        }
    }
}
