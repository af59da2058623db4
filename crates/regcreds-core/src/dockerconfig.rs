//! Parsing and validating user-supplied `.dockerconfigjson`.
//!
//! Every error names *where* the problem is (`auths["ghcr.io"].auth`) and *what* it is, and never
//! quotes a value: serde_json's own messages can contain the offending string, which may be a password,
//! so only its line and column are kept.

use std::collections::BTreeMap;

use base64::{Engine, engine::general_purpose::STANDARD};
use serde_json::{Map, Value};

use crate::{Credential, CredentialSet, RegistryHost, RegistryHostError, SecretString};

/// Kubernetes refuses objects over 1 MiB; a larger dockerconfigjson can never become a Secret.
pub const MAX_DOCKERCONFIG_BYTES: usize = 1024 * 1024;

/// What is wrong with a dockerconfigjson. Registry keys are echoed (they are not secret); values are not.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DockerConfigError {
    /// The input is empty or only whitespace.
    #[error("is empty")]
    Empty,
    /// The input is larger than any Kubernetes Secret can be.
    #[error("is {size} bytes, larger than the {limit}-byte limit of a Kubernetes Secret")]
    TooLarge {
        /// Input size in bytes.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// The input is not valid JSON.
    #[error("is not valid JSON (syntax error at line {line}, column {column})")]
    MalformedJson {
        /// 1-based line of the syntax error.
        line: usize,
        /// 1-based column of the syntax error.
        column: usize,
    },
    /// The top level is not a JSON object.
    #[error("must be a JSON object like {{\"auths\":{{...}}}}, found {found}")]
    NotAnObject {
        /// The JSON type found instead.
        found: &'static str,
    },
    /// No `auths` key at the top level.
    #[error("has no \"auths\" object at the top level (expected {{\"auths\":{{\"<registry>\":{{...}}}}}})")]
    MissingAuths,
    /// `auths` is not an object.
    #[error("\"auths\" must be an object keyed by registry, found {found}")]
    AuthsNotObject {
        /// The JSON type found instead.
        found: &'static str,
    },
    /// `auths` has no entries.
    #[error("\"auths\" is empty: at least one registry is needed")]
    EmptyAuths,
    /// A key of `auths` is not a usable registry.
    #[error("auths key: {0}")]
    InvalidRegistry(#[source] RegistryHostError),
    /// An `auths` entry is not an object.
    #[error("auths[{registry:?}] must be an object, found {found}")]
    EntryNotObject {
        /// The registry key.
        registry: String,
        /// The JSON type found instead.
        found: &'static str,
    },
    /// A field that must be a string is not.
    #[error("auths[{registry:?}].{field} must be a string, found {found}")]
    FieldNotString {
        /// The registry key.
        registry: String,
        /// The field name.
        field: &'static str,
        /// The JSON type found instead.
        found: &'static str,
    },
    /// `auth` is not valid base64.
    #[error("auths[{registry:?}].auth is not valid base64")]
    AuthNotBase64 {
        /// The registry key.
        registry: String,
    },
    /// `auth` decodes to bytes that are not UTF-8.
    #[error("auths[{registry:?}].auth does not decode to UTF-8 text")]
    AuthNotUtf8 {
        /// The registry key.
        registry: String,
    },
    /// `auth` has no `:` between user and password.
    #[error("auths[{registry:?}].auth must decode to \"username:password\" but has no ':'")]
    AuthMissingColon {
        /// The registry key.
        registry: String,
    },
    /// The user name is empty.
    #[error("auths[{registry:?}] has an empty username")]
    EmptyUsername {
        /// The registry key.
        registry: String,
    },
    /// The password is empty or missing.
    #[error("auths[{registry:?}] has no password (set \"password\" or \"auth\")")]
    MissingPassword {
        /// The registry key.
        registry: String,
    },
    /// Neither `auth` nor `username`/`password` is present.
    #[error("auths[{registry:?}] has neither \"auth\" nor \"username\"/\"password\"")]
    MissingCredentials {
        /// The registry key.
        registry: String,
    },
    /// `auth` and `username`/`password` disagree; kubelet would silently use `auth`.
    #[error(
        "auths[{registry:?}]: \"auth\" and \"username\"/\"password\" disagree (kubelet would use \"auth\")"
    )]
    AuthMismatch {
        /// The registry key.
        registry: String,
    },
}

/// A validated dockerconfigjson, turned into the credentials it holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DockerConfig {
    credentials: CredentialSet,
}

