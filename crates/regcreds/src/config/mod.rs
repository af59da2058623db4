//! Configuration: every setting is a flag and an environment variable (clap derive with `env`).
//!
//! ```text
//!  env / flags ──clap──▶ ProviderArgs (one flattened field per provider crate's Args)
//!                            │ regcreds_settings::enabled: each ProviderConfig::build, in order
//!                            ▼
//!                        Vec<ConfiguredProvider>   (or ConfigProblems → exit 2)
//!                        regcreds_propagator::PropagationArgs, regcreds_heal::HealArgs, InstanceArgs
//!                            ──▶ propagator, healer and leader-election settings
//! ```
//!
//! Each provider's variables, aliases and checks live in its own crate (`regcreds-<name>`, feature
//! `cli`); what they share lives in `regcreds-settings`. A provider is enabled only when one of its
//! settings is given; then all of its required settings must be valid. Every problem is collected and
//! reported at once, one line each, naming the variable, before anything talks to a cluster or a cloud.

mod instance;

use clap::Args;

pub use instance::{Instance, InstanceArgs, workload_of};
pub use regcreds_heal::HealArgs;
pub use regcreds_propagator::{PropagationArgs, WatchModeArg};
pub use regcreds_settings::{
    ConfigProblems, ConfiguredProvider, Enablement, ProviderConfig, ProviderStatus, Purpose, Source,
    parse_go_bool,
};

/// Declares [`ProviderArgs`] with one flattened field per provider crate's `Args`, and the list
/// [`ProviderArgs::all`] that every command loops over: a new provider is one line here.
macro_rules! providers {
    ($($field:ident: $args:ty),+ $(,)?) => {
        /// Settings of every provider, in the order they are built and reported.
        #[derive(Args, Debug, Clone)]
        pub struct ProviderArgs {
            $(
                #[command(flatten)]
                $field: $args,
            )+
        }

        impl ProviderArgs {
            /// Every provider's settings, in order.
            fn all(&self) -> Vec<&dyn ProviderConfig> {
                vec![$(&self.$field),+]
            }
        }
    };
}

providers! {
    static_registry: regcreds_static::StaticArgs,
    dockerconfig: regcreds_static::DockerConfigArgs,
    dockerhub: regcreds_dockerhub::DockerHubArgs,
    ecr: regcreds_ecr::EcrArgs,
    gcr: regcreds_gcr::GcrArgs,
    acr: regcreds_acr::AcrArgs,
    ghcr: regcreds_ghcr::GhcrArgs,
    quay: regcreds_quay::QuayArgs,
}

impl ProviderArgs {
    /// Whether `name` (given through `setting`, a `--provider` option) names a provider; if not, the
    /// problem lists the known names.
    pub fn knows(&self, name: &str, setting: &str, problems: &mut ConfigProblems) -> bool {
        let names: Vec<&str> = self.all().iter().map(|config| config.name()).collect();
        let known = names.contains(&name);
        if !known {
            problems.add(
                setting,
                format!("unknown provider {name:?} (known: {})", names.join(", ")),
            );
        }
        known
    }

    /// Reads every provider's settings; problems are collected, not returned early.
    pub async fn statuses(&self, problems: &mut ConfigProblems) -> Vec<ProviderStatus> {
        regcreds_settings::statuses(&self.all(), Purpose::Controller, problems).await
    }

    /// The enabled providers, or every configuration problem (two providers writing one Secret included).
    pub async fn build(&self) -> Result<Vec<ConfiguredProvider>, ConfigProblems> {
        regcreds_settings::enabled(&self.all(), Purpose::Controller).await
    }

    /// Like [`Self::build`], for the kubelet plugin when the kubelet passes each pod's ServiceAccount
    /// token: a provider's own token file is then not needed.
    pub async fn build_for_pods(&self) -> Result<Vec<ConfiguredProvider>, ConfigProblems> {
        regcreds_settings::enabled(&self.all(), Purpose::PodTokens).await
    }
}
