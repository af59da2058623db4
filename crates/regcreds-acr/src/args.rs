//! Settings of the `acr` provider (Azure Container Registry). With Entra auth (client secret, workload
//! identity, managed identity) the Entra token is exchanged for an ACR refresh token (user
//! `00000000-0000-0000-0000-000000000000`), refreshed before its `exp`. Static mode writes a fixed user and
//! password (admin user, repository-scoped token, or service principal), which is what upmc's
//! `ACR_URL` + `ACR_CLIENT_ID` + `ACR_PASSWORD` did.

use std::{path::PathBuf, sync::Arc};

use async_trait::async_trait;
use clap::{Args, ValueEnum};
use regcreds_core::SecretString;
use regcreds_settings::{
    ConfigProblems, ConfiguredProvider, Enablement, ProviderConfig, Schedule, SecretName, Source,
    check_token_file, first_set, given, non_blank, pick, split_list, timeout_seconds, unset_name,
    uses_compat,
};

use crate::{AcrAuth, AcrProvider, AcrSettings, DEFAULT_SECRET, Error};

const REGISTRIES: Source = Source::new("REGCREDS_ACR_REGISTRY", "acr-registry");
const COMPAT_URL: Source = Source::compat("ACR_URL", "acr-url");
const AUTH: Source = Source::new("REGCREDS_ACR_AUTH", "acr-auth");
const TENANT: Source = Source::new("REGCREDS_ACR_TENANT_ID", "acr-tenant-id");
const CLIENT_ID: Source = Source::new("REGCREDS_ACR_CLIENT_ID", "acr-client-id");
const COMPAT_CLIENT_ID: Source = Source::compat("ACR_CLIENT_ID", "acr-compat-client-id");
const SECRET: Source = Source::new("REGCREDS_ACR_CLIENT_SECRET", "acr-client-secret");
const COMPAT_PASSWORD: Source = Source::compat("ACR_PASSWORD", "acr-password");
const SCHEDULE: Source = Source::new("REGCREDS_ACR_SCHEDULE", "acr-schedule");
const TIMEOUT: Source = Source::new("REGCREDS_ACR_TIMEOUT_SECONDS", "acr-timeout-seconds");
const SECRET_NAME: Source = Source::new("REGCREDS_ACR_SECRET_NAME", "acr-secret-name");
const SCOPE: Source = Source::new("REGCREDS_ACR_SCOPE", "acr-scope");
const AUTHORITY_HOST: Source = Source::new("REGCREDS_ACR_AUTHORITY_HOST", "acr-authority-host");
const CA_FILE: Source = Source::new("REGCREDS_ACR_CA_FILE", "acr-ca-file");

/// How the `acr` provider authenticates.
#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum AcrAuthArg {
    /// Service principal client secret → Entra token → ACR refresh token.
    ClientSecret,
    /// AKS workload identity (federated token file) → Entra token → ACR refresh token.
    WorkloadIdentity,
    /// Node / VM managed identity → Entra token → ACR refresh token.
    ManagedIdentity,
    /// Fixed user and password written as they are.
    Static,
}

