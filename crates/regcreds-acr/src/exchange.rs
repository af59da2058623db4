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
    audience: Audience,
}

/// The Entra scope the exchanged token was requested for, and ACR's own audience in that cloud: what
/// a refusal's hint names.
#[derive(Debug, Clone)]
pub(crate) struct Audience {
    /// The scope requested (configured, or ACR's audience).
    pub(crate) scope: String,
    /// ACR's own audience for the cloud of the authority host.
    pub(crate) acr_scope: &'static str,
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
        audience: Audience,
    ) -> Self {
        let base = base_url.map_or_else(|| format!("https://{}", service.authority()), |b| b.to_string());
        let url = format!("{}/oauth2/exchange", base.trim_end_matches('/'));
        Self {
            http,
            url,
            service,
            tenant,
            audience,
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
        let hint = match status {
            401 | 403 => refusal_hint(&self.audience),
            // NB: AAD-OAuth.md: `service` "must indicate the name of your Azure container registry".
            400 => format!(
                ": the registry refused the request (is {}, sent as service, this registry's login server \
                 NAME.azurecr.io? REGCREDS_ACR_REGISTRY names it, REGCREDS_ACR_EXCHANGE_URL only where the \
                 exchange is sent)",
                self.service
            ),
            _ => String::new(),
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

/// Why a registry refuses an Entra token: no AcrPull role, or an audience it does not accept (ARM's,
/// once the registry has ARM-audience tokens disabled; another cloud's).
fn refusal_hint(audience: &Audience) -> String {
    let Audience { scope, acr_scope } = audience;
    if scope == acr_scope {
        format!(
            ": the registry refused the Entra token (does the identity have AcrPull on it? the token was \
             requested for {scope}, ACR's audience in this authority's cloud; REGCREDS_ACR_SCOPE sets another)"
        )
    } else {
        format!(
            ": the registry refused the Entra token (does the identity have AcrPull on it? does it accept \
             tokens for {scope}, set by REGCREDS_ACR_SCOPE? a registry with ARM-audience tokens disabled \
             accepts only ACR's audience, {acr_scope}: unset REGCREDS_ACR_SCOPE)"
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exchange(scope: &str) -> Exchange {
        let service = RegistryHost::parse_bare_host("myregistry.azurecr.io").expect("host");
        let audience = Audience {
            scope: scope.to_string(),
            acr_scope: crate::DEFAULT_SCOPE,
        };
        Exchange::new(reqwest::Client::new(), service, None, None, audience)
    }

    #[test]
    fn a_refusal_of_acrs_audience_names_the_role_and_the_scope_setting() {
        let err = exchange(crate::DEFAULT_SCOPE).refused(
            401,
            br#"{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}"#,
        );
        assert!(!err.is_transient());
        assert_eq!(
            err.to_string(),
            "provider acr: exchange for myregistry.azurecr.io at https://myregistry.azurecr.io/oauth2/exchange: \
             HTTP 401 UNAUTHORIZED: the registry refused the Entra token (does the identity have AcrPull on \
             it? the token was requested for https://containerregistry.azure.net/.default, ACR's audience in \
             this authority's cloud; REGCREDS_ACR_SCOPE sets another)"
        );
    }

    #[test]
    fn a_refusal_of_another_audience_points_at_acrs_own() {
        let err = exchange(crate::ARM_SCOPE).refused(401, b"{}");
        assert!(!err.is_transient());
        assert_eq!(
            err.to_string(),
            "provider acr: exchange for myregistry.azurecr.io at https://myregistry.azurecr.io/oauth2/exchange: \
             HTTP 401: the registry refused the Entra token (does the identity have AcrPull on it? does it \
             accept tokens for https://management.azure.com/.default, set by REGCREDS_ACR_SCOPE? a registry \
             with ARM-audience tokens disabled accepts only ACR's audience, \
             https://containerregistry.azure.net/.default: unset REGCREDS_ACR_SCOPE)"
        );
    }

    #[test]
    fn a_bad_request_names_the_login_server_sent_as_service() {
        let err = exchange(crate::DEFAULT_SCOPE).refused(
            400,
            br#"{"errors":[{"code":"BAD_REQUEST","message":"service is wrong"}]}"#,
        );
        assert!(!err.is_transient());
        assert!(
            err.to_string().ends_with(
                "HTTP 400 BAD_REQUEST: the registry refused the request (is myregistry.azurecr.io, sent as \
                 service, this registry's login server NAME.azurecr.io? REGCREDS_ACR_REGISTRY names it, \
                 REGCREDS_ACR_EXCHANGE_URL only where the exchange is sent)"
            ),
            "{err}"
        );
    }

    #[test]
    fn other_statuses_carry_no_hint() {
        let err = exchange(crate::DEFAULT_SCOPE).refused(503, b"not json");
        assert!(err.is_transient());
        assert!(err.to_string().ends_with(": HTTP 503"), "{err}");
    }
}
