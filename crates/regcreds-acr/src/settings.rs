//! What the binary configures, and the checks run on it before any network call.

use std::{path::PathBuf, time::Duration};

use regcreds_core::{BareHostError, RegistryHost, SecretString};

use crate::{DEFAULT_SECRET, Error, Result, default_scope};

/// Everything an [`AcrProvider`](crate::AcrProvider) needs.
#[derive(Debug, Clone)]
pub struct AcrSettings {
    /// Secret written in every namespace (default `acr-secret`); callers check it is a valid Secret name
    /// (`regcreds_settings::SecretName` does, in the binary).
    pub secret_name: String,
    /// Login servers, e.g. `myregistry.azurecr.io` (a leading `https://` is accepted and dropped).
    /// Each becomes one `auths` entry and, with Entra auth, one exchange call.
    pub registries: Vec<String>,
    /// How to authenticate.
    pub auth: AcrAuth,
    /// Entra scope requested for the exchange. `None`: ACR's own audience for the cloud of the authority
    /// host (`authority_host`, else `AZURE_AUTHORITY_HOST`), see [`default_scope`](crate::default_scope).
    /// `https://management.azure.com/.default` (ARM) works only while the registry accepts ARM tokens.
    pub scope: Option<String>,
    /// Entra authority host, e.g. `https://login.microsoftonline.us`; must be https. Default:
    /// `AZURE_AUTHORITY_HOST`, else the public cloud.
    pub authority_host: Option<String>,
    /// Where `/oauth2/exchange` is called instead of `https://<registry>` (private endpoints, tests).
    /// The `service` parameter stays the login server. Only with a single registry.
    pub exchange_base_url: Option<String>,
    /// PEM file of CA certificates trusted in addition to the system roots, for Entra and the registry
    /// (TLS-intercepting proxies, private clouds, tests).
    pub ca_file: Option<PathBuf>,
    /// Upper bound for each step of a mint (Entra token, each exchange), retries included (default 30 s). Must not be zero.
    pub timeout: Duration,
}

/// How to obtain ACR credentials.
#[derive(Debug, Clone)]
pub enum AcrAuth {
    /// A service principal's client secret, exchanged for an ACR refresh token.
    ClientSecret {
        /// Directory (tenant) ID.
        tenant_id: String,
        /// Application (client) ID.
        client_id: String,
        /// The client secret.
        client_secret: SecretString,
    },
    /// AKS workload identity: the pod's federated token. Unset values come from the webhook-injected
    /// `AZURE_TENANT_ID`, `AZURE_CLIENT_ID` and `AZURE_FEDERATED_TOKEN_FILE`.
    WorkloadIdentity {
        /// Directory (tenant) ID.
        tenant_id: Option<String>,
        /// Client ID of the user-assigned identity or app registration.
        client_id: Option<String>,
        /// Projected service-account token file, re-read as it rotates.
        token_file: Option<PathBuf>,
    },
    /// The VM's / node's managed identity (IMDS, App Service, ...).
    ManagedIdentity {
        /// Client ID of a user-assigned identity; `None` for the system-assigned one.
        client_id: Option<String>,
    },
    /// Fixed credentials written as they are: admin user (registry name + password), a
    /// repository-scoped token (token name + password) or a service principal (appId + secret).
    Static {
        /// User name.
        username: String,
        /// Password or secret.
        password: SecretString,
    },
}

impl AcrAuth {
    /// The mode name used in flags and messages.
    pub fn mode(&self) -> &'static str {
        match self {
            Self::ClientSecret { .. } => "client-secret",
            Self::WorkloadIdentity { .. } => "workload-identity",
            Self::ManagedIdentity { .. } => "managed-identity",
            Self::Static { .. } => "static",
        }
    }
}

impl AcrSettings {
    /// Settings with defaults for everything but the registries and the authentication.
    pub fn new(registries: Vec<String>, auth: AcrAuth) -> Self {
        Self {
            secret_name: DEFAULT_SECRET.to_string(),
            registries,
            auth,
            scope: None,
            authority_host: None,
            exchange_base_url: None,
            ca_file: None,
            timeout: Duration::from_secs(30),
        }
    }

    /// The Entra scope requested: the configured one, else ACR's audience for the authority host in
    /// effect (the configured one, else `AZURE_AUTHORITY_HOST`, which azure_identity honours as well).
    pub fn effective_scope(&self) -> String {
        scope_for(self.scope.as_deref(), self.authority_in_effect().as_deref())
    }

