//! Fuzzing the dockerconfigjson parser with proptest: arbitrary bytes and near-valid documents never
//! panic, valid documents round-trip through `render`, and no error message ever quotes a secret.
//!
//! Bounded to 256 cases per property so it runs in `cargo xtask test`. A longer run:
//! `PROPTEST_CASES=100000 cargo test --release -p regcreds-core --test proptest_dockerconfig`.

use base64::{Engine, engine::general_purpose::STANDARD};
use proptest::prelude::*;
use regcreds_core::{Credential, CredentialSet, DockerConfig, RegistryHost, SecretString};
use serde_json::{Map, Value, json};

fn config() -> ProptestConfig {
    // NB: `PROPTEST_CASES` overrides the default of 256 when set.
    ProptestConfig {
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// A secret that cannot occur in a message by chance: a fixed marker and a random core.
fn secret() -> impl Strategy<Value = String> {
    (
        "[A-Za-z0-9]{10,20}",
        prop::sample::select(vec!["", ":", "\"", "\\", " ", "é", "\u{1F512}", "\n"]),
    )
        .prop_map(|(core, tail)| format!("S3cr3t{core}{tail}"))
}

/// The part of a secret that any leak would have to contain: the random core of a generated secret
/// (its tail may be escaped in a message), or the whole of a derived value such as a base64 `auth`.
fn core_of(secret: &str) -> &str {
    if !secret.starts_with("S3cr3t") {
        return secret;
    }
    let end = secret
        .char_indices()
        .find(|(_, c)| !c.is_ascii_alphanumeric())
        .map_or(secret.len(), |(i, _)| i);
    &secret[..end]
}

fn host() -> impl Strategy<Value = String> {
    (
        prop::sample::select(vec!["", "https://", "http://"]),
        "[a-z][a-z0-9-]{0,10}(\\.[a-z][a-z0-9]{0,6}){0,3}",
        prop::option::of(1u16..=65535),
        prop::sample::select(vec!["", "/v1/", "/library"]),
    )
        .prop_map(|(scheme, name, port, path)| match port {
            Some(port) => format!("{scheme}{name}:{port}{path}"),
            None => format!("{scheme}{name}{path}"),
        })
}

/// Registry keys, mostly valid, some broken, some carrying a secret in userinfo.
fn registry_key(secret: String) -> impl Strategy<Value = String> {
    prop_oneof![
        4 => host(),
        1 => Just(String::new()),
        1 => host().prop_map(|h| format!("{h} x")),
        1 => host().prop_map(move |h| format!("bob:{secret}@{h}")),
        1 => host().prop_map(|h| format!("ftp://{h}")),
        1 => host().prop_map(|h| format!("{h}:99999")),
        1 => "\\PC{0,12}",
    ]
}

fn json_scalar() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        Just(json!([])),
        Just(json!({})),
    ]
}

/// One `auths` entry, near-valid: fields present, missing, of the wrong type, or inconsistent.
fn entry(secret: String) -> impl Strategy<Value = (Value, Vec<String>)> {
    let user =
        prop_oneof![3 => "[a-z][a-z0-9._-]{0,12}", 1 => Just(String::new()), 1 => Just("a:b".to_string())];
    let s = secret.clone();
    (
        user,
        prop::option::of(Just(secret)),
        0u8..6,
        prop::option::of(json_scalar()),
        prop::sample::select(vec!["username", "password", "auth", "email", "identitytoken"]),
    )
        .prop_map(move |(user, password, auth_kind, junk, junk_field)| {
            let mut fields = Map::new();
            let mut secrets = vec![s.clone()];
            let password_text = password.clone().unwrap_or_default();
            let auth = STANDARD.encode(format!("{user}:{password_text}"));
            match auth_kind {
                0 => {
                    fields.insert("username".into(), user.clone().into());
                    if let Some(p) = &password {
                        fields.insert("password".into(), p.clone().into());
                    }
                }
                1 => {
                    fields.insert("auth".into(), auth.clone().into());
                    secrets.push(auth);
                }
                2 => {
                    // Disagreeing auth and password.
                    fields.insert("auth".into(), STANDARD.encode(format!("{user}:other{s}")).into());
                    fields.insert("password".into(), password_text.into());
                }
                3 => {
                    // Not base64: the secret itself.
                    fields.insert("auth".into(), format!("{s}!").into());
                }
                4 => {
                    // base64 without a colon.
                    let no_colon = STANDARD.encode(s.replace(':', ""));
                    fields.insert("auth".into(), no_colon.clone().into());
                    secrets.push(no_colon);
                }
                _ => {
                    // base64 of bytes that are not UTF-8, followed by the secret.
                    let mut bytes = vec![0xff, 0xfe];
                    bytes.extend(s.as_bytes());
                    let encoded = STANDARD.encode(bytes);
                    fields.insert("auth".into(), encoded.clone().into());
                    secrets.push(encoded);
                }
            }
            if let Some(junk) = junk {
                fields.insert(junk_field.into(), junk);
            }
            (Value::Object(fields), secrets)
        })
}

