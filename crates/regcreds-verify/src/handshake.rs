//! The registry v2 auth handshake for one credential, step by step.
//!
//! ```text
//! GET /v2/ ──200──▶ anonymous registry (nothing to authenticate)
//!    │401 + Www-Authenticate
//!    ├─ Basic  ──▶ GET /v2/ with Basic user:password
//!    └─ Bearer ──▶ GET <realm>?service=…&scope=repository:<probe>:pull with Basic user:password
//!                    → {"token"|"access_token"} ──▶ GET /v2/ with Bearer <token>
//! then, with a probe image: HEAD /v2/<repo>/manifests/<ref> with the same Authorization
//! ```
//!
//! Each step maps its failure to an [`Outcome`] whose reason names the step and the status. Response
//! bodies are never read into a reason: a registry may echo what it was sent. Of a refusal only the
//! registry's error code is kept ([`error_code`]); a refused `HEAD` is repeated as a `GET` to read it.

use std::time::Duration;

use regcreds_core::{Credential, SecretString};
use reqwest::{RequestBuilder, Response, StatusCode, header};
use url::Url;

use crate::{
    AuthScheme, HttpPolicy, ImageRef, Outcome,
    challenge::{self, Challenge},
    endpoint, error_code,
};

/// Every manifest type a pull may resolve to. Without an `Accept` header distribution answers 404 for
/// OCI manifests, which would look like a missing image.
const MANIFEST_TYPES: &str = "application/vnd.oci.image.manifest.v1+json, \
    application/vnd.oci.image.index.v1+json, \
    application/vnd.docker.distribution.manifest.v2+json, \
    application/vnd.docker.distribution.manifest.list.v2+json";

/// One check in progress. Borrowed from the [`crate::Verifier`] for the duration of the check.
pub(crate) struct Handshake<'a> {
    pub(crate) client: &'a reqwest::Client,
    pub(crate) http: &'a HttpPolicy,
    pub(crate) timeout: Duration,
    pub(crate) credential: &'a Credential,
}

/// What goes into the `Authorization` header once the registry has told us how to authenticate.
enum Authorization {
    Basic,
    Bearer(SecretString),
}

impl Authorization {
    fn scheme(&self) -> AuthScheme {
        match self {
            Self::Basic => AuthScheme::Basic,
            Self::Bearer(_) => AuthScheme::Bearer,
        }
    }
}

/// A step's failure, already phrased for the user.
type Step<T> = Result<T, Outcome>;

