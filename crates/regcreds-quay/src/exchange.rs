//! `GET <quay>/oauth2/federation/robot/token` with Basic `<robot>:<ServiceAccount JWT>`: the pod's
//! identity in, a short-lived robot token out.
//!
//! Quay (quay/quay) answers `200 {"token": "<JWT>"}`. Refusals come in three shapes:
//! - `401 {"error": "<why>"}` from the endpoint itself (`endpoints/oauth/robot_identity_federation.py`)
//!   when the Basic header is missing or unparsable or the user is not a robot (`Invalid robot`);
//! - `400 {"message": "<why>"}` for everything the federation check raises
//!   (`util/security/federated_robot_auth.py` and `oauth/oidc.py` raise model exceptions, which
//!   `endpoints/decorated.py` `handle_dme` turns into 400): unknown robot, no federation, issuer not
//!   configured, missing `kid`, an algorithm other than RS256/RS384, a bad signature, an expired token,
//!   an audience not listed, a subject that does not match;
//! - `500` (Flask's HTML page) when verification itself fails, e.g. a token that is not a JWT, or an
//!   issuer whose OIDC discovery document or keys Quay cannot fetch over HTTPS.
//!
//! The reason is shown (`message`, else `error_description`, else `error`), never the token, with a hint
//! for each message Quay is known to send.

use chrono::{DateTime, Duration, Utc};
use regcreds_core::SecretString;
use regcreds_token_endpoint::{MintStep, jwt, server_message, status_is_transient};

use crate::{ASSUMED_TOKEN_LIFETIME_SECS, PROVIDER_NAME};

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

/// Quay's error bodies: `{"message"}` (400, `handle_dme`), `{"error"}` (401); `error_description` as
/// OAuth servers and proxies in front of Quay send it.
#[derive(serde::Deserialize)]
struct ErrorReply {
    message: Option<String>,
    error_description: Option<String>,
    error: Option<String>,
}

impl Exchange {
    pub(crate) fn new(http: reqwest::Client, url: String, robot: String) -> Self {
        Self { http, url, robot }
    }

