//! `POST {api}/app/installations/{id}/access_tokens`: an app JWT in, an installation token out.
//!
//! GitHub REST API, "Create an installation access token for an app": headers `Accept:
//! application/vnd.github+json`, `X-GitHub-Api-Version`, `Authorization: Bearer <app JWT>`; optional body
//! `{"repositories":["name"],"repository_ids":[1],"permissions":{"packages":"read"}}`; `201` with
//! `{"token","expires_at"(ISO 8601),"permissions","repository_selection"}`. Errors carry
//! `{"message","documentation_url"}`: 401 (JWT rejected), 403, 404 (no such installation), 422
//! (narrowing the installation cannot grant).

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use regcreds_core::SecretString;

use crate::{API_VERSION, failure};

/// The token endpoint of one installation, with the narrowing to request.
#[derive(Debug, Clone)]
pub(crate) struct Installation {
    http: reqwest::Client,
    url: String,
    installation_id: u64,
    body: Option<Narrowing>,
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
        Self {
            http,
            url: format!("{api_url}/app/installations/{installation_id}/access_tokens"),
            installation_id,
            body,
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
        let context = self.context();
        let mut request = self
            .http
            .post(&self.url)
            .header("Accept", "application/vnd.github+json")
            .header("X-GitHub-Api-Version", API_VERSION)
            .bearer_auth(app_jwt.expose());
        if let Some(body) = &self.body {
            request = request.json(body);
        }
        let response = request.send().await.map_err(|e| failure::request(&e, &context))?;
        let status = response.status().as_u16();
        let rate_limited = response
            .headers()
            .get("x-ratelimit-remaining")
            .is_some_and(|v| v.as_bytes() == b"0")
            || response.headers().contains_key("retry-after");
        let body = response
            .bytes()
            .await
            .map_err(|e| failure::request(&e, &context))?;
        if !(200..300).contains(&status) {
            return Err(self.refused(status, rate_limited, &body, app_jwt));
        }
        let reply = serde_json::from_slice::<Reply>(&body).ok();
        let Some(Reply {
            token: Some(token),
            expires_at: Some(expires_at),
        }) = reply.filter(|r| r.token.as_ref().is_some_and(|t| !t.is_empty()))
        else {
            return Err(failure::error(
                true,
                &context,
                "malformed reply: no token and expires_at",
            ));
        };
        let Ok(expires_at) = DateTime::parse_from_rfc3339(&expires_at) else {
            return Err(failure::error(
                true,
                &context,
                "malformed reply: expires_at is not an ISO 8601 time",
            ));
        };
        Ok((SecretString::new(token), expires_at.with_timezone(&Utc)))
    }

    fn refused(
        &self,
        status: u16,
        rate_limited: bool,
        body: &[u8],
        app_jwt: &SecretString,
    ) -> regcreds_core::Error {
        let message = serde_json::from_slice::<ErrorReply>(body)
            .ok()
            .and_then(|r| r.message);
        let message = failure::server_message(message.as_deref(), app_jwt.expose())
            .map(|m| format!(" {m:?}"))
            .unwrap_or_default();
        let id = self.installation_id;
        let (transient, hint) = match status {
            401 => (
                false,
                "GitHub refused the app JWT: check the App ID and the private key, and that the clock is right"
                    .to_string(),
            ),
            403 if rate_limited => (true, "rate limited; retrying later".to_string()),
            404 => (
                false,
                format!("no installation {id} of this App: check the installation ID and that the App is still installed"),
            ),
            422 => (
                false,
                "the installation cannot grant the requested repositories or permissions \
                 (does the App have Packages: read, and access to those repositories?)"
                    .to_string(),
            ),
            other => (failure::status_is_transient(other), String::new()),
        };
        let hint = if hint.is_empty() {
            hint
        } else {
            format!(": {hint}")
        };
        failure::error(
            transient,
            &self.context(),
            &format!("HTTP {status}{message}{hint}"),
        )
    }

    fn context(&self) -> String {
        format!(
            "installation token for installation {} at {}",
            self.installation_id, self.url
        )
    }
}