/// `acr` provider.
#[derive(Args, Debug, Clone)]
#[command(next_help_heading = "Provider: acr (Azure; upmc ACR_URL / ACR_CLIENT_ID / ACR_PASSWORD accepted)")]
pub struct AcrArgs {
    /// Login servers, comma-separated (e.g. `myregistry.azurecr.io`).
    #[arg(long = "acr-registry", env = "REGCREDS_ACR_REGISTRY")]
    acr_registries: Option<String>,
    #[arg(long = "acr-url", env = "ACR_URL", hide = true)]
    acr_compat_url: Option<String>,
    /// Authentication mode [default: client-secret when a tenant and secret are set, static when only a
    /// client ID and password are set (upmc), workload-identity when AZURE_FEDERATED_TOKEN_FILE is set,
    /// else managed-identity].
    #[arg(long = "acr-auth", env = "REGCREDS_ACR_AUTH", value_enum)]
    acr_auth: Option<AcrAuthArg>,
    /// Entra tenant (directory) ID.
    #[arg(long = "acr-tenant-id", env = "REGCREDS_ACR_TENANT_ID")]
    acr_tenant_id: Option<String>,
    /// Client (application) ID; in static mode, the user name.
    #[arg(long = "acr-client-id", env = "REGCREDS_ACR_CLIENT_ID")]
    acr_client_id: Option<String>,
    #[arg(long = "acr-compat-client-id", env = "ACR_CLIENT_ID", hide = true)]
    acr_compat_client_id: Option<String>,
    /// Client secret; in static mode, the password.
    #[arg(
        long = "acr-client-secret",
        env = "REGCREDS_ACR_CLIENT_SECRET",
        hide_env_values = true
    )]
    acr_client_secret: Option<SecretString>,
    #[arg(
        long = "acr-password",
        env = "ACR_PASSWORD",
        hide = true,
        hide_env_values = true
    )]
    acr_compat_password: Option<SecretString>,
    /// Entra authority host (sovereign clouds), https only.
    #[arg(long = "acr-authority-host", env = "REGCREDS_ACR_AUTHORITY_HOST")]
    acr_authority_host: Option<String>,
    /// Entra scope of the token exchanged at the registry [default: ACR's own audience,
    /// https://containerregistry.azure.net/.default; .azure.cn with authority login.chinacloudapi.cn,
    /// .azure.us with login.microsoftonline.us]. https://management.azure.com/.default (ARM) works only
    /// while the registry accepts ARM-audience tokens.
    #[arg(long = "acr-scope", env = "REGCREDS_ACR_SCOPE")]
    acr_scope: Option<String>,
    /// Base URL for `/oauth2/exchange` instead of `https://<registry>` (private endpoints).
    #[arg(long = "acr-exchange-url", env = "REGCREDS_ACR_EXCHANGE_URL")]
    acr_exchange_url: Option<String>,
    /// Extra CA certificates (PEM) for Entra and the registry.
    #[arg(long = "acr-ca-file", env = "REGCREDS_ACR_CA_FILE")]
    acr_ca_file: Option<PathBuf>,
    /// Name of the Secret written to every namespace.
    #[arg(long = "acr-secret-name", env = "REGCREDS_ACR_SECRET_NAME", default_value = DEFAULT_SECRET)]
    acr_secret_name: String,
    /// Refresh schedule (6-field cron); tokens are also refreshed halfway to their `exp`.
    #[arg(
        long = "acr-schedule",
        env = "REGCREDS_ACR_SCHEDULE",
        default_value = "0 */30 * * * *"
    )]
    acr_schedule: String,
    /// Upper bound for each step of a mint, in seconds.
    #[arg(
        long = "acr-timeout-seconds",
        env = "REGCREDS_ACR_TIMEOUT_SECONDS",
        default_value_t = 30
    )]
    acr_timeout_seconds: u64,
}

#[async_trait]
impl ProviderConfig for AcrArgs {
    fn name(&self) -> &'static str {
        "acr"
    }

    /// Builds the provider if a registry or ACR credential is configured.
    async fn build(&self, problems: &mut ConfigProblems) -> Enablement {
        self.read(problems, false).await
    }

    /// Pods' own identities only: regcreds' workload identity token file is not needed.
    async fn build_for_pods(&self, problems: &mut ConfigProblems) -> Enablement {
        self.read(problems, true).await
    }
}

impl AcrArgs {
    async fn read(&self, problems: &mut ConfigProblems, for_pods: bool) -> Enablement {
        let registries = pick(&[
            (REGISTRIES, &self.acr_registries),
            (COMPAT_URL, &self.acr_compat_url),
        ]);
        let client_id = pick(&[
            (CLIENT_ID, &self.acr_client_id),
            (COMPAT_CLIENT_ID, &self.acr_compat_client_id),
        ]);
        let secret = pick(&[
            (SECRET, &self.acr_client_secret),
            (COMPAT_PASSWORD, &self.acr_compat_password),
        ]);
        let set = [
            (
                registries.as_ref().map_or(REGISTRIES, |r| r.1),
                registries.is_some(),
            ),
            (client_id.as_ref().map_or(CLIENT_ID, |c| c.1), client_id.is_some()),
            (secret.as_ref().map_or(SECRET, |s| s.1), secret.is_some()),
            (AUTH, self.acr_auth.is_some()),
        ];
        let Some(configured_by) = first_set(&set) else {
            return Enablement::Disabled(format!("set {} or {}", REGISTRIES.env, COMPAT_URL.env));
        };
        let compat = uses_compat(&set);
        let Some((registry_list, _)) = registries.as_ref() else {
            problems.add(
                unset_name(&[REGISTRIES, COMPAT_URL], compat),
                "is required when the acr provider is configured",
            );
            return Enablement::Invalid;
        };
        let mode = self
            .acr_auth
            .unwrap_or_else(|| self.default_mode(secret.is_some()));
        if mode == AcrAuthArg::WorkloadIdentity
            && !for_pods
            && !check_token_file("AZURE_FEDERATED_TOKEN_FILE", problems)
        {
            return Enablement::Invalid;
        }
        let Some(auth) = self.auth(mode, client_id.clone(), secret.clone(), compat, problems) else {
            return Enablement::Invalid;
        };
        let schedule = Schedule::parse(&self.acr_schedule, SCHEDULE, problems);
        let timeout = timeout_seconds(self.acr_timeout_seconds, TIMEOUT, problems);
        let secret_name = SecretName::read(&self.acr_secret_name, SECRET_NAME.env, problems);
        let (Some(schedule), Some(timeout), Some(secret_name)) = (schedule, timeout, secret_name) else {
            return Enablement::Invalid;
        };
        let mut settings = AcrSettings::new(split_list(registry_list), auth);
        settings.secret_name = secret_name.into();
        settings.authority_host = non_blank(&self.acr_authority_host);
        settings.scope = non_blank(&self.acr_scope);
        settings.exchange_base_url = non_blank(&self.acr_exchange_url);
        settings.ca_file = non_blank(&self.acr_ca_file);
        settings.timeout = timeout;
        let provider = match for_pods {
            true => AcrProvider::for_pods(settings).await,
            false => AcrProvider::new(settings).await,
        };
        match provider {
            Ok(provider) => Enablement::Enabled(ConfiguredProvider::new(
                Arc::new(provider),
                schedule,
                format!("{configured_by} is set (auth {})", mode_name(mode)),
            )),
            Err(error) => {
                let blamed = match &error {
                    Error::NoRegistry
                    | Error::InvalidRegistry { .. }
                    | Error::ExchangeUrlWithSeveralRegistries => registries.map_or(REGISTRIES, |r| r.1),
                    Error::EmptyScope => SCOPE,
                    Error::AuthorityNotHttps(_) => AUTHORITY_HOST,
                    Error::HttpClient(client) if client.is_ca_file() => CA_FILE,
                    Error::ColonInUsername => client_id.map_or(CLIENT_ID, |c| c.1),
                    _ => AUTH,
                };
                problems.add(blamed, error);
                Enablement::Invalid
            }
        }
    }
}

