//! Settings of the `dockerhub` provider. `DOCKER_USER` / `DOCKER_PASSWORD` are the names used by
//! upmc-style Deployments.

use std::sync::Arc;

use async_trait::async_trait;
use clap::Args;
use regcreds_core::SecretString;
use regcreds_settings::{
    ConfigProblems, ConfiguredProvider, Enablement, ProviderConfig, Schedule, SecretName, Source, first_set,
    given, require, uses_compat,
};

use crate::{DEFAULT_SECRET, DockerHubProvider, Error};

const USER: Source = Source::new("REGCREDS_DOCKERHUB_USER", "dockerhub-user");
const COMPAT_USER: Source = Source::compat("DOCKER_USER", "docker-user");
const PASSWORD: Source = Source::new("REGCREDS_DOCKERHUB_PASSWORD", "dockerhub-password");
const COMPAT_PASSWORD: Source = Source::compat("DOCKER_PASSWORD", "docker-password");
const SCHEDULE: Source = Source::new("REGCREDS_DOCKERHUB_SCHEDULE", "dockerhub-schedule");
const SECRET_NAME: Source = Source::new("REGCREDS_DOCKERHUB_SECRET_NAME", "dockerhub-secret-name");

/// `dockerhub` provider: a Docker ID with a password or personal access token.
#[derive(Args, Debug, Clone)]
#[command(next_help_heading = "Provider: dockerhub (DOCKER_USER / DOCKER_PASSWORD accepted)")]
pub struct DockerHubArgs {
    /// Docker ID.
    #[arg(long = "dockerhub-user", env = "REGCREDS_DOCKERHUB_USER")]
    hub_user: Option<String>,
    #[arg(long = "docker-user", env = "DOCKER_USER", hide = true)]
    hub_compat_user: Option<String>,
    /// Password or personal access token (`dckr_pat_…`, read-only scope recommended).
    #[arg(
        long = "dockerhub-password",
        env = "REGCREDS_DOCKERHUB_PASSWORD",
        hide_env_values = true
    )]
    hub_password: Option<SecretString>,
    #[arg(
        long = "docker-password",
        env = "DOCKER_PASSWORD",
        hide = true,
        hide_env_values = true
    )]
    hub_compat_password: Option<SecretString>,
    /// Name of the Secret written to every namespace.
    #[arg(long = "dockerhub-secret-name", env = "REGCREDS_DOCKERHUB_SECRET_NAME", default_value = DEFAULT_SECRET)]
    hub_secret_name: String,
    /// Refresh schedule (6-field cron with seconds).
    #[arg(
        long = "dockerhub-schedule",
        env = "REGCREDS_DOCKERHUB_SCHEDULE",
        default_value = "0 0 * * * *"
    )]
    hub_schedule: String,
}

#[async_trait]
impl ProviderConfig for DockerHubArgs {
    fn name(&self) -> &'static str {
        "dockerhub"
    }

    /// Builds the provider if a user or password is given.
    async fn build(&self, problems: &mut ConfigProblems) -> Enablement {
        let set = [
            (USER, given(&self.hub_user)),
            (COMPAT_USER, given(&self.hub_compat_user)),
            (PASSWORD, given(&self.hub_password)),
            (COMPAT_PASSWORD, given(&self.hub_compat_password)),
        ];
        let Some(configured_by) = first_set(&set) else {
            return Enablement::Disabled(format!("set {} or {}", USER.env, COMPAT_USER.env));
        };
        let schedule = Schedule::parse(&self.hub_schedule, SCHEDULE, problems);
        let secret_name = SecretName::read(&self.hub_secret_name, SECRET_NAME.env, problems);
        let compat = uses_compat(&set);
        let user = require(
            &[(USER, &self.hub_user), (COMPAT_USER, &self.hub_compat_user)],
            "dockerhub",
            compat,
            problems,
        );
        let password = require(
            &[
                (PASSWORD, &self.hub_password),
                (COMPAT_PASSWORD, &self.hub_compat_password),
            ],
            "dockerhub",
            compat,
            problems,
        );
        let (Some(user), Some(password), Some(schedule), Some(secret_name)) =
            (user, password, schedule, secret_name)
        else {
            return Enablement::Invalid;
        };
        match DockerHubProvider::new(String::from(secret_name), &user.0, password.0) {
            Ok(provider) => Enablement::Enabled(ConfiguredProvider::new(
                Arc::new(provider),
                schedule,
                format!("{configured_by} is set"),
            )),
            Err(error) => {
                let blamed = match error {
                    Error::EmptyPassword => password.1,
                    Error::EmptyUser | Error::InvalidUser => user.1,
                };
                problems.add(blamed, error);
                Enablement::Invalid
            }
        }
    }
}