impl Handshake<'_> {
    /// Runs every step and returns the verdict with the scheme that authenticated (if any).
    pub(crate) async fn run(&self, probe: Option<&ImageRef>) -> (Outcome, Option<AuthScheme>) {
        match self.steps(probe).await {
            Ok(scheme) => (Outcome::Ok, scheme),
            Err(outcome) => (outcome, None),
        }
    }

    async fn steps(&self, probe: Option<&ImageRef>) -> Step<Option<AuthScheme>> {
        let base = endpoint::base_url(&self.credential.registry, self.http)
            .map_err(|e| Outcome::error(e.to_string()))?;
        let repository = probe.map(|p| self.repository_path(p, &base));
        let v2 = join(&base, "/v2/")?;

        let anonymous = self.send("GET /v2/", self.client.get(v2.clone())).await?;
        let mut auth = match anonymous.status() {
            StatusCode::OK => None,
            StatusCode::UNAUTHORIZED => Some(
                self.authenticate(&anonymous, "GET /v2/", repository.as_deref())
                    .await?,
            ),
            status => {
                return Err(Outcome::error(format!(
                    "GET {v2} answered {status}; is this a registry v2 API?"
                )));
            }
        };
        if let Some(auth) = &auth {
            let step = format!("GET /v2/ with {}", auth.scheme());
            let response = self
                .send(&step, self.authorize(self.client.get(v2.clone()), auth))
                .await?;
            expect_ok(&step, response).await?;
        }
        if let (Some(probe), Some(repository)) = (probe, repository) {
            self.probe(&base, &repository, probe, &mut auth).await?;
        }
        Ok(auth.map(|a| a.scheme()))
    }

    /// `HEAD` the probe manifest. A registry that let `/v2/` through anonymously may still challenge
    /// here, so a first 401 without credentials starts the handshake instead of failing.
    async fn probe(
        &self,
        base: &Url,
        repository: &str,
        probe: &ImageRef,
        auth: &mut Option<Authorization>,
    ) -> Step<()> {
        let manifest = join(base, &format!("/v2/{repository}/manifests/{}", probe.reference()))?;
        let step = format!("HEAD manifest of {probe}");
        let head = || {
            self.client
                .head(manifest.clone())
                .header(header::ACCEPT, MANIFEST_TYPES)
        };
        let request = match auth.as_ref() {
            Some(a) => self.authorize(head(), a),
            None => head(),
        };
        let mut response = self.send(&step, request).await?;
        if response.status() == StatusCode::UNAUTHORIZED && auth.is_none() {
            let fresh = self.authenticate(&response, &step, Some(repository)).await?;
            response = self.send(&step, self.authorize(head(), &fresh)).await?;
            *auth = Some(fresh);
        }
        match response.status() {
            StatusCode::OK => Ok(()),
            status @ (StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN) => {
                // NB: a HEAD answer has no body; the same request as a GET carries the error code.
                let get = self
                    .client
                    .get(manifest.clone())
                    .header(header::ACCEPT, MANIFEST_TYPES);
                let get = match auth.as_ref() {
                    Some(a) => self.authorize(get, a),
                    None => get,
                };
                let code = match get.send().await {
                    Ok(answer) if !answer.status().is_success() => error_code::read(answer).await,
                    _ => None,
                };
                Err(Outcome::unauthorized(
                    format!("the credential may not pull {probe}: {step} answered {status}"),
                    code,
                ))
            }
            StatusCode::NOT_FOUND => Err(Outcome::error(format!(
                "probe image {probe} not found: {step} answered 404"
            ))),
            status => Err(Outcome::error(format!("{step} answered {status}"))),
        }
    }

    /// Answers a 401 challenge: Basic needs nothing more, Bearer needs a token from the realm.
    async fn authenticate(
        &self,
        response: &Response,
        step: &str,
        repository: Option<&str>,
    ) -> Step<Authorization> {
        let headers = response.headers().get_all(header::WWW_AUTHENTICATE);
        let challenge = challenge::select(headers.iter().filter_map(|v| v.to_str().ok()))
            .map_err(|e| Outcome::error(format!("{step} answered 401 but {e}")))?;
        match challenge {
            Challenge::Basic { .. } => Ok(Authorization::Basic),
            Challenge::Bearer {
                realm,
                service,
                scope,
            } => {
                // A probe needs pull on its repository; otherwise ask for what the registry asked for.
                let scope = repository.map(|r| format!("repository:{r}:pull")).or(scope);
                self.token(&realm, service.as_deref(), scope.as_deref())
                    .await
                    .map(Authorization::Bearer)
            }
        }
    }

    /// Exchanges `user:password` for a token at the realm (distribution's token protocol).
    async fn token(&self, realm: &str, service: Option<&str>, scope: Option<&str>) -> Step<SecretString> {
        let mut url =
            Url::parse(realm).map_err(|_| Outcome::error(format!("token realm {realm:?} is not a URL")))?;
        if !self.http.permits(&url) {
            return Err(Outcome::error(format!(
                "token realm {realm} is not https and its host is not an insecure-http host; \
                 the credential was not sent"
            )));
        }
        let params: Vec<(&str, &str)> = [("service", service), ("scope", scope)]
            .into_iter()
            .filter_map(|(k, v)| Some((k, v?)))
            .collect();
        if !params.is_empty() {
            url.query_pairs_mut().extend_pairs(params);
        }
        let step = format!("token request to {realm}");
        let request = self
            .client
            .get(url)
            .basic_auth(&self.credential.username, Some(self.credential.password.expose()));
        let response = self.send(&step, request).await?;
        match response.status() {
            StatusCode::OK => {}
            s @ (StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN) => {
                let code = error_code::read(response).await;
                return Err(Outcome::unauthorized(format!("{step} was refused: {s}"), code));
            }
            s => return Err(Outcome::error(format!("{step} answered {s}"))),
        }
        // NB: the serde error is dropped on purpose, it can quote the body.
        let body: TokenResponse = response.json().await.map_err(|_| {
            Outcome::error(format!(
                "{step} answered 200 with a body that is not a token response"
            ))
        })?;
        body.into_token()
            .ok_or_else(|| Outcome::error(format!("{step} answered 200 without a token")))
    }

    fn authorize(&self, request: RequestBuilder, auth: &Authorization) -> RequestBuilder {
        // reqwest marks both headers sensitive, which keeps them out of its Debug output.
        match auth {
            Authorization::Basic => {
                request.basic_auth(&self.credential.username, Some(self.credential.password.expose()))
            }
            Authorization::Bearer(token) => request.bearer_auth(token.expose()),
        }
    }

    /// Sends a request, turning transport failures into `Unreachable` (or `Error` for the odd rest).
    async fn send(&self, step: &str, request: RequestBuilder) -> Step<Response> {
        let response = request
            .send()
            .await
            .map_err(|e| self.transport_failure(step, &e))?;
        tracing::debug!(registry = %self.credential.registry, step, status = %response.status(), "registry answered");
        Ok(response)
    }

    fn transport_failure(&self, step: &str, error: &reqwest::Error) -> Outcome {
        let target = error
            .url()
            .map(|u| format!(" ({})", strip_query(u)))
            .unwrap_or_default();
        if error.is_timeout() {
            return Outcome::unreachable(format!("{step}{target}: no answer within {:?}", self.timeout));
        }
        let reason = format!("{step}{target}: {}", causes(error));
        if error.is_connect() {
            Outcome::unreachable(reason)
        } else {
            Outcome::error(reason)
        }
    }

    /// Docker Hub's official images live under `library/`; everyone else's path is taken as written.
    fn repository_path(&self, probe: &ImageRef, base: &Url) -> String {
        if regcreds_core::reference::is_docker_hub(&endpoint::authority_of(base)) {
            probe.docker_hub_repository()
        } else {
            probe.repository().to_string()
        }
    }
}

