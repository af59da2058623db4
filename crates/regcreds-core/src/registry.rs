//! Registry keys as they appear in `.dockerconfigjson` (`auths` keys).

use std::fmt;

/// A registry key such as `ghcr.io`, `127.0.0.1:5443`, `https://index.docker.io/v1/` or
/// `https://123456789012.dkr.ecr.eu-west-1.amazonaws.com`.
///
/// The key is kept verbatim because kubelet matches it as written (scheme optional, `/v1/` and `/v2/`
/// stripped, paths and `*` globs allowed); [`RegistryHost::authority`] gives the `host[:port]` part.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RegistryHost(String);

/// Why a registry key was rejected. A registry key is not secret, but a malformed one may carry a
/// credential (`user:password@`, `?token=`): messages show it through [`redact_registry`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RegistryHostError {
    /// The key was empty or blank.
    #[error("registry is empty")]
    Empty,
    /// The key contains whitespace or a control character.
    #[error("registry {0:?} contains whitespace or control characters")]
    Whitespace(String),
    /// The key uses a scheme other than http or https.
    #[error("registry {0:?} has an unsupported scheme (only http:// and https:// are allowed)")]
    Scheme(String),
    /// The key embeds `user:password@`, which would leak a credential into a map key.
    #[error("registry {0:?} must not contain credentials (user@host); put them in username/password")]
    UserInfo(String),
    /// The key has no host part.
    #[error("registry {0:?} has no host")]
    NoHost(String),
    /// The port is not a number between 1 and 65535.
    #[error("registry {0:?} has an invalid port")]
    Port(String),
    /// The key carries a query string or fragment.
    #[error("registry {0:?} must not contain a query string or fragment ('?' or '#')")]
    Query(String),
}

impl RegistryHost {
    /// Validates and wraps a registry key.
    pub fn parse(raw: &str) -> Result<Self, RegistryHostError> {
        let key = raw.trim();
        if key.is_empty() {
            return Err(RegistryHostError::Empty);
        }
        if key.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(RegistryHostError::Whitespace(redact_registry(key)));
        }
        if key.contains('@') {
            return Err(RegistryHostError::UserInfo(redact_registry(key)));
        }
        if key.contains('?') || key.contains('#') {
            return Err(RegistryHostError::Query(redact_registry(key)));
        }
        let rest = match key.split_once("://") {
            Some(("http" | "https", rest)) => rest,
            Some(_) => return Err(RegistryHostError::Scheme(key.to_string())),
            None => key,
        };
        let authority = rest.split('/').next().unwrap_or_default();
        if authority.is_empty() {
            return Err(RegistryHostError::NoHost(key.to_string()));
        }
        if let Some((host, port)) = split_port(authority) {
            if host.is_empty() {
                return Err(RegistryHostError::NoHost(key.to_string()));
            }
            if !matches!(port.parse::<u16>(), Ok(p) if p > 0) {
                return Err(RegistryHostError::Port(key.to_string()));
            }
        }
        Ok(Self(key.to_string()))
    }

    /// The key exactly as it is written into `.dockerconfigjson`.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// `host[:port]` without scheme or path: what a client dials.
    pub fn authority(&self) -> &str {
        let rest = self.0.split_once("://").map_or(self.0.as_str(), |(_, rest)| rest);
        rest.split('/').next().unwrap_or(rest)
    }

    /// The scheme if the key names one (`http` or `https`).
    pub fn scheme(&self) -> Option<&str> {
        self.0.split_once("://").map(|(scheme, _)| scheme)
    }
}

/// Splits `host:port`, leaving bracketed IPv6 literals without a port alone.
fn split_port(authority: &str) -> Option<(&str, &str)> {
    if authority.starts_with('[') {
        let end = authority.find(']')?;
        return authority[end + 1..]
            .strip_prefix(':')
            .map(|port| (&authority[..=end], port));
    }
    authority.rsplit_once(':')
}

