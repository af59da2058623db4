//! The RFC 7523 JWT a service account presents to its `token_uri`.

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use chrono::{DateTime, Utc};

use crate::key::ServiceAccountKey;

const HEADER: &str = r#"{"alg":"RS256","typ":"JWT"}"#;
/// Google accepts assertions valid for at most an hour.
const LIFETIME_SECS: i64 = 3600;

#[derive(serde::Serialize)]
struct Claims<'a> {
    iss: &'a str,
    scope: String,
    aud: &'a str,
    iat: i64,
    exp: i64,
}

/// `header.claims.signature`, signed with the key's RSA key (RS256). `None` only if signing fails,
/// which a key that gcp_auth accepted does not do.
pub(crate) fn signed(key: &ServiceAccountKey, scopes: &[String], now: DateTime<Utc>) -> Option<String> {
    let iat = now.timestamp();
    let claims = Claims {
        iss: &key.client_email,
        scope: scopes.join(" "),
        aud: &key.token_uri,
        iat,
        exp: iat + LIFETIME_SECS,
    };
    let payload = serde_json::to_vec(&claims).ok()?;
    let signing_input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(HEADER),
        URL_SAFE_NO_PAD.encode(payload)
    );
    let signature = key.account.signer().sign(signing_input.as_bytes()).ok()?;
    Some(format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(signature)))
}
