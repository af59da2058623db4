//! Turning one `authorizationData` entry into a [`Credential`].
//!
//! `authorizationToken` is `base64("AWS:<password>")`; the password's length is not fixed and may in
//! principle contain ':', so the split is on the first ':' only.

use base64::{Engine, engine::general_purpose::STANDARD};
use chrono::{DateTime, Utc};
use regcreds_core::{Credential, RegistryHost, SecretString};

/// Why an entry could not be used. Never quotes the token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum TokenError {
    #[error("authorizationToken is missing")]
    MissingToken,
    #[error("authorizationToken is not valid base64")]
    NotBase64,
    #[error("authorizationToken is not \"user:password\" text")]
    NotUserPassword,
    #[error("expiresAt is missing or out of range")]
    BadExpiry,
    #[error("proxyEndpoint {0:?} is not a registry: {1}")]
    BadEndpoint(String, regcreds_core::RegistryHostError),
}

/// The raw fields of an entry, shared by ECR and ECR Public (whose SDK types differ).
pub(crate) struct Entry<'a> {
    pub(crate) token: Option<&'a str>,
    pub(crate) expires_at: Option<&'a aws_sdk_ecr::primitives::DateTime>,
    pub(crate) registry: &'a str,
}

impl Entry<'_> {
    /// A credential for `registry` with the decoded user and password and the entry's expiry.
    pub(crate) fn into_credential(self) -> Result<Credential, TokenError> {
        let registry = RegistryHost::parse(self.registry)
            .map_err(|e| TokenError::BadEndpoint(self.registry.to_string(), e))?;
        let (username, password) = decode(self.token.ok_or(TokenError::MissingToken)?)?;
        let expires_at = self.expires_at.and_then(to_chrono).ok_or(TokenError::BadExpiry)?;
        Ok(Credential::new(registry, username, password).expiring_at(expires_at))
    }
}

/// Splits `base64("user:password")` into user and password.
fn decode(token: &str) -> Result<(String, SecretString), TokenError> {
    let bytes = STANDARD.decode(token.trim()).map_err(|_| TokenError::NotBase64)?;
    let text = String::from_utf8(bytes).map_err(|_| TokenError::NotUserPassword)?;
    match text.split_once(':') {
        Some((user, password)) if !user.is_empty() && !password.is_empty() => {
            Ok((user.to_string(), SecretString::new(password)))
        }
        _ => Err(TokenError::NotUserPassword),
    }
}

fn to_chrono(time: &aws_sdk_ecr::primitives::DateTime) -> Option<DateTime<Utc>> {
    DateTime::from_timestamp(time.secs(), time.subsec_nanos())
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_ecr::primitives::DateTime as AwsTime;

    fn entry<'a>(token: &'a str, expiry: &'a AwsTime) -> Entry<'a> {
        Entry {
            token: Some(token),
            expires_at: Some(expiry),
            registry: "https://123456789012.dkr.ecr.eu-west-1.amazonaws.com",
        }
    }

    #[test]
    fn splits_the_token_on_the_first_colon_and_keeps_the_expiry() {
        let expiry = AwsTime::from_fractional_secs(1_795_437_181, 0.5);
        let token = STANDARD.encode("AWS:pass:with:colons");
        let credential = entry(&token, &expiry).into_credential().expect("valid");
        assert_eq!(credential.username, "AWS");
        assert_eq!(credential.password.expose(), "pass:with:colons");
        assert_eq!(
            credential.registry.as_str(),
            "https://123456789012.dkr.ecr.eu-west-1.amazonaws.com"
        );
        let expires = credential.expires_at.expect("expiry");
        assert_eq!(expires.timestamp(), 1_795_437_181);
        assert_eq!(expires.timestamp_subsec_millis(), 500);
    }

    #[test]
    fn a_broken_token_is_reported_without_its_content() {
        let expiry = AwsTime::from_secs(1_795_437_181);
        assert_eq!(
            entry("%%%not-base64-secret", &expiry).into_credential().err(),
            Some(TokenError::NotBase64)
        );
        let no_colon = STANDARD.encode("AWSsecretpw");
        let err = entry(&no_colon, &expiry).into_credential().expect_err("no colon");
        assert_eq!(err, TokenError::NotUserPassword);
        assert!(!err.to_string().contains("secretpw"));
    }

    #[test]
    fn a_missing_expiry_or_token_is_an_error() {
        let token = STANDARD.encode("AWS:pw");
        let no_expiry = Entry {
            token: Some(&token),
            expires_at: None,
            registry: "public.ecr.aws",
        };
        assert_eq!(no_expiry.into_credential().err(), Some(TokenError::BadExpiry));
        let expiry = AwsTime::from_secs(1);
        let no_token = Entry {
            token: None,
            expires_at: Some(&expiry),
            registry: "public.ecr.aws",
        };
        assert_eq!(no_token.into_credential().err(), Some(TokenError::MissingToken));
    }
}
