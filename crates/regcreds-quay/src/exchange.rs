//! `GET <quay>/oauth2/federation/robot/token` with Basic `<robot>:<ServiceAccount JWT>`: the pod's
//! identity in, a short-lived robot token out.
//!
//! Quay answers `200 {"token": "<JWT>"}`, or `401 {"error": "<why>"}` when the robot has no federation
//! config for the token's issuer, the subject does not match, or the signature or expiry fail
//! (`endpoints/oauth/robot_identity_federation.py`, `auth/credentials.py`).

use chrono::{DateTime, Duration, Utc};
use regcreds_core::SecretString;

use crate::{ASSUMED_TOKEN_LIFETIME_SECS, failure, jwt};

/// The exchange endpoint for one robot.
#[derive(Debug, Clone)]
pub(crate) struct Exchange {
    http: reqwest::Client,
    url: String,
    robot: String,
}

#[derive(serde::Deserialize)]
struct Reply {
    token: Option<String>,
}

#[derive(serde::Deserialize)]
struct ErrorReply {
    error: Option<String>,
}

impl Exchange {
    pub(crate) fn new(http: reqwest::Client, url: String, robot: String) -> Self {
        Self { http, url, robot }
    }

    /// The endpoint, for descriptions.
    pub(crate) fn url(&self) -> &str {
        &self.url
    }

    /// A robot token for `service_account_token`, with its expiry (the JWT's `exp`, else one hour).
    pub(crate) async fn robot_token(
        &self,
        service_account_token: &SecretString,
    ) -> regcreds_core::Result<(SecretString, DateTime<Utc>)> {
        let context = self.context();
        let received = Utc::now();
        let response = self
            .http
            .get(&self.url)
            .basic_auth(&self.robot, Some(service_account_token.expose()))
            .header("Accept", "application/json")
            .send()
            .await
            .map_err(|e| failure::request(&e, &context))?;
        let status = response.status().as_u16();
        let body = response
            .bytes()
            .await
            .map_err(|e| failure::request(&e, &context))?;
        if !(200..300).contains(&status) {
            return Err(self.refused(status, &body, service_account_token));
        }
        let token = serde_json::from_slice::<Reply>(&body).ok().and_then(|r| r.token);
        let Some(token) = token.filter(|t| !t.is_empty()) else {
            return Err(failure::error(true, &context, "malformed reply: no token"));
        };
        let expires_at = jwt::expiry(&token).unwrap_or_else(|| {
            tracing::debug!("the Quay robot token carries no exp; assuming Quay's one-hour lifetime");
            received + Duration::seconds(ASSUMED_TOKEN_LIFETIME_SECS)
        });
        Ok((SecretString::new(token), expires_at))
    }

    fn refused(
        &self,
        status: u16,
        body: &[u8],
        service_account_token: &SecretString,
    ) -> regcreds_core::Error {
        let message = serde_json::from_slice::<ErrorReply>(body)
            .ok()
            .and_then(|r| r.error);
        let message = failure::server_message(message.as_deref(), service_account_token.expose())
            .map(|m| format!(" {m:?}"))
            .unwrap_or_default();
        let hint = match status {
            401 | 403 => format!(
                ": Quay refused the ServiceAccount token for {} (is the robot federated with this \
                 cluster's issuer and this ServiceAccount as subject?)",
                self.robot
            ),
            _ => String::new(),
        };
        failure::error(
            failure::status_is_transient(status),
            &self.context(),
            &format!("HTTP {status}{message}{hint}"),
        )
    }

    fn context(&self) -> String {
        format!("robot federation for {} at {}", self.robot, self.url)
    }
}
