//! What every provider's configuration shares: where a value comes from, blank-as-unset, the problem
//! collector, cron schedules, Secret names, timeouts, and the interface each provider's `Args` implements.
//!
//! ```text
//!  env / flags ──clap (in each provider crate, feature `cli`)──▶ <Provider>Args
//!       │                                                          │ ProviderConfig::build
//!       │   pick / require (value.rs): canonical names, then        ▼
//!       │   compatible aliases (upmc, imagepullsecret-patcher)   Enablement ──▶ ConfiguredProvider
//!       └──────────────────────────────────────────────────────▶ ConfigProblems (one line per variable, exit 2)
//! ```
//!
//! No clap here: the names are data ([`Source`]), so this crate is shared by providers and the binary
//! without tying either to a command line.

mod checks;
mod go;
mod problems;
mod provider;
mod schedule;
mod secret_name;
mod source;
mod value;

pub use checks::{check_token_file, timeout_seconds};
pub use go::{parse_go_bool, parse_go_duration};
pub use problems::{ConfigProblem, ConfigProblems};
pub use provider::{
    ConfiguredProvider, Enablement, ProbeRequirement, ProviderConfig, ProviderStatus, Purpose, enabled,
    statuses,
};
pub use schedule::Schedule;
pub use secret_name::{SecretName, is_dns_subdomain};
pub use source::Source;
pub use value::{Blank, first_set, given, non_blank, pick, require, split_list, unset_name, uses_compat};
