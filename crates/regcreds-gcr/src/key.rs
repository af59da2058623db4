//! Validating a service-account key JSON and keeping what the token request needs.
//!
//! Checks run in the order a person would fix them (JSON, type, key, e-mail, token URI), so the first
//! error is the most useful one. Values are never quoted: serde_json is only asked for positions.

use gcp_auth::CustomServiceAccount;
use serde_json::{Map, Value};

use crate::KeyError;

/// A validated key: gcp_auth holds the parsed PKCS#8 key and signs with it.
pub(crate) struct ServiceAccountKey {
    pub(crate) client_email: String,
    pub(crate) token_uri: String,
    pub(crate) account: CustomServiceAccount,
}

impl std::fmt::Debug for ServiceAccountKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServiceAccountKey")
            .field("client_email", &self.client_email)
            .field("token_uri", &self.token_uri)
            .finish_non_exhaustive()
    }
}

/// Parses and validates `json`.
pub(crate) fn parse(json: &str) -> Result<ServiceAccountKey, KeyError> {
    let value: Value = serde_json::from_str(json).map_err(|e| KeyError::NotJson {
        line: e.line(),
        column: e.column(),
    })?;
    let object = value.as_object().ok_or(KeyError::NotAnObject)?;
    match object.get("type") {
        None => {}
        Some(Value::String(kind)) if kind == "service_account" => {}
        Some(Value::String(kind)) => {
            return Err(KeyError::NotServiceAccount(kind.chars().take(40).collect()));
        }
        Some(_) => return Err(KeyError::NotAString("type")),
    }
    let private_key = string_field(object, "private_key")?;
    if private_key.contains("BEGIN RSA PRIVATE KEY") {
        return Err(KeyError::Pkcs1Key);
    }
    if !private_key.contains("BEGIN PRIVATE KEY") {
        return Err(KeyError::InvalidPrivateKey);
    }
    let client_email = string_field(object, "client_email")?;
    if !is_email(client_email) {
        return Err(KeyError::InvalidClientEmail);
    }
    let token_uri = string_field(object, "token_uri")?;
    if !regcreds_core::is_http_url(token_uri) {
        return Err(KeyError::InvalidTokenUri(token_uri.to_string()));
    }
    // NB: the fields above are fine, so a failure here is the key itself (bad DER, not RSA), unless
    // gcp_auth's own HTTP client cannot start.
    let account = CustomServiceAccount::from_json(json).map_err(|e| match e {
        gcp_auth::Error::Io(what, _) => KeyError::Loader(what),
        _ => KeyError::InvalidPrivateKey,
    })?;
    Ok(ServiceAccountKey {
        client_email: client_email.to_string(),
        token_uri: token_uri.to_string(),
        account,
    })
}

fn string_field<'a>(object: &'a Map<String, Value>, field: &'static str) -> Result<&'a str, KeyError> {
    match object.get(field) {
        None | Some(Value::Null) => Err(KeyError::MissingField(field)),
        Some(Value::String(s)) if s.trim().is_empty() => Err(KeyError::MissingField(field)),
        Some(Value::String(s)) => Ok(s.trim()),
        Some(_) => Err(KeyError::NotAString(field)),
    }
}

fn is_email(value: &str) -> bool {
    matches!(value.split_once('@'), Some((user, domain)) if !user.is_empty() && domain.contains('.'))
        && !value.contains(char::is_whitespace)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A key whose `private_key` is `pem`; other fields valid.
    fn key_json(pem: &str) -> serde_json::Value {
        serde_json::json!({
            "type": "service_account",
            "project_id": "p",
            "private_key": pem,
            "client_email": "puller@p.iam.gserviceaccount.com",
            "token_uri": "https://oauth2.googleapis.com/token",
        })
    }

    const PKCS8_PLACEHOLDER: &str =
        "-----BEGIN PRIVATE KEY-----\nc2VjcmV0LWtleS1ieXRlcw==\n-----END PRIVATE KEY-----\n";

    fn parse_value(value: &serde_json::Value) -> Result<ServiceAccountKey, KeyError> {
        parse(&value.to_string())
    }

    #[test]
    fn broken_json_reports_only_the_position() {
        let err = parse("{\"private_key\": \"-----BEGIN PRIVATE KEY-----secret").expect_err("not JSON");
        assert!(matches!(err, KeyError::NotJson { line: 1, .. }));
        assert!(!err.to_string().contains("secret"), "{err}");
        assert_eq!(parse("[1]").err(), Some(KeyError::NotAnObject));
    }

    #[test]
    fn other_credential_types_are_named_with_a_hint() {
        let mut value = key_json(PKCS8_PLACEHOLDER);
        value["type"] = "external_account".into();
        let err = parse_value(&value).expect_err("WIF config");
        assert_eq!(err, KeyError::NotServiceAccount("external_account".into()));
        assert!(err.to_string().contains("workload identity federation"), "{err}");
    }

    #[test]
    fn each_missing_field_is_named() {
        for field in ["private_key", "client_email", "token_uri"] {
            let mut value = key_json(PKCS8_PLACEHOLDER);
            value.as_object_mut().expect("object").remove(field);
            assert_eq!(
                parse_value(&value).err(),
                Some(KeyError::MissingField(field)),
                "{field}"
            );
        }
        let mut value = key_json(PKCS8_PLACEHOLDER);
        value["client_email"] = 42.into();
        assert_eq!(
            parse_value(&value).err(),
            Some(KeyError::NotAString("client_email"))
        );
    }

    #[test]
    fn a_pkcs1_key_is_recognised_and_not_echoed() {
        let pkcs1 =
            "-----BEGIN RSA PRIVATE KEY-----\nc2VjcmV0LWtleS1ieXRlcw==\n-----END RSA PRIVATE KEY-----\n";
        let err = parse_value(&key_json(pkcs1)).expect_err("PKCS#1");
        assert_eq!(err, KeyError::Pkcs1Key);
        assert!(!err.to_string().contains("c2VjcmV0"), "{err}");
    }

    #[test]
    fn a_key_that_is_not_pem_or_not_rsa_is_invalid() {
        assert_eq!(
            parse_value(&key_json("not a key")).err(),
            Some(KeyError::InvalidPrivateKey)
        );
        // PEM-shaped but garbage DER: only gcp_auth's parser can tell.
        assert_eq!(
            parse_value(&key_json(PKCS8_PLACEHOLDER)).err(),
            Some(KeyError::InvalidPrivateKey)
        );
    }

    #[test]
    fn a_bad_client_email_or_token_uri_is_rejected() {
        let mut value = key_json(PKCS8_PLACEHOLDER);
        value["client_email"] = "puller".into();
        assert_eq!(parse_value(&value).err(), Some(KeyError::InvalidClientEmail));
        let mut value = key_json(PKCS8_PLACEHOLDER);
        value["token_uri"] = "oauth2.googleapis.com/token".into();
        assert_eq!(
            parse_value(&value).err(),
            Some(KeyError::InvalidTokenUri("oauth2.googleapis.com/token".into()))
        );
    }
}
