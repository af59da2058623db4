//! Parsing `Www-Authenticate` challenges (RFC 7235 §4.1, RFC 6750 §3).
//!
//! A registry answers an anonymous `GET /v2/` with `401` and a challenge such as
//! `Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:a/b:pull,push"`.
//! Values may be quoted and then contain commas and escaped quotes, so splitting on `,` is wrong; this
//! module tokenises the header properly and keeps only what the handshake needs.

use std::collections::BTreeMap;

/// One authentication scheme a registry offers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Challenge {
    /// Token auth: fetch a token from `realm` with Basic credentials, then send it as `Bearer`.
    Bearer {
        /// The token endpoint URL.
        realm: String,
        /// The `service` parameter to pass back to the token endpoint, if the registry named one.
        service: Option<String>,
        /// The scope the registry asked for, if any (usually absent on `/v2/`).
        scope: Option<String>,
    },
    /// Plain Basic auth: send `user:password` with every request.
    Basic {
        /// The protection space name; informational only.
        realm: Option<String>,
    },
}

/// Why a challenge header could not be used. Header values are not secret, but are not echoed either:
/// they can be long and a reason should stay one line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChallengeError {
    /// The header held nothing parseable.
    #[error("Www-Authenticate header is empty or malformed")]
    Malformed,
    /// A Bearer challenge without `realm`: there is nowhere to ask for a token.
    #[error("Bearer challenge has no realm")]
    MissingRealm,
    /// Only schemes we cannot speak (Digest, Negotiate, ...).
    #[error("unsupported auth scheme(s): {0}")]
    Unsupported(String),
}

/// Picks the challenge to answer from all `Www-Authenticate` header values of one response.
///
/// Bearer wins over Basic when both are offered: it is what docker and containerd use, and it tests
/// the token endpoint that pulls will go through.
pub fn select<'a>(headers: impl IntoIterator<Item = &'a str>) -> Result<Challenge, ChallengeError> {
    let mut parsed = Vec::new();
    for header in headers {
        parsed.extend(parse_header(header)?);
    }
    if parsed.is_empty() {
        return Err(ChallengeError::Malformed);
    }
    let mut unsupported = Vec::new();
    let mut basic = None;
    for (scheme, params) in parsed {
        match scheme.to_ascii_lowercase().as_str() {
            "bearer" => return bearer(params),
            "basic" => {
                basic = basic.or(Some(Challenge::Basic {
                    realm: params.get("realm").cloned(),
                }))
            }
            _ => unsupported.push(scheme),
        }
    }
    basic.ok_or_else(|| ChallengeError::Unsupported(unsupported.join(", ")))
}

fn bearer(mut params: BTreeMap<String, String>) -> Result<Challenge, ChallengeError> {
    let realm = params
        .remove("realm")
        .filter(|r| !r.is_empty())
        .ok_or(ChallengeError::MissingRealm)?;
    Ok(Challenge::Bearer {
        realm,
        service: params.remove("service"),
        scope: params.remove("scope"),
    })
}

/// Parameter names are case-insensitive (RFC 7235 §2.1), so they are lower-cased here.
type Params = BTreeMap<String, String>;

/// Splits one header value into `(scheme, params)` pairs. A header may hold several challenges:
/// `Basic realm="a", Bearer realm="b"`.
fn parse_header(header: &str) -> Result<Vec<(String, Params)>, ChallengeError> {
    let mut lexer = Lexer { rest: header };
    let mut challenges: Vec<(String, Params)> = Vec::new();
    loop {
        lexer.skip_separators();
        if lexer.rest.is_empty() {
            return Ok(challenges);
        }
        let word = lexer.token().ok_or(ChallengeError::Malformed)?;
        lexer.skip_spaces();
        if lexer.eat('=') {
            // `name=value` belongs to the challenge before it.
            let value = lexer.value().ok_or(ChallengeError::Malformed)?;
            let (_, params) = challenges.last_mut().ok_or(ChallengeError::Malformed)?;
            params.insert(word.to_ascii_lowercase(), value);
        } else {
            challenges.push((word.to_string(), Params::new()));
        }
    }
}

/// A cursor over the header text.
struct Lexer<'a> {
    rest: &'a str,
}

impl<'a> Lexer<'a> {
    fn skip_spaces(&mut self) {
        self.rest = self.rest.trim_start_matches([' ', '\t']);
    }

    fn skip_separators(&mut self) {
        self.rest = self.rest.trim_start_matches([' ', '\t', ',']);
    }

    fn eat(&mut self, c: char) -> bool {
        match self.rest.strip_prefix(c) {
            Some(rest) => {
                self.rest = rest;
                true
            }
            None => false,
        }
    }

