//! What reading one provider's settings gives: a provider ready to run, or why not.
//!
//! ```text
//!  each provider crate's Args ──ProviderConfig::build──▶ Enablement ─┬─ Enabled(ConfiguredProvider)
//!                                                                  ├─ Disabled(hint)
//!                                                                  └─ Invalid (problems recorded)
//! ```

use std::sync::Arc;

use async_trait::async_trait;
use regcreds_core::{Provider, RegistryHost};

use crate::{ConfigProblems, Schedule};

/// A provider's settings as the user gave them (a clap `Args` struct in the provider's crate).
#[async_trait]
pub trait ProviderConfig: Send + Sync {
    /// The provider's name, as `--provider` accepts it and `config check` shows it.
    fn name(&self) -> &'static str;

    /// Reads the settings: enabled when one of them is set, and then every problem with them is
    /// recorded in `problems`, naming the variable the user set.
    async fn build(&self, problems: &mut ConfigProblems) -> Enablement;

    /// Like [`ProviderConfig::build`], for the kubelet plugin in ServiceAccount token mode, where the
    /// kubelet hands over each pulling pod's token: a provider that would read its own token from a file
    /// does not need that file.
    async fn build_for_pods(&self, problems: &mut ConfigProblems) -> Enablement {
        self.build(problems).await
    }
}

/// Who the providers are built for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    /// regcreds' own identity: `run`, `mint`, `check`, and the plugin without ServiceAccount tokens.
    Controller,
    /// The kubelet plugin with each pod's ServiceAccount token ([`ProviderConfig::build_for_pods`]).
    PodTokens,
}

/// A provider ready to run, with its refresh schedule and why it is enabled.
#[derive(Clone)]
pub struct ConfiguredProvider {
    /// The provider.
    pub provider: Arc<dyn Provider>,
    /// Its cron schedule.
    pub schedule: Schedule,
    /// Which setting enabled it, for `config check`.
    pub reason: String,
    /// A registry this provider's credentials must be proven against before they are propagated.
    requires_probe: Option<ProbeRequirement>,
}

/// A registry that may accept a provider's credential at login and still refuse every pull, so that
/// only a probe image can tell.
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

/// Reads every provider's settings in order; problems are collected, not returned early.
pub async fn statuses(
    configs: &[&dyn ProviderConfig],
    purpose: Purpose,
    problems: &mut ConfigProblems,
) -> Vec<ProviderStatus> {
    let mut statuses = Vec::with_capacity(configs.len());
    for config in configs {
        let enablement = match purpose {
            Purpose::Controller => config.build(problems).await,
            Purpose::PodTokens => config.build_for_pods(problems).await,
        };
        statuses.push(ProviderStatus {
            name: config.name(),
            enablement,
        });
    }
    statuses
}

/// The enabled providers, or every configuration problem. Two providers writing the same Secret would
/// overwrite each other in every namespace, so that is a problem too.
pub async fn enabled(
    configs: &[&dyn ProviderConfig],
    purpose: Purpose,
) -> Result<Vec<ConfiguredProvider>, ConfigProblems> {
    let mut problems = ConfigProblems::default();
    let enabled: Vec<ConfiguredProvider> = statuses(configs, purpose, &mut problems)
        .await
        .into_iter()
        .filter_map(|status| match status.enablement {
            Enablement::Enabled(provider) => Some(provider),
            _ => None,
        })
        .collect();
    check_distinct_secret_names(&enabled, &mut problems);
    problems.into_result(enabled)
}

fn check_distinct_secret_names(enabled: &[ConfiguredProvider], problems: &mut ConfigProblems) {
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