/// The token endpoint's answer. Docker Hub sends both fields, others one of them.
#[derive(serde::Deserialize)]
struct TokenResponse {
    token: Option<String>,
    access_token: Option<String>,
}

impl TokenResponse {
    fn into_token(self) -> Option<SecretString> {
        [self.token, self.access_token]
            .into_iter()
            .flatten()
            .find(|t| !t.is_empty())
            .map(SecretString::new)
    }
}

async fn expect_ok(step: &str, response: Response) -> Step<()> {
    match response.status() {
        StatusCode::OK => Ok(()),
        status @ (StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN) => Err(Outcome::unauthorized(
            format!("registry refused the credential: {step} answered {status}"),
            error_code::read(response).await,
        )),
        status => Err(Outcome::error(format!("{step} answered {status}"))),
    }
}

fn join(base: &Url, path: &str) -> Step<Url> {
    base.join(path)
        .map_err(|_| Outcome::error(format!("cannot build a URL from {base} and {path}")))
}

fn strip_query(url: &Url) -> String {
    let mut url = url.clone();
    url.set_query(None);
    url.to_string()
}

/// The chain of causes below reqwest's own "error sending request" line, de-duplicated, on one line:
/// e.g. `client error (Connect): tcp connect error: Connection refused (os error 111)`.
fn causes(error: &reqwest::Error) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        let text = cause.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        source = cause.source();
    }
    if parts.is_empty() {
        error.to_string()
    } else {
        parts.join(": ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_response_may_use_either_field() {
        let parse = |json: &str| {
            serde_json::from_str::<TokenResponse>(json)
                .expect("json")
                .into_token()
                .map(|t| t.expose().to_string())
        };
        assert_eq!(parse(r#"{"token":"t1","expires_in":300}"#), Some("t1".into()));
        assert_eq!(parse(r#"{"access_token":"t2"}"#), Some("t2".into()));
        assert_eq!(parse(r#"{"token":"","access_token":"t3"}"#), Some("t3".into()));
        assert_eq!(parse(r#"{"expires_in":300}"#), None);
    }
}