/// A near-valid document and every secret in it.
fn near_valid_document() -> impl Strategy<Value = (Vec<u8>, Vec<String>)> {
    secret()
        .prop_flat_map(|secret| {
            prop::collection::vec((registry_key(secret.clone()), entry(secret.clone())), 0..4)
                .prop_map(move |entries| (secret.clone(), entries))
        })
        .prop_flat_map(|(secret, entries)| {
            let mut auths = Map::new();
            let mut secrets = vec![secret];
            for (key, (value, more)) in entries {
                auths.insert(key, value);
                secrets.extend(more);
            }
            let auths = Value::Object(auths);
            (0u8..5, any::<bool>()).prop_map(move |(shape, truncate)| {
                let doc = match shape {
                    0 => json!({ "auths": auths.clone() }),
                    1 => json!({ "auths": auths.clone(), "credsStore": "desktop" }),
                    2 => json!({ "auth": auths.clone() }),
                    3 => json!([auths.clone()]),
                    _ => json!({ "auths": [auths.clone()] }),
                };
                let mut bytes = serde_json::to_vec(&doc).expect("serializable");
                if truncate && bytes.len() > 2 {
                    bytes.truncate(bytes.len() - 2);
                }
                (bytes, secrets.clone())
            })
        })
}

fn assert_no_secret(message: &str, secrets: &[String]) -> Result<(), TestCaseError> {
    for secret in secrets {
        let core = core_of(secret);
        prop_assert!(
            !message.contains(core),
            "error message {message:?} contains the secret {secret:?}"
        );
    }
    Ok(())
}

/// Valid credentials: a valid registry, a username without ':', a non-empty password.
fn credential_set() -> impl Strategy<Value = CredentialSet> {
    prop::collection::vec((host(), "[A-Za-z0-9._-]{1,16}", "\\PC{1,24}"), 1..5)
        .prop_map(|entries| {
            entries
                .into_iter()
                .filter_map(|(host, user, password)| {
                    let registry = RegistryHost::parse(&host).ok()?;
                    Some(Credential::new(registry, user, SecretString::new(password)))
                })
                .collect()
        })
        .prop_filter("at least one valid entry", |set: &CredentialSet| !set.is_empty())
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn arbitrary_bytes_never_make_the_parser_panic(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        let _ = DockerConfig::parse(&bytes);
    }

    #[test]
    fn arbitrary_text_never_makes_the_parser_panic(text in "\\PC{0,256}") {
        let _ = DockerConfig::parse(text.as_bytes());
    }

    #[test]
    fn near_valid_documents_never_panic_and_errors_never_quote_a_secret(
        (bytes, secrets) in near_valid_document()
    ) {
        if let Err(error) = DockerConfig::parse(&bytes) {
            assert_no_secret(&error.to_string(), &secrets)?;
            assert_no_secret(&format!("{error:?}"), &secrets)?;
        }
    }

    #[test]
    fn valid_documents_round_trip_through_render(set in credential_set()) {
        let rendered = set.render();
        let parsed = DockerConfig::parse(&rendered)
            .map_err(|e| TestCaseError::fail(format!("render produced an invalid document: {e}")))?;
        prop_assert_eq!(parsed.credentials(), &set);
        prop_assert_eq!(parsed.credentials().render(), rendered, "render is stable");
    }

    #[test]
    fn a_document_written_by_hand_with_auth_only_parses_to_the_same_credentials(set in credential_set()) {
        let auths: Map<String, Value> = set
            .iter()
            .map(|c| {
                let auth = STANDARD.encode(format!("{}:{}", c.username, c.password.expose()));
                (c.registry.as_str().to_string(), json!({ "auth": auth }))
            })
            .collect();
        let bytes = serde_json::to_vec(&json!({ "auths": auths })).expect("json");
        let parsed = DockerConfig::parse(&bytes)
            .map_err(|e| TestCaseError::fail(format!("{e}")))?;
        prop_assert_eq!(parsed.credentials(), &set);
    }
}