    /// ACR's own audience for the cloud of the authority host in effect, whatever scope is configured.
    pub(crate) fn acr_scope(&self) -> &'static str {
        default_scope(self.authority_in_effect().as_deref())
    }

    fn authority_in_effect(&self) -> Option<String> {
        let from_env = || std::env::var("AZURE_AUTHORITY_HOST").ok();
        self.authority_host.clone().or_else(from_env)
    }

    /// Checks every setting; returns the registries as login server names.
    pub(crate) fn validated_registries(&self) -> Result<Vec<RegistryHost>> {
        validate_auth(&self.auth)?;
        let blank_scope = self.scope.as_deref().is_some_and(|s| s.trim().is_empty());
        if !matches!(self.auth, AcrAuth::Static { .. }) && blank_scope {
            return Err(Error::EmptyScope);
        }
        if let Some(host) = &self.authority_host {
            validate_url("authority_host", host)?;
            if !host.starts_with("https://") {
                return Err(Error::AuthorityNotHttps(regcreds_core::redact_registry(host)));
            }
        }
        let registries = self
            .registries
            .iter()
            .filter(|r| !r.trim().is_empty())
            .map(|r| login_server(r));
        let registries = registries.collect::<Result<Vec<_>>>()?;
        if registries.is_empty() {
            return Err(Error::NoRegistry);
        }
        if let Some(url) = &self.exchange_base_url {
            validate_url("exchange_base_url", url)?;
            if registries.len() > 1 {
                return Err(Error::ExchangeUrlWithSeveralRegistries);
            }
        }
        Ok(registries)
    }
}

/// `configured` (trimmed) if given, else ACR's audience for `authority`'s cloud.
fn scope_for(configured: Option<&str>, authority: Option<&str>) -> String {
    configured
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map_or_else(|| default_scope(authority).to_string(), ToString::to_string)
}

/// `myregistry.azurecr.io` from `myregistry.azurecr.io` or `https://myregistry.azurecr.io/`: the login
/// server is both the `auths` key and the exchange's `service`, so it must be a bare host.
fn login_server(raw: &str) -> Result<RegistryHost> {
    RegistryHost::parse_bare_host(raw).map_err(|e| Error::InvalidRegistry {
        registry: regcreds_core::redact_registry(raw),
        reason: match e {
            BareHostError::Scheme => "only https:// may precede the login server".into(),
            BareHostError::Path => "must be a login server name without a path".into(),
            BareHostError::Invalid(e) => e.to_string(),
        },
    })
}

fn validate_auth(auth: &AcrAuth) -> Result<()> {
    match auth {
        AcrAuth::ClientSecret {
            tenant_id,
            client_id,
            client_secret,
        } => {
            not_empty("tenant_id", tenant_id)?;
            not_empty("client_id", client_id)?;
            not_empty("client_secret", client_secret.expose())
        }
        AcrAuth::WorkloadIdentity {
            tenant_id, client_id, ..
        } => {
            // NB: None means "from the environment"; an explicitly empty value is a mistake.
            tenant_id
                .as_deref()
                .map_or(Ok(()), |t| not_empty("tenant_id", t))?;
            client_id.as_deref().map_or(Ok(()), |c| not_empty("client_id", c))
        }
        AcrAuth::ManagedIdentity { client_id } => {
            client_id.as_deref().map_or(Ok(()), |c| not_empty("client_id", c))
        }
        AcrAuth::Static { username, password } => {
            not_empty("username", username)?;
            if username.contains(':') {
                return Err(Error::ColonInUsername);
            }
            not_empty("password", password.expose())
        }
    }
}

fn not_empty(what: &'static str, value: &str) -> Result<()> {
    if value.trim().is_empty() {
        Err(Error::Empty(what))
    } else {
        Ok(())
    }
}

