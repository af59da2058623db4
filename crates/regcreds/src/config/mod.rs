//! Configuration: every setting is a flag and an environment variable (clap derive with `env`).
//!
//! ```text
//!  env / flags ──clap──▶ ProviderArgs ──build()──▶ Vec<ConfiguredProvider>   (or ConfigProblems → exit 2)
//!                        PropagationArgs ─────────▶ propagator settings
//! ```
//!
//! A provider is enabled only when one of its settings is given; then all of its required settings must
//! be valid. Every problem is collected and reported at once, one line each, naming the variable, before
//! anything talks to a cluster or a cloud.

mod acr;
mod dockerconfig;
mod dockerhub;
mod ecr;
mod gcr;
mod ghcr;
mod healing;
mod instance;
mod problems;
mod propagation;
mod quay;
mod schedule;
mod setting;
mod static_registry;

use std::sync::Arc;

use clap::Args;
use regcreds_core::{Provider, RegistryHost};

pub use acr::AcrArgs;
pub use dockerconfig::DockerConfigArgs;
pub use dockerhub::DockerHubArgs;
pub use ecr::EcrArgs;
pub use gcr::GcrArgs;
pub use ghcr::GhcrArgs;
pub use healing::HealArgs;
pub use instance::{Instance, InstanceArgs, workload_of};
pub use problems::ConfigProblems;
pub use propagation::{PropagationArgs, WatchModeArg, parse_go_bool};
pub use quay::QuayArgs;
pub use schedule::Schedule;
pub use setting::Source;
pub use static_registry::StaticArgs;

/// Names accepted by `--provider`, in the order providers are built and reported.
pub const PROVIDER_NAMES: &[&str] = &[
    "static",
    "dockerconfigjson",
    "dockerhub",
    "ecr",
    "gcr",
    "acr",
    "ghcr",
    "quay",
];

/// A provider ready to run, with its refresh schedule and why it is enabled.
#[derive(Clone)]
pub struct ConfiguredProvider {
    /// The provider.
    pub provider: Arc<dyn Provider>,
    /// Its cron schedule.
    pub schedule: Schedule,
    /// Which setting enabled it, for `config check`.
    pub reason: String,
    /// The variable its Secret name came from, when not `REGCREDS_<PROVIDER>_SECRET_NAME`.
    secret_name_setting: Option<String>,
    /// A registry this provider's credentials must be proven against before they are propagated.
    requires_probe: Option<ProbeRequirement>,
}

/// A registry that may accept a provider's credential at login and still refuse every pull, so that
/// only a probe image can tell (see `verification::require_probes`).
#[derive(Clone, Debug)]
pub struct ProbeRequirement {
    /// The registry the provider writes credentials for.
    pub registry: RegistryHost,
    /// Why, for the problem shown when the probe is missing.
    pub why: &'static str,
}

impl ConfiguredProvider {
    /// Bundles a provider with its schedule.
    pub fn new(provider: Arc<dyn Provider>, schedule: Schedule, reason: String) -> Self {
        Self {
            provider,
            schedule,
            reason,
            secret_name_setting: None,
            requires_probe: None,
        }
    }

    /// Requires a probe image on a registry (see [`ProbeRequirement`]).
    pub fn requiring_probe(mut self, requirement: ProbeRequirement) -> Self {
        self.requires_probe = Some(requirement);
        self
    }

    /// The probe image this provider needs, if any.
    pub fn requires_probe(&self) -> Option<&ProbeRequirement> {
        self.requires_probe.as_ref()
    }

    /// Names the variable the Secret name came from (a compatible one), for problems with it.
    pub fn with_secret_name_setting(mut self, setting: impl std::fmt::Display) -> Self {
        self.secret_name_setting = Some(setting.to_string());
        self
    }

    /// The variable a problem with the Secret name is reported against.
    fn secret_name_setting(&self) -> String {
        self.secret_name_setting.clone().unwrap_or_else(|| {
            format!(
                "REGCREDS_{}_SECRET_NAME",
                self.provider.name().to_ascii_uppercase()
            )
        })
    }
}

