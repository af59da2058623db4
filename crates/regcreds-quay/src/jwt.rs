//! Reading a JWT's `exp` without verifying it: the robot token is ours to forward, not to trust, and
//! its expiry only schedules the next mint. Also tells whether a file holds a JWT at all.

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use chrono::{DateTime, Utc};

/// Whether `text` has the shape of a compact JWT (three base64url parts, a JSON header).
pub(crate) fn looks_like_jwt(text: &str) -> bool {
    let parts: Vec<&str> = text.split('.').collect();
    parts.len() == 3
        && parts.iter().all(|p| !p.is_empty())
        && URL_SAFE_NO_PAD
            .decode(parts[0].trim_end_matches('='))
            .ok()
            .and_then(|h| serde_json::from_slice::<serde_json::Value>(&h).ok())
            .is_some_and(|h| h.is_object())
}

/// The `exp` claim of a compact JWT, or `None` if it is not a JWT with a numeric `exp`.
pub(crate) fn expiry(token: &str) -> Option<DateTime<Utc>> {
    let payload = token.split('.').nth(1)?;
    // NB: some issuers pad base64url; the padding carries no data.
    let bytes = URL_SAFE_NO_PAD.decode(payload.trim_end_matches('=')).ok()?;
    let claims: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    let exp = claims.get("exp")?;
    let seconds = exp.as_i64().or_else(|| exp.as_f64().map(|f| f as i64))?;
    DateTime::from_timestamp(seconds, 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jwt(claims: &str) -> String {
        format!(
            "eyJhbGciOiJSUzI1NiJ9.{}.c2lnbmF0dXJl",
            URL_SAFE_NO_PAD.encode(claims)
        )
    }

    #[test]
    fn reads_exp_without_a_signature_check() {
        let expiry = expiry(&jwt(r#"{"exp":1795437181,"iat":1795426381}"#)).expect("exp");
        assert_eq!(expiry.timestamp(), 1_795_437_181);
    }

    #[test]
    fn a_float_exp_and_padded_payload_are_accepted() {
        let padded = format!("h.{}==.s", URL_SAFE_NO_PAD.encode(r#"{"exp":1795437181.9}"#));
        assert_eq!(expiry(&padded).map(|t| t.timestamp()), Some(1_795_437_181));
    }

    #[test]
    fn a_service_account_token_looks_like_a_jwt_and_a_certificate_does_not() {
        assert!(looks_like_jwt(&jwt(
            r#"{"iss":"https://kubernetes.default.svc"}"#
        )));
        assert!(!looks_like_jwt("-----BEGIN CERTIFICATE-----"));
        assert!(!looks_like_jwt("a.b"));
        assert!(!looks_like_jwt("bm90IGpzb24.e30.c2ln"));
    }

    #[test]
    fn tokens_without_a_usable_exp_give_none() {
        assert_eq!(expiry("opaque-refresh-token"), None);
        assert_eq!(expiry(&jwt(r#"{"iat":1}"#)), None);
        assert_eq!(expiry(&jwt(r#"{"exp":"soon"}"#)), None);
        assert_eq!(expiry("a.!!!.c"), None);
    }
}