    /// The same endpoint for another robot (a pod's, named by its ServiceAccount's annotation).
    pub(crate) fn for_robot(&self, robot: String) -> Self {
        Self {
            robot,
            ..self.clone()
        }
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
        let step = self.step();
        let received = Utc::now();
        let response = self
            .http
            .get(&self.url)
            .basic_auth(&self.robot, Some(service_account_token.expose()))
            .header("Accept", "application/json")
            .send()
            .await
            .map_err(|e| step.request_failed(&e))?;
        let status = response.status().as_u16();
        let body = response.bytes().await.map_err(|e| step.request_failed(&e))?;
        if !(200..300).contains(&status) {
            return Err(self.refused(status, &body, service_account_token));
        }
        let token = serde_json::from_slice::<Reply>(&body).ok().and_then(|r| r.token);
        let Some(token) = token.filter(|t| !t.is_empty()) else {
            return Err(step.failed(true, "malformed reply: no token"));
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
        let reason = serde_json::from_slice::<ErrorReply>(body)
            .ok()
            .and_then(|r| r.message.or(r.error_description).or(r.error));
        let shown = server_message(reason.as_deref(), service_account_token.expose());
        let quoted = shown.as_ref().map(|m| format!(" {m:?}")).unwrap_or_default();
        // NB: the hint is chosen from the message actually shown: one that quoted the token is withheld.
        let hint = hint(status, shown.as_deref(), &self.robot)
            .map(|h| format!(": {h}"))
            .unwrap_or_default();
        self.step().failed(
            status_is_transient(status),
            &format!("HTTP {status}{quoted}{hint}"),
        )
    }

    fn step(&self) -> MintStep {
        MintStep::new(
            PROVIDER_NAME,
            format!("robot federation for {} at {}", self.robot, self.url),
        )
    }
}

/// What to do about a refusal: one hint per message Quay is known to send (see the module docs), a
/// general one for other 4xx, and the usual cause of a 500.
fn hint(status: u16, message: Option<&str>, robot: &str) -> Option<String> {
    let refused = format!("Quay refused the ServiceAccount token for {robot}");
    let message = message.unwrap_or_default();
    let known = KNOWN_REFUSALS
        .iter()
        .find(|(pattern, _)| message.contains(pattern))
        .map(|(_, why)| *why)
        .or_else(|| {
            (message.starts_with("issuer ") && message.ends_with("not configured for this robot"))
                .then_some(ISSUER_NOT_FEDERATED)
        });
    match (known, status) {
        (Some(why), _) => Some(format!("{refused}: {why}")),
        (None, 500..=599) => Some(format!(
            "Quay failed while checking the ServiceAccount token for {robot}; a frequent cause is an issuer \
             whose OIDC discovery document (<issuer>/.well-known/openid-configuration) or keys Quay cannot \
             fetch over HTTPS"
        )),
        (None, 400..=499) => Some(format!(
            "{refused} (is the robot federated with this cluster's issuer and this ServiceAccount as subject?)"
        )),
        _ => None,
    }
}

const ISSUER_NOT_FEDERATED: &str = "the robot's federation has no entry for the token's issuer: add this \
     cluster's ServiceAccount issuer (the token's iss, as in kubectl get --raw /.well-known/openid-configuration)";

/// Quay's messages (quay/quay `util/security/federated_robot_auth.py`, `data/model/user.py`,
/// `oauth/oidc.py`; PyJWT 2.x for the "Invalid token: ..." texts) and what each means here.
const KNOWN_REFUSALS: &[(&str, &str)] = &[
    (
        "Could not find robot with specified username",
        "no such robot on this Quay: check the robot name (<organization>+<robot>) and the Quay host",
    ),
    (
        "Invalid robot",
        "the user must be a robot, <organization>+<robot>",
    ),
    (
        "Robot does not have federated login configured",
        "the robot has no federation: add an entry with this cluster's ServiceAccount issuer and the \
         subject system:serviceaccount:<namespace>:<ServiceAccount> of regcreds",
    ),
    (
        "Token does not contain issuer",
        "the token has no iss claim: the token file must hold a projected ServiceAccount token",
    ),
    (
        "Missing `kid` header",
        "Quay needs a kid in the token's header, which Kubernetes ServiceAccount tokens carry: the token \
         file must hold a projected ServiceAccount token",
    ),
    (
        "The specified alg value is not allowed",
        "Quay accepts RS256 or RS384 signatures only: the cluster must sign ServiceAccount tokens with an \
         RSA key",
    ),
    (
        "Signature verification failed",
        "the signature does not match the issuer's keys as Quay fetched them from the issuer's OIDC \
         discovery document (served over HTTPS, listing the current signing key)",
    ),
    (
        "Signature has expired",
        "the token has expired: is kubelet still refreshing the projected token, and are the clocks right?",
    ),
    (
        "The token is not yet valid",
        "the token is not valid yet: check the clocks of the cluster and of Quay",
    ),
    (
        "Audience doesn't match",
        "the robot's federation entry lists audiences and the token's aud is none of them: set the projected \
         token's audience (chart value providers.quay.audience; in plugin token mode \
         kubeletPlugin.tokenAttributes.serviceAccountTokenAudience) to one of them",
    ),
    (
        "Token is missing the \"aud\" claim",
        "the robot's federation entry lists audiences and the token has none: give the projected token an \
         audience the entry lists (chart value providers.quay.audience; in plugin token mode \
         kubeletPlugin.tokenAttributes.serviceAccountTokenAudience)",
    ),
    (
        "Token is missing the",
        "the token lacks iat or exp: the token file must hold a projected ServiceAccount token",
    ),
    (
        "Token does not match robot",
        "the token's subject is not the one federated: the robot's federation entry must name \
         system:serviceaccount:<namespace>:<ServiceAccount> of the pod whose token this is (regcreds' own; in \
         plugin token mode, the pulling pod's)",
    ),
];

#[cfg(test)]
mod tests {
    use super::*;

    const ROBOT: &str = "myorg+puller";
    const TOKEN: &str =
        "eyJhbGciOiJSUzI1NiIsImtpZCI6ImsxIn0.eyJzdWIiOiJzeXN0ZW06c2VydmljZWFjY291bnQ6YTpiIn0.c2ln";

    fn refused(status: u16, body: &str) -> regcreds_core::Error {
        let exchange = Exchange::new(
            reqwest::Client::new(),
            "https://quay.io/oauth2/federation/robot/token".into(),
            ROBOT.into(),
        );
        exchange.refused(status, body.as_bytes(), &SecretString::new(TOKEN))
    }