fn validate_url(setting: &'static str, url: &str) -> Result<()> {
    if regcreds_core::is_http_url(url) {
        Ok(())
    } else {
        Err(Error::InvalidUrl {
            setting,
            url: regcreds_core::redact_registry(url),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn static_auth() -> AcrAuth {
        AcrAuth::Static {
            username: "myregistry".into(),
            password: "pw".into(),
        }
    }

    fn check(settings: AcrSettings) -> Result<Vec<String>> {
        settings
            .validated_registries()
            .map(|r| r.iter().map(|h| h.to_string()).collect())
    }

    #[test]
    fn a_login_server_may_be_given_as_an_https_url() {
        let settings = AcrSettings::new(
            vec!["https://myreg.azurecr.io/".into(), " other.azurecr.io".into()],
            static_auth(),
        );
        assert_eq!(
            check(settings).expect("valid"),
            vec!["myreg.azurecr.io", "other.azurecr.io"]
        );
    }

    #[test]
    fn a_registry_with_a_path_or_another_scheme_is_rejected() {
        for bad in [
            "myreg.azurecr.io/repo",
            "http://myreg.azurecr.io",
            "my reg.azurecr.io",
        ] {
            let result = check(AcrSettings::new(vec![bad.into()], static_auth()));
            assert!(
                matches!(result, Err(Error::InvalidRegistry { .. })),
                "{bad}: {result:?}"
            );
        }
    }

    #[test]
    fn no_registry_is_rejected() {
        assert!(matches!(
            check(AcrSettings::new(vec![" ".into()], static_auth())),
            Err(Error::NoRegistry)
        ));
    }

    #[test]
    fn the_exchange_url_needs_a_single_registry() {
        let mut settings =
            AcrSettings::new(vec!["a.azurecr.io".into(), "b.azurecr.io".into()], static_auth());
        settings.exchange_base_url = Some("https://127.0.0.1:8443".into());
        assert!(matches!(
            check(settings.clone()),
            Err(Error::ExchangeUrlWithSeveralRegistries)
        ));
        settings.exchange_base_url = Some("127.0.0.1:8443".into());
        assert!(matches!(
            check(settings),
            Err(Error::InvalidUrl {
                setting: "exchange_base_url",
                ..
            })
        ));
    }

    #[test]
    fn the_authority_host_must_be_https() {
        let mut settings = AcrSettings::new(vec!["a.azurecr.io".into()], static_auth());
        settings.authority_host = Some("http://127.0.0.1:8443".into());
        assert!(matches!(check(settings), Err(Error::AuthorityNotHttps(_))));
    }

    #[test]
    fn each_missing_identity_value_is_named() {
        let secret = |tenant: &str, client: &str, secret: &str| AcrAuth::ClientSecret {
            tenant_id: tenant.into(),
            client_id: client.into(),
            client_secret: secret.into(),
        };
        let check_auth = |auth| check(AcrSettings::new(vec!["a.azurecr.io".into()], auth));
        assert!(matches!(
            check_auth(secret("", "c", "s")),
            Err(Error::Empty("tenant_id"))
        ));
        assert!(matches!(
            check_auth(secret("t", " ", "s")),
            Err(Error::Empty("client_id"))
        ));
        assert!(matches!(
            check_auth(secret("t", "c", "")),
            Err(Error::Empty("client_secret"))
        ));
        let wi = AcrAuth::WorkloadIdentity {
            tenant_id: Some(String::new()),
            client_id: None,
            token_file: None,
        };
        assert!(matches!(check_auth(wi), Err(Error::Empty("tenant_id"))));
        let mi = AcrAuth::ManagedIdentity {
            client_id: Some(String::new()),
        };
        assert!(matches!(check_auth(mi), Err(Error::Empty("client_id"))));
    }

    #[test]
    fn static_credentials_need_a_colon_free_user_and_a_password() {
        let auth = |user: &str, pw: &str| AcrAuth::Static {
            username: user.into(),
            password: pw.into(),
        };
        let check_auth = |auth| check(AcrSettings::new(vec!["a.azurecr.io".into()], auth));
        assert!(matches!(
            check_auth(auth("", "pw")),
            Err(Error::Empty("username"))
        ));
        assert!(matches!(
            check_auth(auth("a:b", "pw")),
            Err(Error::ColonInUsername)
        ));
        assert!(matches!(check_auth(auth("a", "")), Err(Error::Empty("password"))));
    }

    #[test]
    fn an_empty_scope_is_rejected() {
        let base = || {
            let auth = AcrAuth::ManagedIdentity { client_id: None };
            AcrSettings::new(vec!["a.azurecr.io".into()], auth)
        };
        assert!(matches!(
            check(AcrSettings {
                scope: Some(" ".into()),
                ..base()
            }),
            Err(Error::EmptyScope)
        ));
    }

    #[test]
    fn the_default_scope_is_acrs_audience_of_the_authoritys_cloud() {
        use crate::{ARM_SCOPE, CHINA_SCOPE, DEFAULT_SCOPE, US_GOVERNMENT_SCOPE};
        assert_eq!(scope_for(None, None), DEFAULT_SCOPE);
        assert_eq!(
            DEFAULT_SCOPE, "https://containerregistry.azure.net/.default",
            "AKS' acr-credential-provider's audience"
        );
        for (authority, scope) in [
            ("https://login.microsoftonline.com", DEFAULT_SCOPE),
            ("https://login.chinacloudapi.cn/", CHINA_SCOPE),
            ("https://LOGIN.CHINACLOUDAPI.CN:443", CHINA_SCOPE),
            ("https://login.microsoftonline.us", US_GOVERNMENT_SCOPE),
            ("https://127.0.0.1:8443", DEFAULT_SCOPE),
        ] {
            assert_eq!(scope_for(None, Some(authority)), scope, "{authority}");
        }
        assert_eq!(CHINA_SCOPE, "https://containerregistry.azure.cn/.default");
        assert_eq!(US_GOVERNMENT_SCOPE, "https://containerregistry.azure.us/.default");
        assert_eq!(
            scope_for(
                Some(" https://management.azure.com/.default "),
                Some("https://login.chinacloudapi.cn")
            ),
            ARM_SCOPE,
            "a configured scope wins"
        );
        assert_eq!(scope_for(Some(" "), None), DEFAULT_SCOPE);
        let settings = AcrSettings {
            authority_host: Some("https://login.microsoftonline.us".into()),
            ..AcrSettings::new(vec!["a.azurecr.us".into()], static_auth())
        };
        assert_eq!(settings.effective_scope(), US_GOVERNMENT_SCOPE);
    }
}
