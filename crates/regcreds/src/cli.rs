//! The command line: `regcreds run | mint | check | config check | cleanup | credential-provider`.

use clap::{Parser, Subcommand, ValueEnum};

use crate::config::{ConfigProblems, ProviderArgs, Source, parse_go_bool};

/// Mints container registry credentials and keeps every namespace able to pull with them.
#[derive(Parser, Debug)]
#[command(name = "regcreds", version, about, propagate_version = true)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
    /// Logging settings.
    #[command(flatten)]
    pub log: LogArgs,
}

/// Subcommands.
#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the controller: mint on schedule and propagate to every namespace.
    Run(Box<crate::commands::run::RunArgs>),
    /// Mint once and print the dockerconfigjson (masked unless --show-secrets).
    Mint(MintArgs),
    /// Mint once and prove each credential authenticates at its registry (exit 1 if one does not).
    Check(crate::commands::check::RegistryCheckArgs),
    /// Configuration helpers.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Remove the Secrets this regcreds instance created and the ServiceAccount references it added,
    /// cluster-wide (`--all-instances`: those of every instance).
    Cleanup(crate::commands::cleanup::CleanupArgs),
    /// Answer the kubelet as its image credential provider: a CredentialProviderRequest on stdin, the
    /// response on stdout (set in the kubelet's CredentialProviderConfig; no Secret involved).
    CredentialProvider(crate::commands::credential_provider::CredentialProviderArgs),
}

/// `regcreds config ...`
#[derive(Subcommand, Debug)]
pub enum ConfigCommand {
    /// Validate the environment and print the effective configuration (secrets masked).
    Check(ConfigCheckArgs),
}

/// Arguments of `regcreds config check`.
#[derive(clap::Args, Debug)]
pub struct ConfigCheckArgs {
    /// Provider settings.
    #[command(flatten)]
    pub providers: ProviderArgs,
    /// Credential checks (probe images some providers require).
    #[command(flatten)]
    pub checks: regcreds_verify::CheckArgs,
}

/// Arguments of `regcreds mint`.
#[derive(clap::Args, Debug)]
pub struct MintArgs {
    /// Mint only this provider (static, dockerconfigjson, dockerhub, ...).
    #[arg(long, env = "REGCREDS_MINT_PROVIDER")]
    pub provider: Option<String>,
    /// Print passwords and `auth` values instead of masking them.
    #[arg(long, env = "REGCREDS_SHOW_SECRETS")]
    pub show_secrets: bool,
    /// Provider settings.
    #[command(flatten)]
    pub providers: ProviderArgs,
}

/// Log output settings, shared by every subcommand.
#[derive(clap::Args, Debug, Clone)]
#[command(next_help_heading = "Logging")]
pub struct LogArgs {
    /// Log line format.
    #[arg(long, env = "REGCREDS_LOG_FORMAT", value_enum, default_value_t = LogFormat::Plain, global = true)]
    pub log_format: LogFormat,
    /// Log filter in `tracing` EnvFilter syntax, e.g. `info` or `info,regcreds_propagator=debug`.
    #[arg(long, env = "REGCREDS_LOG", default_value = "info", global = true)]
    pub log_level: String,
    /// imagepullsecret-patcher's `CONFIG_DEBUG=true`: debug logs.
    #[arg(long = "debug", env = "CONFIG_DEBUG", hide = true, global = true)]
    pub debug: Option<String>,
}

impl LogArgs {
    /// Whether `CONFIG_DEBUG` asks for debug logs (an invalid value is reported by [`Self::problems`]).
    pub fn debug(&self) -> bool {
        let mut ignored = ConfigProblems::default();
        self.debug_flag(&mut ignored)
    }

    /// Problems with the logging settings (exit 2, like every other setting).
    pub fn problems(&self) -> ConfigProblems {
        let mut problems = ConfigProblems::default();
        self.debug_flag(&mut problems);
        problems
    }

    fn debug_flag(&self, problems: &mut ConfigProblems) -> bool {
        let value = self.debug.as_deref().map(str::trim).filter(|v| !v.is_empty());
        parse_go_bool(value, DEBUG, problems).unwrap_or(false)
    }
}

const DEBUG: Source = Source::compat("CONFIG_DEBUG", "debug");

/// Log line format.
#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable lines.
    Plain,
    /// One JSON object per line.
    Json,
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    #[test]
    fn the_command_line_definition_is_consistent() {
        Cli::command().debug_assert();
    }
}