/// A registry key (or URL) as it may appear in a message: `user:password@` becomes `***@` and a query
/// string or fragment becomes `?***`, because either may carry a credential. Nothing else changes, so
/// the user still recognises what they wrote.
pub fn redact_registry(key: &str) -> String {
    // NB: userinfo first, on the whole key: a password may itself contain '?', '#' or "://".
    let (prefix, rest) = match key.rsplit_once('@') {
        Some((userinfo, host)) => (format!("{}***@", scheme_of(userinfo)), host),
        None => (String::new(), key),
    };
    let rest = match rest.find(['?', '#']) {
        Some(at) => format!("{}?***", &rest[..at]),
        None => rest.to_string(),
    };
    format!("{prefix}{rest}")
}

/// `https://` if `text` starts with a well-formed scheme, else nothing (it may be part of a password).
fn scheme_of(text: &str) -> String {
    match text.split_once("://") {
        Some((scheme, _))
            if scheme.starts_with(|c: char| c.is_ascii_alphabetic())
                && scheme
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.')) =>
        {
            format!("{scheme}://")
        }
        _ => String::new(),
    }
}

impl fmt::Display for RegistryHost {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for RegistryHost {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.0)
    }
}

impl std::str::FromStr for RegistryHost {
    type Err = RegistryHostError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_the_key_forms_kubelet_understands() {
        for key in [
            "ghcr.io",
            "127.0.0.1:5443",
            "https://index.docker.io/v1/",
            "https://123456789012.dkr.ecr.eu-west-1.amazonaws.com",
            "*.gcr.io",
            "quay.io/org",
            "[::1]:5000",
        ] {
            assert_eq!(
                RegistryHost::parse(key).map(|h| h.to_string()),
                Ok(key.to_string()),
                "{key}"
            );
        }
    }

    #[test]
    fn authority_strips_scheme_and_path() {
        let host = RegistryHost::parse("https://index.docker.io/v1/").expect("valid");
        assert_eq!(host.authority(), "index.docker.io");
        assert_eq!(host.scheme(), Some("https"));
    }

    #[test]
    fn rejects_each_bad_form_with_its_own_error() {
        assert_eq!(RegistryHost::parse("  "), Err(RegistryHostError::Empty));
        assert!(matches!(
            RegistryHost::parse("ftp://x"),
            Err(RegistryHostError::Scheme(_))
        ));
        assert!(matches!(
            RegistryHost::parse("a b"),
            Err(RegistryHostError::Whitespace(_))
        ));
        assert!(matches!(
            RegistryHost::parse("host:0"),
            Err(RegistryHostError::Port(_))
        ));
        assert!(matches!(
            RegistryHost::parse("host:http"),
            Err(RegistryHostError::Port(_))
        ));
        assert!(matches!(
            RegistryHost::parse("https:///v2"),
            Err(RegistryHostError::NoHost(_))
        ));
        assert!(matches!(
            RegistryHost::parse("x.io?a=b"),
            Err(RegistryHostError::Query(_))
        ));
    }

    #[test]
    fn a_query_string_or_userinfo_is_never_echoed() {
        for (key, shown) in [
            ("x.io?token=s3cr3t", "x.io?***"),
            ("https://x.io/v2/#s3cr3t", "https://x.io/v2/?***"),
            ("https://bob:s3cr3t@x.io/p?t=s3cr3t", "https://***@x.io/p?***"),
            ("bob:s3cr3t@x.io", "***@x.io"),
            ("x.io/?a b=s3cr3t", "x.io/?***"),
            ("bob:s3cr3t:@https://a", "\"***@https://a\""),
            ("https://bob:s3c?r#3t@x.io", "https://***@x.io"),
        ] {
            let err = RegistryHost::parse(key).expect_err(key).to_string();
            assert!(!err.contains("s3cr3t"), "{key}: {err}");
            assert!(err.contains(shown), "{key}: {err}");
        }
    }

    #[test]
    fn userinfo_is_rejected_without_echoing_the_password() {
        let err = RegistryHost::parse("https://bob:pa55word@reg.example").expect_err("userinfo");
        assert!(matches!(err, RegistryHostError::UserInfo(_)));
        assert!(!err.to_string().contains("pa55word"), "{err}");
    }
}
