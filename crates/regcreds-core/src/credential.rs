//! Credentials and their rendering as one `.dockerconfigjson`.

use std::collections::BTreeMap;

use base64::{Engine, engine::general_purpose::STANDARD};
use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::{RegistryHost, SecretString};

/// One registry login: what kubelet needs to pull from `registry`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credential {
    /// The `auths` key, e.g. `https://index.docker.io/v1/` or `123.dkr.ecr.eu-west-1.amazonaws.com`.
    pub registry: RegistryHost,
    /// Login name (`AWS`, `oauth2accesstoken`, the ACR null GUID, a Docker ID, ...).
    pub username: String,
    /// Password or token.
    pub password: SecretString,
    /// When the registry stops accepting this credential; `None` for static credentials.
    pub expires_at: Option<DateTime<Utc>>,
}

impl Credential {
    /// A credential that does not expire.
    pub fn new(
        registry: RegistryHost,
        username: impl Into<String>,
        password: impl Into<SecretString>,
    ) -> Self {
        Self {
            registry,
            username: username.into(),
            password: password.into(),
            expires_at: None,
        }
    }

    /// The same credential with an expiry.
    pub fn expiring_at(mut self, expires_at: DateTime<Utc>) -> Self {
        self.expires_at = Some(expires_at);
        self
    }

    /// `base64(username:password)`, the `auth` field kubelet prefers over username/password.
    fn auth(&self) -> String {
        STANDARD.encode(format!("{}:{}", self.username, self.password.expose()))
    }
}

/// The credentials that go into one Secret, keyed (and therefore ordered) by registry.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CredentialSet {
    entries: BTreeMap<RegistryHost, Credential>,
}

/// The JSON shape of one `auths` entry. Field order here is the byte order of the output.
#[derive(Serialize)]
struct AuthEntry<'a> {
    username: &'a str,
    password: &'a str,
    auth: String,
}

#[derive(Serialize)]
struct Auths<'a> {
    auths: BTreeMap<&'a str, AuthEntry<'a>>,
}

impl CredentialSet {
    /// An empty set.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a credential, replacing an earlier one for the same registry.
    pub fn insert(&mut self, credential: Credential) {
        self.entries.insert(credential.registry.clone(), credential);
    }

    /// Builder-style [`CredentialSet::insert`].
    pub fn with(mut self, credential: Credential) -> Self {
        self.insert(credential);
        self
    }

    /// Number of registries in the set.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when the set has no credential (never written to a cluster).
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The credentials in registry order.
    pub fn iter(&self) -> impl Iterator<Item = &Credential> {
        self.entries.values()
    }

    /// The earliest expiry in the set: the whole Secret is stale once any entry is.
    pub fn expires_at(&self) -> Option<DateTime<Utc>> {
        self.entries.values().filter_map(|c| c.expires_at).min()
    }

    /// The registry keys, for logs and status output (never secret).
    pub fn registries(&self) -> Vec<String> {
        self.entries.keys().map(|r| r.to_string()).collect()
    }

    /// Renders the set as `.dockerconfigjson` bytes:
    /// `{"auths":{"<registry>":{"username":"…","password":"…","auth":"base64(user:pass)"}}}`.
    ///
    /// The output is a pure function of the content (registries sorted, fixed field order, no
    /// whitespace), so re-minting an unchanged credential yields identical bytes and costs no write.
    pub fn render(&self) -> Vec<u8> {
        let auths = self
            .entries
            .values()
            .map(|c| {
                let entry = AuthEntry {
                    username: &c.username,
                    password: c.password.expose(),
                    auth: c.auth(),
                };
                (c.registry.as_str(), entry)
            })
            .collect();
        // NB: serializing maps of strings cannot fail.
        serde_json::to_vec(&Auths { auths }).unwrap_or_default()
    }

    /// Like [`CredentialSet::render`] with every password and `auth` replaced by a mask, for printing.
    pub fn render_masked(&self) -> String {
        let auths: BTreeMap<&str, serde_json::Value> = self
            .entries
            .values()
            .map(|c| {
                let mut entry = serde_json::json!({
                    "username": c.username,
                    "password": c.password.masked(),
                    "auth": "***",
                });
                if let Some(expiry) = c.expires_at {
                    entry["expiresAt"] = serde_json::Value::String(expiry.to_rfc3339());
                }
                (c.registry.as_str(), entry)
            })
            .collect();
        serde_json::to_string_pretty(&serde_json::json!({ "auths": auths })).unwrap_or_default()
    }
}

impl FromIterator<Credential> for CredentialSet {
    fn from_iter<T: IntoIterator<Item = Credential>>(iter: T) -> Self {
        let mut set = Self::new();
        for credential in iter {
            set.insert(credential);
        }
        set
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host(s: &str) -> RegistryHost {
        RegistryHost::parse(s).expect("valid registry")
    }

    #[test]
    fn renders_golden_bytes() {
        let set = CredentialSet::new()
            .with(Credential::new(host("registry.example.com"), "bob", "p@ss:word"))
            .with(Credential::new(
                host("https://index.docker.io/v1/"),
                "alice",
                "dckr_pat_x",
            ));
        let expected = concat!(
            r#"{"auths":{"#,
            r#""https://index.docker.io/v1/":{"username":"alice","password":"dckr_pat_x","auth":"YWxpY2U6ZGNrcl9wYXRfeA=="},"#,
            r#""registry.example.com":{"username":"bob","password":"p@ss:word","auth":"Ym9iOnBAc3M6d29yZA=="}"#,
            r#"}}"#
        );
        assert_eq!(String::from_utf8(set.render()).expect("utf8"), expected);
    }

    #[test]
    fn rendering_does_not_depend_on_insertion_order() {
        let a = Credential::new(host("a.example"), "u1", "p1");
        let b = Credential::new(host("b.example"), "u2", "p2");
        let one: CredentialSet = [a.clone(), b.clone()].into_iter().collect();
        let two: CredentialSet = [b, a].into_iter().collect();
        assert_eq!(one.render(), two.render());
    }

    #[test]
    fn masked_rendering_hides_password_and_auth() {
        let set = CredentialSet::new().with(Credential::new(host("r.example"), "bob", "topsecret-123"));
        let masked = set.render_masked();
        assert!(masked.contains("bob"));
        assert!(!masked.contains("topsecret-123"));
        assert!(
            !masked.contains("Ym9iOnRvcHNlY3JldC0xMjM"),
            "auth must be masked too: {masked}"
        );
    }

    #[test]
    fn expiry_of_a_set_is_its_earliest_entry() {
        let early = Utc::now();
        let late = early + chrono::Duration::hours(1);
        let set = CredentialSet::new()
            .with(Credential::new(host("a.example"), "u", "p").expiring_at(late))
            .with(Credential::new(host("b.example"), "u", "p").expiring_at(early))
            .with(Credential::new(host("c.example"), "u", "p"));
        assert_eq!(set.expires_at(), Some(early));
    }
}
