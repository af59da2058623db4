//! The kubelet plugin's ServiceAccount token mode on Google: Workload Identity Federation with the pod's
//! own token, then (when its ServiceAccount names one) the Google service account it may act as.
//!
//! ```text
//!  pod's token ──STS token exchange (sts.googleapis.com/v1/token)──▶ federated access token
//!     │   audience: the workload identity pool provider (REGCREDS_GCR_WORKLOAD_IDENTITY_PROVIDER)
//!     └─ ServiceAccount annotation iam.gke.io/gcp-service-account = SA email?
//!          yes ──IAM Credentials generateAccessToken (Bearer federated token)──▶ the SA's access token
//!          no  ──▶ the federated token itself (Artifact Registry grants the principal directly)
//! ```
//!
//! Request and reply shapes: Google's Security Token Service API reference (`token` method: form fields
//! grant_type, audience, scope, requested_token_type, subject_token, subject_token_type; reply
//! access_token, issued_token_type, token_type, expires_in), sent form-encoded as google-auth-library's
//! `sts.py` does; IAM Service Account Credentials API `generateAccessToken` (body `scope`, `lifetime`;
//! reply `accessToken`, `expireTime`). Google decides: STS checks the token against the pool provider,
//! IAM the `roles/iam.workloadIdentityUser` binding on the service account.

use chrono::{DateTime, Utc};
use regcreds_core::{PodIdentity, SecretString};
use regcreds_token_endpoint::{MintStep, server_message, status_is_transient};

use crate::{
    PROVIDER_NAME,
    token::{self, AccessToken},
};

/// GKE's annotation naming the Google service account a Kubernetes ServiceAccount acts as.
pub const SERVICE_ACCOUNT_ANNOTATION: &str = "iam.gke.io/gcp-service-account";
/// Google's Security Token Service.
pub const DEFAULT_STS_URL: &str = "https://sts.googleapis.com/v1/token";
/// Google's IAM Service Account Credentials API.
pub const DEFAULT_IAM_CREDENTIALS_URL: &str = "https://iamcredentials.googleapis.com";

/// Where a pod's token is federated.
#[derive(Debug, Clone)]
pub(crate) struct Federation {
    /// `//iam.googleapis.com/projects/<number>/locations/global/workloadIdentityPools/<pool>/providers/<provider>`.
    pub(crate) audience: String,
    pub(crate) sts_url: String,
    pub(crate) iam_credentials_url: String,
}

/// `{"accessToken": "…", "expireTime": "2014-10-02T15:01:23Z"}`.
#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct GeneratedToken {
    access_token: Option<String>,
    expire_time: Option<String>,
}

/// Google API errors: `{"error": {"code": 403, "message": "…", "status": "PERMISSION_DENIED"}}`.
#[derive(serde::Deserialize)]
struct ApiError {
    error: Option<ApiErrorBody>,
}

#[derive(serde::Deserialize)]
struct ApiErrorBody {
    message: Option<String>,
    status: Option<String>,
}

impl Federation {
    /// An access token for `pod`: federated, and impersonating its service account when one is named.
    pub(crate) async fn token(
        &self,
        http: &reqwest::Client,
        scopes: &[String],
        pod: &PodIdentity,
    ) -> regcreds_core::Result<AccessToken> {
        let federated = self.exchange(http, scopes, &pod.token).await?;
        match pod.annotations.get(SERVICE_ACCOUNT_ANNOTATION).map(|s| s.trim()) {
            None | Some("") => Ok(federated),
            Some(email) => self.impersonate(http, scopes, email, &federated.token).await,
        }
    }

    async fn exchange(
        &self,
        http: &reqwest::Client,
        scopes: &[String],
        subject: &SecretString,
    ) -> regcreds_core::Result<AccessToken> {
        let step = MintStep::new(PROVIDER_NAME, format!("STS token exchange at {}", self.sts_url));
        let scope = scopes.join(" ");
        let form = [
            ("grant_type", "urn:ietf:params:oauth:grant-type:token-exchange"),
            ("audience", self.audience.as_str()),
            ("scope", scope.as_str()),
            (
                "requested_token_type",
                "urn:ietf:params:oauth:token-type:access_token",
            ),
            ("subject_token", subject.expose()),
            ("subject_token_type", "urn:ietf:params:oauth:token-type:jwt"),
        ];
        token::fetch(http.post(&self.sts_url).form(&form), subject.expose(), &step).await
    }

    async fn impersonate(
        &self,
        http: &reqwest::Client,
        scopes: &[String],
        email: &str,
        federated: &SecretString,
    ) -> regcreds_core::Result<AccessToken> {
        let url = format!(
            "{}/v1/projects/-/serviceAccounts/{email}:generateAccessToken",
            self.iam_credentials_url.trim_end_matches('/')
        );
        let step = MintStep::new(PROVIDER_NAME, format!("generateAccessToken for {email}"));
        let body = serde_json::json!({"scope": scopes, "lifetime": "3600s"});
        let response = http
            .post(&url)
            .bearer_auth(federated.expose())
            .json(&body)
            .send()
            .await
            .map_err(|e| step.request_failed(&e))?;
        let status = response.status().as_u16();
        let bytes = response.bytes().await.map_err(|e| step.request_failed(&e))?;
        if !(200..300).contains(&status) {
            let error = serde_json::from_slice::<ApiError>(&bytes)
                .ok()
                .and_then(|e| e.error);
            let code = error
                .as_ref()
                .and_then(|e| e.status.clone())
                .map(|s| format!(" {s}"))
                .unwrap_or_default();
            let message = server_message(error.and_then(|e| e.message).as_deref(), federated.expose())
                .map(|m| format!(" {m:?}"))
                .unwrap_or_default();
            return Err(step.failed(
                status_is_transient(status),
                &format!("HTTP {status}{code}{message}"),
            ));
        }
        match serde_json::from_slice::<GeneratedToken>(&bytes) {
            Ok(GeneratedToken {
                access_token: Some(token),
                expire_time: Some(expire_time),
            }) if !token.is_empty() => match DateTime::parse_from_rfc3339(&expire_time) {
                Ok(expires_at) => Ok(AccessToken {
                    token: SecretString::new(token),
                    expires_at: expires_at.with_timezone(&Utc),
                }),
                Err(_) => Err(step.failed(true, "malformed reply: expireTime is not RFC 3339")),
            },
            _ => Err(step.failed(true, "malformed reply: no accessToken with an expireTime")),
        }
    }
}