impl DockerConfig {
    /// Parses and validates `{"auths":{"<registry>":{"username","password"|"auth",...}}}`.
    pub fn parse(input: &[u8]) -> Result<Self, DockerConfigError> {
        if input.len() > MAX_DOCKERCONFIG_BYTES {
            return Err(DockerConfigError::TooLarge {
                size: input.len(),
                limit: MAX_DOCKERCONFIG_BYTES,
            });
        }
        if input.iter().all(u8::is_ascii_whitespace) {
            return Err(DockerConfigError::Empty);
        }
        let value: Value = serde_json::from_slice(input).map_err(|e| DockerConfigError::MalformedJson {
            line: e.line(),
            column: e.column(),
        })?;
        let top = value.as_object().ok_or(DockerConfigError::NotAnObject {
            found: type_name(&value),
        })?;
        let auths = top.get("auths").ok_or(DockerConfigError::MissingAuths)?;
        let auths = auths.as_object().ok_or(DockerConfigError::AuthsNotObject {
            found: type_name(auths),
        })?;
        if auths.is_empty() {
            return Err(DockerConfigError::EmptyAuths);
        }
        let credentials = auths
            .iter()
            .collect::<BTreeMap<_, _>>()
            .into_iter()
            .map(|(key, entry)| parse_entry(key, entry))
            .collect::<Result<CredentialSet, _>>()?;
        Ok(Self { credentials })
    }

    /// The credentials, ready to render.
    pub fn credentials(&self) -> &CredentialSet {
        &self.credentials
    }

    /// Consumes the config, returning its credentials.
    pub fn into_credentials(self) -> CredentialSet {
        self.credentials
    }
}

fn parse_entry(key: &str, entry: &Value) -> Result<Credential, DockerConfigError> {
    let registry = RegistryHost::parse(key).map_err(DockerConfigError::InvalidRegistry)?;
    let name = || key.to_string();
    let fields = entry
        .as_object()
        .ok_or_else(|| DockerConfigError::EntryNotObject {
            registry: name(),
            found: type_name(entry),
        })?;
    let username = string_field(fields, key, "username")?;
    let password = string_field(fields, key, "password")?;
    let from_auth = string_field(fields, key, "auth")?
        .map(|auth| decode_auth(key, auth))
        .transpose()?;

    let (user, pass) = match (from_auth, username, password) {
        (Some((user, pass)), u, p) => {
            let disagrees = u.is_some_and(|u| u != user) || p.is_some_and(|p| p != pass);
            if disagrees {
                return Err(DockerConfigError::AuthMismatch { registry: name() });
            }
            (user, pass)
        }
        (None, None, None) => return Err(DockerConfigError::MissingCredentials { registry: name() }),
        (None, user, pass) => (
            user.unwrap_or_default().to_string(),
            pass.unwrap_or_default().to_string(),
        ),
    };
    if user.is_empty() {
        return Err(DockerConfigError::EmptyUsername { registry: name() });
    }
    if pass.is_empty() {
        return Err(DockerConfigError::MissingPassword { registry: name() });
    }
    Ok(Credential::new(registry, user, SecretString::new(pass)))
}

fn string_field<'a>(
    fields: &'a Map<String, Value>,
    registry: &str,
    field: &'static str,
) -> Result<Option<&'a str>, DockerConfigError> {
    match fields.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(other) => Err(DockerConfigError::FieldNotString {
            registry: registry.to_string(),
            field,
            found: type_name(other),
        }),
    }
}

/// Splits `base64(user:pass)` on the first `:` as kubelet does (a password may contain `:`).
fn decode_auth(registry: &str, auth: &str) -> Result<(String, String), DockerConfigError> {
    let name = || registry.to_string();
    let bytes = STANDARD
        .decode(auth.trim())
        .map_err(|_| DockerConfigError::AuthNotBase64 { registry: name() })?;
    let text = String::from_utf8(bytes).map_err(|_| DockerConfigError::AuthNotUtf8 { registry: name() })?;
    let (user, pass) = text
        .split_once(':')
        .ok_or(DockerConfigError::AuthMissingColon { registry: name() })?;
    Ok((user.to_string(), pass.to_string()))
}

fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "Sup3r-Secret-Value";

    fn parse(input: &str) -> Result<DockerConfig, DockerConfigError> {
        DockerConfig::parse(input.as_bytes())
    }

    fn b64(s: &str) -> String {
        STANDARD.encode(s)
    }

    #[test]
    fn accepts_username_and_password() {
        let cfg = parse(r#"{"auths":{"r.example":{"username":"bob","password":"pw"}}}"#).expect("valid");
        let cred = cfg.credentials().iter().next().expect("one entry");
        assert_eq!((cred.username.as_str(), cred.password.expose()), ("bob", "pw"));
    }

    #[test]
    fn accepts_auth_only_and_splits_on_the_first_colon() {
        let input = format!(r#"{{"auths":{{"r.example":{{"auth":"{}"}}}}}}"#, b64("bob:pa:ss"));
        let cfg = parse(&input).expect("valid");
        let cred = cfg.credentials().iter().next().expect("one entry");
        assert_eq!((cred.username.as_str(), cred.password.expose()), ("bob", "pa:ss"));
    }

    #[test]
    fn round_trips_through_render() {
        let input = format!(
            r#"{{"auths":{{"b.example":{{"auth":"{}","email":"x@y"}},"a.example":{{"username":"u","password":"p"}}}}}}"#,
            b64("bob:pw")
        );
        let cfg = parse(&input).expect("valid");
        let reparsed = DockerConfig::parse(&cfg.credentials().render()).expect("rendered output is valid");
        assert_eq!(reparsed, cfg);
    }

    /// Each bad input gets its own error, and no message ever contains the secret in the input.
    #[test]
    fn every_bad_input_has_its_own_error_and_never_echoes_a_secret() {
        let big = format!(
            r#"{{"auths":{{"r":{{"auth":"{}"}}}}}}"#,
            "A".repeat(MAX_DOCKERCONFIG_BYTES)
        );
        type Case = (String, fn(&DockerConfigError) -> bool);
        let cases: Vec<Case> = vec![
            ("".into(), |e| matches!(e, DockerConfigError::Empty)),
            (big, |e| matches!(e, DockerConfigError::TooLarge { .. })),
            (format!(r#"{{"auths":{{"r":{{"password":"{SECRET}"}}"#), |e| {
                matches!(e, DockerConfigError::MalformedJson { .. })
            }),
            (format!(r#"{{"auths":{{"r":{{"password":{SECRET}}}}}}}"#), |e| {
                matches!(e, DockerConfigError::MalformedJson { .. })
            }),
            (format!(r#"["{SECRET}"]"#), |e| {
                matches!(e, DockerConfigError::NotAnObject { found: "an array" })
            }),
            (format!(r#"{{"r.example":{{"password":"{SECRET}"}}}}"#), |e| {
                matches!(e, DockerConfigError::MissingAuths)
            }),
            (format!(r#"{{"auths":"{SECRET}"}}"#), |e| {
                matches!(e, DockerConfigError::AuthsNotObject { .. })
            }),
            (r#"{"auths":{}}"#.into(), |e| {
                matches!(e, DockerConfigError::EmptyAuths)
            }),
            (format!(r#"{{"auths":{{"":{{"password":"{SECRET}"}}}}}}"#), |e| {
                matches!(e, DockerConfigError::InvalidRegistry(RegistryHostError::Empty))
            }),
            (format!(r#"{{"auths":{{"u:{SECRET}@r":{{"auth":"x"}}}}}}"#), |e| {
                matches!(
                    e,
                    DockerConfigError::InvalidRegistry(RegistryHostError::UserInfo(_))
                )
            }),
            (format!(r#"{{"auths":{{"r":"{SECRET}"}}}}"#), |e| {
                matches!(e, DockerConfigError::EntryNotObject { .. })
            }),
            (
                r#"{"auths":{"r":{"username":"u","password":12345678}}}"#.into(),
                |e| {
                    matches!(
                        e,
                        DockerConfigError::FieldNotString {
                            field: "password",
                            ..
                        }
                    )
                },
            ),
            (format!(r#"{{"auths":{{"r":{{"auth":"{SECRET}!!"}}}}}}"#), |e| {
                matches!(e, DockerConfigError::AuthNotBase64 { .. })
            }),
            (
                format!(
                    r#"{{"auths":{{"r":{{"auth":"{}"}}}}}}"#,
                    STANDARD.encode([0xff, 0xfe, b':', 0xfd])
                ),
                |e| matches!(e, DockerConfigError::AuthNotUtf8 { .. }),
            ),
            (
                format!(r#"{{"auths":{{"r":{{"auth":"{}"}}}}}}"#, b64(SECRET)),
                |e| matches!(e, DockerConfigError::AuthMissingColon { .. }),
            ),
            (
                format!(
                    r#"{{"auths":{{"r":{{"auth":"{}"}}}}}}"#,
                    b64(&format!(":{SECRET}"))
                ),
                |e| matches!(e, DockerConfigError::EmptyUsername { .. }),
            ),
            (
                format!(r#"{{"auths":{{"r":{{"username":"","password":"{SECRET}"}}}}}}"#),
                |e| matches!(e, DockerConfigError::EmptyUsername { .. }),
            ),
            (r#"{"auths":{"r":{"username":"bob"}}}"#.into(), |e| {
                matches!(e, DockerConfigError::MissingPassword { .. })
            }),
            (r#"{"auths":{"r":{"email":"a@b"}}}"#.into(), |e| {
                matches!(e, DockerConfigError::MissingCredentials { .. })
            }),
            (
                format!(
                    r#"{{"auths":{{"r":{{"auth":"{}","password":"{SECRET}"}}}}}}"#,
                    b64("u:other")
                ),
                |e| matches!(e, DockerConfigError::AuthMismatch { .. }),
            ),
        ];
        let mut seen = std::collections::HashSet::new();
        for (input, expected) in cases {
            let err = parse(&input).expect_err(&format!("input should be rejected: {:.80}", input));
            assert!(expected(&err), "unexpected error {err:?} for {:.80}", input);
            let message = err.to_string();
            assert!(!message.contains(SECRET), "error echoes the secret: {message}");
            assert!(
                !format!("{err:?}").contains(SECRET),
                "debug echoes the secret: {err:?}"
            );
            seen.insert(std::mem::discriminant(&err));
        }
        assert!(
            seen.len() >= 17,
            "each case should exercise a distinct error, got {}",
            seen.len()
        );
    }
}
