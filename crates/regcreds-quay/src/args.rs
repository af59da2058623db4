//! Settings of the `quay` provider: robot account federation. The pod's projected ServiceAccount token
//! is exchanged at Quay for a robot token that lives an hour, refreshed before its `exp`. A robot's
//! static password needs no provider of its own: it is a static credential (`REGCREDS_STATIC_*`).

use std::{path::PathBuf, sync::Arc};

use async_trait::async_trait;
use clap::Args;
use regcreds_settings::{
    ConfigProblems, ConfiguredProvider, Enablement, ProviderConfig, Schedule, SecretName, Source, first_set,
    given, non_blank, timeout_seconds,
};

use crate::{DEFAULT_REGISTRY, DEFAULT_SECRET, DEFAULT_TOKEN_FILE, Error, QuayProvider, QuaySettings};

const ROBOT: Source = Source::new("REGCREDS_QUAY_ROBOT", "quay-robot");
const REGISTRY: Source = Source::new("REGCREDS_QUAY_REGISTRY", "quay-registry");
const TOKEN_FILE: Source = Source::new("REGCREDS_QUAY_TOKEN_FILE", "quay-token-file");
const FEDERATION_URL: Source = Source::new("REGCREDS_QUAY_FEDERATION_URL", "quay-federation-url");
const CA_FILE: Source = Source::new("REGCREDS_QUAY_CA_FILE", "quay-ca-file");
const SECRET_NAME: Source = Source::new("REGCREDS_QUAY_SECRET_NAME", "quay-secret-name");
const SCHEDULE: Source = Source::new("REGCREDS_QUAY_SCHEDULE", "quay-schedule");
const TIMEOUT: Source = Source::new("REGCREDS_QUAY_TIMEOUT_SECONDS", "quay-timeout-seconds");

/// `quay` provider.
#[derive(Args, Debug, Clone)]
#[command(next_help_heading = "Provider: quay (Quay robot account federation)")]
pub struct QuayArgs {
    /// The federated robot account, <organization>+<robot>.
    #[arg(long = "quay-robot", env = "REGCREDS_QUAY_ROBOT")]
    quay_robot: Option<String>,
    /// Quay host (quay.io or self-hosted, host[:port]) [default: quay.io].
    #[arg(long = "quay-registry", env = "REGCREDS_QUAY_REGISTRY")]
    quay_registry: Option<String>,
    /// Projected ServiceAccount token, re-read on every mint [default: /var/run/secrets/regcreds/quay/token].
    #[arg(long = "quay-token-file", env = "REGCREDS_QUAY_TOKEN_FILE")]
    quay_token_file: Option<PathBuf>,
    /// Base URL of the federation endpoint instead of https://<registry>.
    #[arg(long = "quay-federation-url", env = "REGCREDS_QUAY_FEDERATION_URL")]
    quay_federation_url: Option<String>,
    /// Extra CA certificates (PEM) for a self-hosted Quay.
    #[arg(long = "quay-ca-file", env = "REGCREDS_QUAY_CA_FILE")]
    quay_ca_file: Option<PathBuf>,
    /// Name of the Secret written to every namespace.
    #[arg(long = "quay-secret-name", env = "REGCREDS_QUAY_SECRET_NAME", default_value = DEFAULT_SECRET)]
    quay_secret_name: String,
    /// Refresh schedule (6-field cron); tokens are also refreshed halfway to their exp.
    #[arg(
        long = "quay-schedule",
        env = "REGCREDS_QUAY_SCHEDULE",
        default_value = "0 */30 * * * *"
    )]
    quay_schedule: String,
    /// Upper bound for the exchange, in seconds.
    #[arg(
        long = "quay-timeout-seconds",
        env = "REGCREDS_QUAY_TIMEOUT_SECONDS",
        default_value_t = 30
    )]
    quay_timeout_seconds: u64,
    /// Kubelet plugin, ServiceAccount token mode: the ServiceAccount annotation naming the robot a pod's
    /// token is exchanged for (e.g. `regcreds.dev/quay-robot`); without it every pod uses the robot above.
    #[arg(long = "quay-robot-annotation", env = "REGCREDS_QUAY_ROBOT_ANNOTATION")]
    quay_robot_annotation: Option<String>,
}

#[async_trait]
impl ProviderConfig for QuayArgs {
    fn name(&self) -> &'static str {
        "quay"
    }

    /// Builds the provider if a robot, Quay host, token file or federation URL is configured.
    async fn build(&self, problems: &mut ConfigProblems) -> Enablement {
        self.read(problems, false).await
    }

    /// The kubelet passes each pod's token: the token file is not read.
    async fn build_for_pods(&self, problems: &mut ConfigProblems) -> Enablement {
        self.read(problems, true).await
    }
}

impl QuayArgs {
    async fn read(&self, problems: &mut ConfigProblems, for_pods: bool) -> Enablement {
        let set = [
            (ROBOT, given(&self.quay_robot)),
            (REGISTRY, given(&self.quay_registry)),
            (TOKEN_FILE, given(&self.quay_token_file)),
            (FEDERATION_URL, given(&self.quay_federation_url)),
        ];
        let Some(configured_by) = first_set(&set) else {
            return Enablement::Disabled(format!("set {}", ROBOT.env));
        };
        let robot = non_blank(&self.quay_robot);
        if robot.is_none() {
            problems.add(ROBOT, "is required when the quay provider is configured");
        }
        let schedule = Schedule::parse(&self.quay_schedule, SCHEDULE, problems);
        let timeout = timeout_seconds(self.quay_timeout_seconds, TIMEOUT, problems);
        let secret_name = SecretName::read(&self.quay_secret_name, SECRET_NAME.env, problems);
        let (Some(robot), Some(schedule), Some(timeout), Some(secret_name)) =
            (robot, schedule, timeout, secret_name)
        else {
            return Enablement::Invalid;
        };
        let mut settings = QuaySettings::new(robot);
        settings.secret_name = secret_name.into();
        settings.registry = non_blank(&self.quay_registry).unwrap_or_else(|| DEFAULT_REGISTRY.to_string());
        settings.token_file =
            non_blank(&self.quay_token_file).unwrap_or_else(|| PathBuf::from(DEFAULT_TOKEN_FILE));
        settings.federation_url = non_blank(&self.quay_federation_url);
        settings.ca_file = non_blank(&self.quay_ca_file);
        settings.timeout = timeout;
        settings.robot_annotation = non_blank(&self.quay_robot_annotation);
        let provider = match for_pods {
            true => QuayProvider::for_pods(settings).await,
            false => QuayProvider::new(settings).await,
        };
        match provider {
            Ok(provider) => Enablement::Enabled(ConfiguredProvider::new(
                Arc::new(provider),
                schedule,
                format!("{configured_by} is set"),
            )),
            Err(error) => {
                problems.add(blame(&error), error);
                Enablement::Invalid
            }
        }
    }
}

/// The variable a provider error is about.
fn blame(error: &Error) -> Source {
    match error {
        Error::InvalidRobot { .. } => ROBOT,
        Error::InvalidRegistry { .. } => REGISTRY,
        Error::InvalidUrl(_) => FEDERATION_URL,
        Error::UnreadableTokenFile { .. } | Error::EmptyTokenFile(_) | Error::TokenNotJwt(_) => TOKEN_FILE,
        Error::HttpClient(_) => CA_FILE,
    }
}