    fn after_status(err: &regcreds_core::Error) -> String {
        let text = err.to_string();
        let at = text.find("HTTP ").expect("status");
        text[at..].to_string()
    }

    #[test]
    fn quays_400_message_is_shown_with_its_hint_and_is_permanent() {
        let err = refused(400, r#"{"message": "Token does not match robot"}"#);
        assert!(!err.is_transient());
        assert_eq!(
            after_status(&err),
            "HTTP 400 \"Token does not match robot\": Quay refused the ServiceAccount token for myorg+puller: \
             the token's subject is not the one federated: the robot's federation entry must name \
             system:serviceaccount:<namespace>:<ServiceAccount> of the pod whose token this is (regcreds' own; in \
             plugin token mode, the pulling pod's)"
        );
    }

    #[test]
    fn every_known_quay_message_gets_its_own_hint() {
        let cases = [
            ("Could not find robot with specified username", "no such robot"),
            (
                "Robot does not have federated login configured",
                "the robot has no federation",
            ),
            ("Token does not contain issuer", "no iss claim"),
            (
                "issuer https://oidc.example/cluster not configured for this robot",
                "no entry for the token's issuer",
            ),
            ("Invalid token: Missing `kid` header", "needs a kid"),
            (
                "Invalid token: The specified alg value is not allowed",
                "RS256 or RS384",
            ),
            (
                "Invalid token: Signature verification failed",
                "OIDC discovery document",
            ),
            ("Invalid token: Signature has expired", "the token has expired"),
            (
                "Invalid token: The token is not yet valid (iat)",
                "check the clocks",
            ),
            ("Invalid token: Audience doesn't match", "providers.quay.audience"),
            (
                "Invalid token: Token is missing the \"aud\" claim",
                "the token has none",
            ),
            (
                "Invalid token: Token is missing the \"exp\" claim",
                "lacks iat or exp",
            ),
            ("Token does not match robot", "subject is not the one federated"),
        ];
        for (message, hint) in cases {
            let body = serde_json::json!({ "message": message }).to_string();
            let err = refused(400, &body);
            assert!(!err.is_transient(), "{message}");
            let text = after_status(&err);
            assert!(
                text.starts_with(&format!("HTTP 400 {message:?}: Quay refused")),
                "{text}"
            );
            assert!(text.contains(hint), "{message}: {text}");
        }
    }

    #[test]
    fn the_endpoints_own_401_error_is_shown_too() {
        let err = refused(401, r#"{"error": "Invalid robot"}"#);
        assert!(!err.is_transient());
        assert_eq!(
            after_status(&err),
            "HTTP 401 \"Invalid robot\": Quay refused the ServiceAccount token for myorg+puller: the user \
             must be a robot, <organization>+<robot>"
        );
        let err = refused(
            403,
            r#"{"error": "access_denied", "error_description": "blocked by proxy"}"#,
        );
        assert_eq!(
            after_status(&err),
            "HTTP 403 \"blocked by proxy\": Quay refused the ServiceAccount token for myorg+puller (is the \
             robot federated with this cluster's issuer and this ServiceAccount as subject?)"
        );
    }

    #[test]
    fn a_500_is_transient_and_points_at_the_issuers_discovery() {
        let err = refused(500, "<!doctype html><title>500 Internal Server Error</title>");
        assert!(err.is_transient());
        assert!(
            after_status(&err).starts_with(
                "HTTP 500: Quay failed while checking the ServiceAccount token for myorg+puller; a frequent \
                 cause is an issuer whose OIDC discovery document"
            ),
            "{err}"
        );
        let err = refused(500, r#"{"message": "Internal error"}"#);
        assert!(
            after_status(&err).starts_with("HTTP 500 \"Internal error\": Quay failed"),
            "{err}"
        );
    }

    #[test]
    fn a_message_quoting_the_token_is_withheld_with_its_hint() {
        let body =
            serde_json::json!({ "message": format!("Token does not match robot: {TOKEN}") }).to_string();
        let err = refused(400, &body);
        let text = err.to_string();
        assert!(!text.contains(&TOKEN[..20]), "{text}");
        assert_eq!(
            after_status(&err),
            "HTTP 400: Quay refused the ServiceAccount token for myorg+puller (is the robot federated with \
             this cluster's issuer and this ServiceAccount as subject?)"
        );
    }
}