/// The outcome of reading one provider's settings.
pub enum Enablement {
    /// Configured and valid.
    Enabled(ConfiguredProvider),
    /// Not configured; the hint says how to enable it.
    Disabled(String),
    /// Configured but invalid; the problems were recorded.
    Invalid,
}

/// A provider's name with the outcome of its settings, for `config check`.
pub struct ProviderStatus {
    /// Provider name.
    pub name: &'static str,
    /// What came of its settings.
    pub enablement: Enablement,
}

/// Settings of every provider.
#[derive(Args, Debug, Clone)]
pub struct ProviderArgs {
    #[command(flatten)]
    static_registry: StaticArgs,
    #[command(flatten)]
    dockerconfig: DockerConfigArgs,
    #[command(flatten)]
    dockerhub: DockerHubArgs,
    #[command(flatten)]
    ecr: EcrArgs,
    #[command(flatten)]
    gcr: GcrArgs,
    #[command(flatten)]
    acr: AcrArgs,
    #[command(flatten)]
    ghcr: GhcrArgs,
    #[command(flatten)]
    quay: QuayArgs,
}

impl ProviderArgs {
    /// Reads every provider's settings; problems are collected, not returned early.
    pub async fn statuses(&self, problems: &mut ConfigProblems) -> Vec<ProviderStatus> {
        let status = |name, enablement| ProviderStatus { name, enablement };
        vec![
            status("static", self.static_registry.build(problems)),
            status("dockerconfigjson", self.dockerconfig.build(problems).await),
            status("dockerhub", self.dockerhub.build(problems)),
            status("ecr", self.ecr.build(problems).await),
            status("gcr", self.gcr.build(problems).await),
            status("acr", self.acr.build(problems).await),
            status("ghcr", self.ghcr.build(problems).await),
            status("quay", self.quay.build(problems).await),
        ]
    }

    /// The enabled providers, or every configuration problem. Two providers writing the same Secret
    /// would overwrite each other in every namespace, so that is a problem too.
    pub async fn build(&self) -> Result<Vec<ConfiguredProvider>, ConfigProblems> {
        let mut problems = ConfigProblems::default();
        let enabled: Vec<ConfiguredProvider> = self
            .statuses(&mut problems)
            .await
            .into_iter()
            .filter_map(|status| match status.enablement {
                Enablement::Enabled(provider) => Some(provider),
                _ => None,
            })
            .collect();
        check_secret_names(&enabled, &mut problems);
        problems.into_result(enabled)
    }
}

fn check_secret_names(enabled: &[ConfiguredProvider], problems: &mut ConfigProblems) {
    // NB: the apiserver would refuse every write of an invalid name (422), in every namespace, forever.
    for configured in enabled {
        let name = configured.provider.secret_name();
        if !is_secret_name(name) {
            problems.add(
                configured.secret_name_setting(),
                format!(
                    "{name:?} is not a valid Secret name (lowercase letters, digits, '-' and '.', \
                     starting and ending with a letter or digit, at most 253 characters)"
                ),
            );
        }
    }
    for (i, a) in enabled.iter().enumerate() {
        for b in &enabled[i + 1..] {
            if a.provider.secret_name() == b.provider.secret_name() {
                problems.add(
                    format!("{} and {} secret names", a.provider.name(), b.provider.name()),
                    format!(
                        "both write Secret {:?}; give each provider its own name",
                        a.provider.secret_name()
                    ),
                );
            }
        }
    }
}

/// Whether `name` is a valid Secret name (a DNS subdomain, RFC 1123).
fn is_secret_name(name: &str) -> bool {
    name.len() <= 253
        && !name.is_empty()
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        })
}

#[cfg(test)]
mod tests {
    use super::is_secret_name;

    #[test]
    fn secret_names_follow_the_dns_subdomain_rules() {
        for good in ["awsecr-cred", "a", "regcreds.pull-1", "0abc"] {
            assert!(is_secret_name(good), "{good}");
        }
        for bad in ["", "Bad_Name", "-x", "x-", "a..b", "a b", &"x".repeat(254)] {
            assert!(!is_secret_name(bad), "{bad}");
        }
    }
}
