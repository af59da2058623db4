//! What the binary configures, and the checks run on it before any network call.

use std::{collections::BTreeMap, path::PathBuf, time::Duration};

use regcreds_core::{BareHostError, RegistryHost, SecretString};

use crate::{
    DEFAULT_API_URL, DEFAULT_PERMISSIONS, DEFAULT_REGISTRY, DEFAULT_SECRET, Error, Result, TOKEN_USER,
};

/// Everything a [`GhcrProvider`](crate::GhcrProvider) needs.
#[derive(Debug, Clone)]
pub struct GhcrSettings {
    /// Secret written in every namespace (default `ghcr-secret`); callers check it is a valid Secret name
    /// (`regcreds_settings::SecretName` does, in the binary).
    pub secret_name: String,
    /// The GitHub App's ID (a number) or client ID (`Iv…`); the JWT's `iss`.
    pub app_id: String,
    /// The installation of the App on the organization or user that owns the packages.
    pub installation_id: String,
    /// The App's private key.
    pub private_key: PrivateKey,
    /// REST API base: `https://api.github.com`, or `https://HOST/api/v3` for GitHub Enterprise Server.
    pub api_url: String,
    /// The `auths` key: `ghcr.io`, or the Enterprise Server's container registry host.
    pub registry: String,
    /// User name written with the token (default `x-access-token`).
    pub username: String,
    /// Narrow the token to these repositories (names without the owner); empty = all the installation can see.
    pub repositories: Vec<String>,
    /// Narrow the token to these repository IDs.
    pub repository_ids: Vec<String>,
    /// Narrow the token to these permissions (`packages` → `read`); `None` = all the App was granted.
    pub permissions: Option<BTreeMap<String, String>>,
    /// PEM file of CA certificates trusted in addition to the system roots (Enterprise Server, tests).
    pub ca_file: Option<PathBuf>,
    /// Upper bound for the token request (default 30 s). Must not be zero.
    pub timeout: Duration,
}

/// Where the private key comes from.
#[derive(Debug, Clone)]
pub enum PrivateKey {
    /// The PEM text itself.
    Pem(SecretString),
    /// A PEM file (e.g. a mounted Secret), re-read on every mint so a rotated key is picked up.
    File(PathBuf),
}

/// The settings after validation, in the form requests need.
#[derive(Debug, Clone)]
pub(crate) struct Validated {
    pub(crate) registry: RegistryHost,
    pub(crate) api_url: String,
    pub(crate) installation_id: u64,
    pub(crate) repository_ids: Vec<u64>,
}

impl GhcrSettings {
    /// Settings with defaults for everything but the App's identity and key.
    pub fn new(
        app_id: impl Into<String>,
        installation_id: impl Into<String>,
        private_key: PrivateKey,
    ) -> Self {
        Self {
            secret_name: DEFAULT_SECRET.to_string(),
            app_id: app_id.into(),
            installation_id: installation_id.into(),
            private_key,
            api_url: DEFAULT_API_URL.to_string(),
            registry: DEFAULT_REGISTRY.to_string(),
            username: TOKEN_USER.to_string(),
            repositories: Vec::new(),
            repository_ids: Vec::new(),
            permissions: Some(default_permissions()),
            ca_file: None,
            timeout: Duration::from_secs(30),
        }
    }

    /// Checks every setting but the key (read by the provider).
    pub(crate) fn validated(&self) -> Result<Validated> {
        validate_app_id(self.app_id.trim())?;
        let installation_id = positive(&self.installation_id)
            .ok_or_else(|| Error::InvalidInstallationId(self.installation_id.clone()))?;
        let username = self.username.trim();
        if username.is_empty() || username.contains(':') {
            return Err(Error::InvalidUsername);
        }
        let api_url = validate_api_url(&self.api_url)?;
        let registry = registry_host(&self.registry)?;
        for name in &self.repositories {
            validate_repository(name)?;
        }
        let repository_ids = self
            .repository_ids
            .iter()
            .map(|id| positive(id).ok_or_else(|| Error::InvalidRepositoryId(id.clone())))
            .collect::<Result<Vec<_>>>()?;
        let count = self.repositories.len() + repository_ids.len();
        if count > 500 {
            return Err(Error::TooManyRepositories(count));
        }
        for (name, level) in self.permissions.iter().flatten() {
            validate_permission(name, level)?;
        }
        Ok(Validated {
            registry,
            api_url,
            installation_id,
            repository_ids,
        })
    }
}

/// `{"packages": "read"}`.
pub(crate) fn default_permissions() -> BTreeMap<String, String> {
    DEFAULT_PERMISSIONS
        .iter()
        .map(|(name, level)| (name.to_string(), level.to_string()))
        .collect()
}

fn positive(value: &str) -> Option<u64> {
    value.trim().parse::<u64>().ok().filter(|n| *n > 0)
}

/// A numeric App ID, or a client ID (`Iv1.0123abcd…`, `Iv23li…`): GitHub accepts either as `iss`.
fn validate_app_id(app_id: &str) -> Result<()> {
    let client_id = app_id.starts_with("Iv")
        && app_id.len() > 2
        && app_id.chars().all(|c| c.is_ascii_alphanumeric() || c == '.');
    if positive(app_id).is_some() || client_id {
        Ok(())
    } else {
        Err(Error::InvalidAppId(app_id.to_string()))
    }
}

/// The base URL without a trailing slash.
fn validate_api_url(url: &str) -> Result<String> {
    let url = url.trim().trim_end_matches('/');
    if regcreds_core::is_http_url(url) {
        Ok(url.to_string())
    } else {
        Err(Error::InvalidApiUrl(regcreds_core::redact_registry(url)))
    }
}

