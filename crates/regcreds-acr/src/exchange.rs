//! `POST https://<registry>/oauth2/exchange`: an Entra access token in, an ACR refresh token out.

use chrono::{DateTime, Utc};
use regcreds_core::{RegistryHost, SecretString};
use regcreds_token_endpoint::{MintStep, jwt, status_is_transient};

use crate::PROVIDER_NAME;

/// The exchange endpoint of one registry.
#[derive(Debug, Clone)]
pub(crate) struct Exchange {
    http: reqwest::Client,
    /// `https://<registry>/oauth2/exchange` or the override.
    url: String,
    /// The login server, sent as `service` whatever `url` is.
    service: RegistryHost,
    tenant: Option<String>,
}

#[derive(serde::Deserialize)]
struct Reply {
    refresh_token: Option<String>,
}

/// ACR's error body: `{"errors":[{"code":"UNAUTHORIZED","message":"…"}]}`; only the code is kept.
#[derive(serde::Deserialize)]
struct ErrorReply {
    #[serde(default)]
    errors: Vec<ErrorItem>,
}

#[derive(serde::Deserialize)]
struct ErrorItem {
    code: Option<String>,
}

impl Exchange {
    pub(crate) fn new(
        http: reqwest::Client,
        service: RegistryHost,
        base_url: Option<&str>,
        tenant: Option<String>,
    ) -> Self {
        let base = base_url.map_or_else(|| format!("https://{}", service.authority()), |b| b.to_string());
        let url = format!("{}/oauth2/exchange", base.trim_end_matches('/'));
        Self {
            http,
            url,
            service,
            tenant,
        }
    }

    /// The login server this exchange is for.
    pub(crate) fn service(&self) -> &RegistryHost {
        &self.service
    }

    /// A refresh token and its expiry for `access_token`.
    pub(crate) async fn refresh_token(
        &self,
        access_token: &SecretString,
    ) -> regcreds_core::Result<(SecretString, DateTime<Utc>)> {
        let mut form = vec![
            ("grant_type", "access_token"),
            ("service", self.service.as_str()),
            ("access_token", access_token.expose()),
        ];
        if let Some(tenant) = &self.tenant {
            form.push(("tenant", tenant));
        }
        let step = self.step();
        let response = self
            .http
            .post(&self.url)
            .form(&form)
            .send()
            .await
            .map_err(|e| step.request_failed(&e))?;
        let status = response.status().as_u16();
        let body = response.bytes().await.map_err(|e| step.request_failed(&e))?;
        if !(200..300).contains(&status) {
            return Err(self.refused(status, &body));
        }
        let token = serde_json::from_slice::<Reply>(&body)
            .ok()
            .and_then(|r| r.refresh_token);
        let Some(token) = token.filter(|t| !t.is_empty()) else {
            return Err(step.failed(true, "malformed reply: no refresh_token"));
        };
        let Some(expires_at) = jwt::expiry(&token) else {
            return Err(step.failed(true, "malformed reply: refresh_token is not a JWT with exp"));
        };
        Ok((SecretString::new(token), expires_at))
    }

    fn refused(&self, status: u16, body: &[u8]) -> regcreds_core::Error {
        let code = serde_json::from_slice::<ErrorReply>(body)
            .ok()
            .and_then(|r| r.errors.into_iter().find_map(|e| e.code))
            .map(|c| format!(" {c}"))
            .unwrap_or_default();
        let hint = if status == 401 || status == 403 {
            ": the registry refused the Entra token (does the identity have AcrPull on it?)"
        } else {
            ""
        };
        self.step()
            .failed(status_is_transient(status), &format!("HTTP {status}{code}{hint}"))
    }

    fn step(&self) -> MintStep {
        MintStep::new(
            PROVIDER_NAME,
            format!("exchange for {} at {}", self.service, self.url),
        )
    }
}