    /// An RFC 7230 `token`: visible characters except separators.
    fn token(&mut self) -> Option<&'a str> {
        let end = self.rest.find(|c: char| !is_tchar(c)).unwrap_or(self.rest.len());
        if end == 0 {
            return None;
        }
        let (token, rest) = self.rest.split_at(end);
        self.rest = rest;
        Some(token)
    }

    fn value(&mut self) -> Option<String> {
        self.skip_spaces();
        if self.eat('"') {
            self.quoted()
        } else {
            self.token().map(str::to_string)
        }
    }

    /// The rest of a quoted-string after its opening quote; `\x` stands for `x`.
    fn quoted(&mut self) -> Option<String> {
        let mut out = String::new();
        let mut chars = self.rest.char_indices();
        while let Some((i, c)) = chars.next() {
            match c {
                '"' => {
                    self.rest = &self.rest[i + 1..];
                    return Some(out);
                }
                '\\' => out.push(chars.next()?.1),
                _ => out.push(c),
            }
        }
        None // unterminated
    }
}

fn is_tchar(c: char) -> bool {
    c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~/:".contains(c)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(header: &str) -> Result<Challenge, ChallengeError> {
        select([header])
    }

    #[test]
    fn docker_hub_bearer_challenge_with_a_comma_inside_the_scope_is_parsed_whole() {
        let header = r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:samalba/my-app:pull,push""#;
        assert_eq!(
            one(header),
            Ok(Challenge::Bearer {
                realm: "https://auth.docker.io/token".into(),
                service: Some("registry.docker.io".into()),
                scope: Some("repository:samalba/my-app:pull,push".into()),
            })
        );
    }

    #[test]
    fn spaces_after_commas_unquoted_values_and_case_are_tolerated() {
        let header = r#"bearer Realm="https://r.example/token" , service=registry.example,  scope="a""#;
        assert_eq!(
            one(header),
            Ok(Challenge::Bearer {
                realm: "https://r.example/token".into(),
                service: Some("registry.example".into()),
                scope: Some("a".into()),
            })
        );
    }

    #[test]
    fn escaped_quotes_inside_a_quoted_value_are_unescaped() {
        let header = r#"Bearer realm="https://r.example/t",service="we \"quote\" it""#;
        let Ok(Challenge::Bearer { service, .. }) = one(header) else {
            panic!("not bearer")
        };
        assert_eq!(service.as_deref(), Some(r#"we "quote" it"#));
    }

    #[test]
    fn service_and_scope_are_optional() {
        assert_eq!(
            one(r#"Bearer realm="https://r.example/token""#),
            Ok(Challenge::Bearer {
                realm: "https://r.example/token".into(),
                service: None,
                scope: None
            })
        );
    }

    #[test]
    fn a_bearer_challenge_without_realm_is_rejected() {
        assert_eq!(one(r#"Bearer service="x""#), Err(ChallengeError::MissingRealm));
        assert_eq!(one(r#"Bearer realm="""#), Err(ChallengeError::MissingRealm));
    }

    #[test]
    fn basic_challenges_are_recognised_with_or_without_realm() {
        assert_eq!(
            one(r#"Basic realm="Registry Realm""#),
            Ok(Challenge::Basic {
                realm: Some("Registry Realm".into())
            })
        );
        assert_eq!(one("Basic"), Ok(Challenge::Basic { realm: None }));
    }

    #[test]
    fn bearer_is_preferred_when_one_header_offers_both() {
        let header = r#"Basic realm="b", Bearer realm="https://t.example/token",service="s""#;
        assert!(matches!(one(header), Ok(Challenge::Bearer { .. })));
    }

    #[test]
    fn bearer_is_preferred_across_separate_headers() {
        let chosen = select([r#"Basic realm="b""#, r#"Bearer realm="https://t.example/token""#]);
        assert!(matches!(chosen, Ok(Challenge::Bearer { .. })));
    }

    #[test]
    fn unsupported_schemes_are_named() {
        assert_eq!(
            one(r#"Negotiate, Digest realm="x", nonce="y""#),
            Err(ChallengeError::Unsupported("Negotiate, Digest".into()))
        );
    }

    #[test]
    fn garbage_is_malformed_not_a_panic() {
        for header in [
            "",
            "   ",
            ",,,",
            "=x",
            r#"Bearer realm="unterminated"#,
            "Bearer realm=",
            "\"quoted\"",
            "Bearer realm=@",
        ] {
            assert!(one(header).is_err(), "{header:?} should be rejected");
        }
        assert_eq!(select(std::iter::empty()), Err(ChallengeError::Malformed));
    }
}