/// A bare `host[:port]` (a leading `https://` is accepted and dropped).
pub(crate) fn registry_host(raw: &str) -> Result<RegistryHost> {
    RegistryHost::parse_bare_host(raw).map_err(|e| Error::InvalidRegistry {
        registry: regcreds_core::redact_registry(raw),
        reason: match e {
            BareHostError::Invalid(e) => e.to_string(),
            BareHostError::Scheme | BareHostError::Path => {
                "must be a registry host such as ghcr.io, without a scheme or path".into()
            }
        },
    })
}

/// GitHub's `repositories` takes names within the installation's account, not `owner/name`.
fn validate_repository(name: &str) -> Result<()> {
    let invalid = |reason| Error::InvalidRepository {
        name: name.to_string(),
        reason,
    };
    if name.contains('/') {
        return Err(invalid(
            "give the repository name without its owner (GitHub takes names only)",
        ));
    }
    let valid = !name.is_empty()
        && name.len() <= 100
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if valid {
        Ok(())
    } else {
        Err(invalid("is not a GitHub repository name"))
    }
}

fn validate_permission(name: &str, level: &str) -> Result<()> {
    let name_ok = !name.is_empty() && name.chars().all(|c| c.is_ascii_lowercase() || c == '_');
    if name_ok && matches!(level, "read" | "write" | "admin") {
        Ok(())
    } else {
        Err(Error::InvalidPermission(format!("{name}:{level}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> GhcrSettings {
        GhcrSettings::new("123", "456", PrivateKey::Pem("unused".into()))
    }

    #[test]
    fn defaults_aim_at_github_com_with_a_packages_read_token() {
        let valid = settings().validated().expect("valid");
        assert_eq!(valid.registry.as_str(), "ghcr.io");
        assert_eq!(valid.api_url, "https://api.github.com");
        assert_eq!(valid.installation_id, 456);
        assert_eq!(settings().permissions, Some(default_permissions()));
    }

    #[test]
    fn app_ids_may_be_numbers_or_client_ids_and_nothing_else() {
        for good in ["1", "123456", "Iv1.0123456789abcdef", "Iv23liABCdef"] {
            let s = GhcrSettings {
                app_id: good.into(),
                ..settings()
            };
            assert!(s.validated().is_ok(), "{good}");
        }
        for bad in ["", "0", "-3", "my-app", "12 34", "Iv"] {
            let s = GhcrSettings {
                app_id: bad.into(),
                ..settings()
            };
            assert!(matches!(s.validated(), Err(Error::InvalidAppId(_))), "{bad}");
        }
    }

    #[test]
    fn an_installation_id_must_be_a_positive_number() {
        for bad in ["", "0", "abc", "12.5", "-1"] {
            let s = GhcrSettings {
                installation_id: bad.into(),
                ..settings()
            };
            let err = s.validated().expect_err(bad);
            assert!(matches!(err, Error::InvalidInstallationId(_)), "{bad}");
            assert!(err.to_string().contains("settings/installations"), "{err}");
        }
    }

    #[test]
    fn enterprise_server_urls_and_registry_hosts_are_normalised_and_checked() {
        let s = GhcrSettings {
            api_url: "https://github.example.com/api/v3/".into(),
            registry: "https://containers.github.example.com/".into(),
            ..settings()
        };
        let valid = s.validated().expect("valid");
        assert_eq!(valid.api_url, "https://github.example.com/api/v3");
        assert_eq!(valid.registry.as_str(), "containers.github.example.com");
        for bad in ["github.example.com/api/v3", "ftp://x", "https://"] {
            let s = GhcrSettings {
                api_url: bad.into(),
                ..settings()
            };
            assert!(matches!(s.validated(), Err(Error::InvalidApiUrl(_))), "{bad}");
        }
        for bad in ["ghcr.io/org", "http://ghcr.io", "gh cr.io"] {
            let s = GhcrSettings {
                registry: bad.into(),
                ..settings()
            };
            assert!(
                matches!(s.validated(), Err(Error::InvalidRegistry { .. })),
                "{bad}"
            );
        }
    }

    #[test]
    fn narrowing_values_are_checked() {
        let with_repos = |repos: &[&str]| GhcrSettings {
            repositories: repos.iter().map(ToString::to_string).collect(),
            ..settings()
        };
        assert!(with_repos(&["app", "web.site", "a_b-c"]).validated().is_ok());
        let err = with_repos(&["octo-org/app"]).validated().expect_err("owner/name");
        assert!(err.to_string().contains("without its owner"), "{err}");
        assert!(matches!(
            with_repos(&["a b"]).validated(),
            Err(Error::InvalidRepository { .. })
        ));
        let ids = GhcrSettings {
            repository_ids: vec!["1296269".into(), "x".into()],
            ..settings()
        };
        assert!(matches!(ids.validated(), Err(Error::InvalidRepositoryId(id)) if id == "x"));
        let many = GhcrSettings {
            repository_ids: (1..=501).map(|i| i.to_string()).collect(),
            ..settings()
        };
        assert!(matches!(many.validated(), Err(Error::TooManyRepositories(501))));
        let perms = GhcrSettings {
            permissions: Some([("packages".to_string(), "pull".to_string())].into()),
            ..settings()
        };
        assert!(matches!(perms.validated(), Err(Error::InvalidPermission(p)) if p == "packages:pull"));
    }

    #[test]
    fn a_username_with_a_colon_is_rejected() {
        let s = GhcrSettings {
            username: "a:b".into(),
            ..settings()
        };
        assert!(matches!(s.validated(), Err(Error::InvalidUsername)));
    }
}
