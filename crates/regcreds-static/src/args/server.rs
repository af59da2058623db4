//! Settings of the `static` provider: one private registry from server, user and password.
//! Compatible with upmc registry-creds' `DOCKER_PRIVATE_REGISTRY_*` variables and `--dpr-*` flags.

use std::sync::Arc;

use async_trait::async_trait;
use clap::Args;
use regcreds_core::SecretString;
use regcreds_settings::{
    ConfigProblems, ConfiguredProvider, Enablement, ProviderConfig, Schedule, SecretName, Source, first_set,
    given, require, uses_compat,
};

use crate::{DEFAULT_STATIC_SECRET, Error, StaticProvider};

const SERVER: Source = Source::new("REGCREDS_STATIC_SERVER", "static-server");
const DPR_SERVER: Source = Source::compat("DOCKER_PRIVATE_REGISTRY_SERVER", "dpr-server");
const USER: Source = Source::new("REGCREDS_STATIC_USER", "static-user");
const DPR_USER: Source = Source::compat("DOCKER_PRIVATE_REGISTRY_USER", "dpr-user");
const PASSWORD: Source = Source::new("REGCREDS_STATIC_PASSWORD", "static-password");
const DPR_PASSWORD: Source = Source::compat("DOCKER_PRIVATE_REGISTRY_PASSWORD", "dpr-password");
const SCHEDULE: Source = Source::new("REGCREDS_STATIC_SCHEDULE", "static-schedule");
const SECRET_NAME: Source = Source::new("REGCREDS_STATIC_SECRET_NAME", "static-secret-name");

/// `static` provider: a fixed user and password for one registry (enabled when any of them is set).
#[derive(Args, Debug, Clone)]
#[command(
    next_help_heading = "Provider: static (one private registry; upmc DOCKER_PRIVATE_REGISTRY_* accepted)"
)]
pub struct StaticArgs {
    /// Registry host, e.g. `registry.example.com:5000` or `https://registry.example.com`.
    #[arg(long = "static-server", env = "REGCREDS_STATIC_SERVER")]
    static_server: Option<String>,
    #[arg(long = "dpr-server", env = "DOCKER_PRIVATE_REGISTRY_SERVER", hide = true)]
    static_dpr_server: Option<String>,
    /// User name for the registry.
    #[arg(long = "static-user", env = "REGCREDS_STATIC_USER")]
    static_user: Option<String>,
    #[arg(long = "dpr-user", env = "DOCKER_PRIVATE_REGISTRY_USER", hide = true)]
    static_dpr_user: Option<String>,
    /// Password or token for the registry.
    #[arg(
        long = "static-password",
        env = "REGCREDS_STATIC_PASSWORD",
        hide_env_values = true
    )]
    static_password: Option<SecretString>,
    #[arg(
        long = "dpr-password",
        env = "DOCKER_PRIVATE_REGISTRY_PASSWORD",
        hide = true,
        hide_env_values = true
    )]
    static_dpr_password: Option<SecretString>,
    /// Name of the Secret written to every namespace.
    #[arg(long = "static-secret-name", env = "REGCREDS_STATIC_SECRET_NAME", default_value = DEFAULT_STATIC_SECRET,
          alias = "dpr-secret-name")]
    static_secret_name: String,
    /// Refresh schedule (6-field cron with seconds); static credentials only need an occasional re-check.
    #[arg(
        long = "static-schedule",
        env = "REGCREDS_STATIC_SCHEDULE",
        default_value = "0 0 * * * *"
    )]
    static_schedule: String,
}

#[async_trait]
impl ProviderConfig for StaticArgs {
    fn name(&self) -> &'static str {
        "static"
    }

    /// Builds the provider if any of its settings is given.
    async fn build(&self, problems: &mut ConfigProblems) -> Enablement {
        let set = [
            (SERVER, given(&self.static_server)),
            (DPR_SERVER, given(&self.static_dpr_server)),
            (USER, given(&self.static_user)),
            (DPR_USER, given(&self.static_dpr_user)),
            (PASSWORD, given(&self.static_password)),
            (DPR_PASSWORD, given(&self.static_dpr_password)),
        ];
        let Some(configured_by) = first_set(&set) else {
            return Enablement::Disabled(format!("set {} or {}", SERVER.env, DPR_SERVER.env));
        };
        let schedule = Schedule::parse(&self.static_schedule, SCHEDULE, problems);
        let secret_name = SecretName::read(&self.static_secret_name, SECRET_NAME.env, problems);
        let compat = uses_compat(&set);
        let server = require(
            &[
                (SERVER, &self.static_server),
                (DPR_SERVER, &self.static_dpr_server),
            ],
            "static",
            compat,
            problems,
        );
        let user = require(
            &[(USER, &self.static_user), (DPR_USER, &self.static_dpr_user)],
            "static",
            compat,
            problems,
        );
        let password = require(
            &[
                (PASSWORD, &self.static_password),
                (DPR_PASSWORD, &self.static_dpr_password),
            ],
            "static",
            compat,
            problems,
        );
        // The server is checked on its own so that its problem is reported even when others are missing.
        let server = server.filter(
            |(server, source)| match regcreds_core::RegistryHost::parse(server) {
                Ok(_) => true,
                Err(error) => {
                    problems.add(source, format!("server: {error}"));
                    false
                }
            },
        );
        let (Some(server), Some(user), Some(password), Some(schedule), Some(secret_name)) =
            (server, user, password, schedule, secret_name)
        else {
            return Enablement::Invalid;
        };
        match StaticProvider::new(String::from(secret_name), &server.0, &user.0, password.0) {
            Ok(provider) => Enablement::Enabled(ConfiguredProvider::new(
                Arc::new(provider),
                schedule,
                format!("{configured_by} is set"),
            )),
            Err(error) => {
                let blamed = match error {
                    Error::Server(_) => server.1,
                    Error::EmptyUser | Error::ColonInUser => user.1,
                    _ => password.1,
                };
                problems.add(blamed, error);
                Enablement::Invalid
            }
        }
    }
}
