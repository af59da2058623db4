//! The app JWT that authenticates a GitHub App to the REST API.
//!
//! GitHub Docs, "Generating a JSON Web Token (JWT) for a GitHub App": RS256; `iat` 60 s in the past
//! against clock drift; `exp` no more than 10 minutes into the future; `iss` the App ID or client ID.
//! Here `exp` is 9 minutes ahead, so a clock running a minute fast is still accepted.

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use chrono::{DateTime, Utc};
use regcreds_core::SecretString;

use crate::key::AppKey;

const HEADER: &str = r#"{"alg":"RS256","typ":"JWT"}"#;
/// How far `iat` is backdated.
pub(crate) const BACKDATE_SECS: i64 = 60;
/// How far `exp` is ahead of now (GitHub's limit is 600).
pub(crate) const LIFETIME_SECS: i64 = 540;

/// The issuer: a numeric App ID is sent as a JSON number, a client ID (`Iv23li…`) as a string.
#[derive(serde::Serialize)]
#[serde(untagged)]
enum Issuer<'a> {
    AppId(u64),
    ClientId(&'a str),
}

#[derive(serde::Serialize)]
struct Claims<'a> {
    iat: i64,
    exp: i64,
    iss: Issuer<'a>,
}

/// `header.claims.signature` for app `app_id`, or `None` if signing fails (a key aws-lc-rs accepted
/// does not fail).
pub(crate) fn signed(key: &AppKey, app_id: &str, now: DateTime<Utc>) -> Option<SecretString> {
    let iss = app_id
        .parse::<u64>()
        .map_or(Issuer::ClientId(app_id), Issuer::AppId);
    let claims = Claims {
        iat: now.timestamp() - BACKDATE_SECS,
        exp: now.timestamp() + LIFETIME_SECS,
        iss,
    };
    let payload = serde_json::to_vec(&claims).ok()?;
    let signing_input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(HEADER),
        URL_SAFE_NO_PAD.encode(payload)
    );
    let signature = key.sign(signing_input.as_bytes())?;
    Some(SecretString::new(format!(
        "{signing_input}.{}",
        URL_SAFE_NO_PAD.encode(signature)
    )))
}

#[cfg(test)]
mod tests {
    use aws_lc_rs::signature::{RSA_PKCS1_2048_8192_SHA256, UnparsedPublicKey};

    use super::*;

    /// A 2048-bit PKCS#1 key generated for this test only (`openssl genrsa -traditional 2048`).
    const TEST_KEY: &str = include_str!("../tests/fixtures/test-app-key.pem");

    fn part(jwt: &str, i: usize) -> Vec<u8> {
        URL_SAFE_NO_PAD
            .decode(jwt.split('.').nth(i).expect("part"))
            .expect("base64url")
    }

    #[test]
    fn claims_follow_githubs_rules_and_the_signature_verifies() {
        let key = AppKey::from_pem(TEST_KEY).expect("test key");
        let now = DateTime::from_timestamp(1_800_000_000, 0).expect("time");
        let jwt = signed(&key, "123456", now).expect("signed");
        let jwt = jwt.expose();

        let header: serde_json::Value = serde_json::from_slice(&part(jwt, 0)).expect("header");
        assert_eq!(header["alg"], "RS256");
        let claims: serde_json::Value = serde_json::from_slice(&part(jwt, 1)).expect("claims");
        assert_eq!(claims["iss"], 123_456, "a numeric App ID is a number");
        assert_eq!(claims["iat"], 1_800_000_000 - 60);
        assert_eq!(claims["exp"], 1_800_000_000 + 540);

        let (signed_part, _) = jwt.rsplit_once('.').expect("signature");
        UnparsedPublicKey::new(&RSA_PKCS1_2048_8192_SHA256, key.public_key())
            .verify(signed_part.as_bytes(), &part(jwt, 2))
            .expect("RS256 signature verifies with the public key");
    }

    #[test]
    fn a_client_id_is_sent_as_a_string() {
        let key = AppKey::from_pem(TEST_KEY).expect("test key");
        let jwt = signed(&key, "Iv23liABCDEF", Utc::now()).expect("signed");
        let claims: serde_json::Value = serde_json::from_slice(&part(jwt.expose(), 1)).expect("claims");
        assert_eq!(claims["iss"], "Iv23liABCDEF");
    }
}