impl AcrArgs {
    /// The mode a user most likely means when none is given (see the flag's help).
    fn default_mode(&self, has_secret: bool) -> AcrAuthArg {
        match (has_secret, given(&self.acr_tenant_id)) {
            (true, true) => AcrAuthArg::ClientSecret,
            (true, false) => AcrAuthArg::Static,
            _ if std::env::var_os("AZURE_FEDERATED_TOKEN_FILE").is_some() => AcrAuthArg::WorkloadIdentity,
            _ => AcrAuthArg::ManagedIdentity,
        }
    }

    fn auth(
        &self,
        mode: AcrAuthArg,
        client_id: Option<(String, Source)>,
        secret: Option<(SecretString, Source)>,
        compat: bool,
        problems: &mut ConfigProblems,
    ) -> Option<AcrAuth> {
        let mut require = |value: Option<(String, Source)>, names: &[Source]| {
            if value.is_none() {
                problems.add(
                    unset_name(names, compat),
                    format!("is required with REGCREDS_ACR_AUTH={}", mode_name(mode)),
                );
            }
            value.map(|(v, _)| v)
        };
        let (client_names, secret_names) = (&[CLIENT_ID, COMPAT_CLIENT_ID], &[SECRET, COMPAT_PASSWORD]);
        match mode {
            AcrAuthArg::ClientSecret => {
                let tenant = require(non_blank(&self.acr_tenant_id).map(|t| (t, TENANT)), &[TENANT]);
                let client = require(client_id, client_names);
                let secret = require(secret.map(|(s, src)| (s.expose().to_string(), src)), secret_names);
                Some(AcrAuth::ClientSecret {
                    tenant_id: tenant?,
                    client_id: client?,
                    client_secret: secret?.into(),
                })
            }
            AcrAuthArg::Static => {
                let user = require(client_id, client_names);
                let password = require(secret.map(|(s, src)| (s.expose().to_string(), src)), secret_names);
                Some(AcrAuth::Static {
                    username: user?,
                    password: password?.into(),
                })
            }
            AcrAuthArg::WorkloadIdentity => Some(AcrAuth::WorkloadIdentity {
                tenant_id: non_blank(&self.acr_tenant_id),
                client_id: client_id.map(|(c, _)| c),
                token_file: None,
            }),
            AcrAuthArg::ManagedIdentity => Some(AcrAuth::ManagedIdentity {
                client_id: client_id.map(|(c, _)| c),
            }),
        }
    }
}

fn mode_name(mode: AcrAuthArg) -> &'static str {
    match mode {
        AcrAuthArg::ClientSecret => "client-secret",
        AcrAuthArg::WorkloadIdentity => "workload-identity",
        AcrAuthArg::ManagedIdentity => "managed-identity",
        AcrAuthArg::Static => "static",
    }
}
