//! The command line: `regcreds run | mint | check | config check | cleanup | credential-provider |
//! kubelet-plugin install | pause`.

use std::ffi::OsString;

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
    /// The kubelet's image credential provider (see [`CREDENTIAL_PROVIDER_ABOUT`]).
    #[command(name = CREDENTIAL_PROVIDER, about = CREDENTIAL_PROVIDER_ABOUT)]
    CredentialProvider(crate::commands::credential_provider::CredentialProviderArgs),
    /// Install regcreds as the kubelet's credential provider on this node, as the chart's DaemonSet does.
    #[command(subcommand)]
    KubeletPlugin(crate::commands::kubelet_plugin::KubeletPluginCommand),
}

/// The subcommand the kubelet execs for every image it pulls.
const CREDENTIAL_PROVIDER: &str = "credential-provider";
/// Its one-line help, in both definitions of it.
const CREDENTIAL_PROVIDER_ABOUT: &str = "Answer the kubelet as its image credential provider: a \
    CredentialProviderRequest on stdin, the response on stdout (set in the kubelet's \
    CredentialProviderConfig; no Secret involved)";

/// The command line of this process.
pub fn parse() -> Cli {
    parse_from(std::env::args_os().collect())
}

/// `args` (the program name first) parsed as [`Cli::parse_from`] would, but through [`PluginCli`] when
/// the subcommand is `credential-provider`.
///
/// Why: clap builds every subcommand's arguments before it parses, several hundred with their
/// environment variables. `credential-provider` is a new process for every answer the kubelet asks
/// for, and answers from settings in a few milliseconds: building the rest was a third of a static
/// answer (`cargo xtask bench --sections plugin`).
fn parse_from(args: Vec<OsString>) -> Cli {
    if args.get(1).is_none_or(|arg| arg != CREDENTIAL_PROVIDER) {
        return Cli::parse_from(args);
    }
    let plugin = PluginCli::parse_from(args);
    let PluginCommand::CredentialProvider(args) = plugin.command;
    Cli {
        command: Command::CredentialProvider(args),
        log: plugin.log,
    }
}

/// [`Cli`] with `credential-provider` as its only subcommand; the tests hold the two to the same
/// arguments and help.
#[derive(Parser, Debug)]
#[command(name = "regcreds", version, about, propagate_version = true)]
struct PluginCli {
    #[command(subcommand)]
    command: PluginCommand,
    #[command(flatten)]
    log: LogArgs,
}

#[derive(Subcommand, Debug)]
enum PluginCommand {
    #[command(name = CREDENTIAL_PROVIDER, about = CREDENTIAL_PROVIDER_ABOUT)]
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
        PluginCli::command().debug_assert();
    }

    /// The full definition's `credential-provider` and the plugin's own, as `--help` shows them.
    fn credential_provider_help(mut command: clap::Command) -> String {
        command.build();
        let subcommand = command
            .find_subcommand_mut(CREDENTIAL_PROVIDER)
            .expect("credential-provider is a subcommand");
        subcommand.render_long_help().to_string()
    }

    #[test]
    fn the_plugin_parses_credential_provider_as_the_full_command_line_does() {
        let full = credential_provider_help(Cli::command());
        assert!(full.contains("REGCREDS_STATIC_SERVER"), "{full}");
        assert_eq!(credential_provider_help(PluginCli::command()), full);
        let args = |line: &str| line.split(' ').map(OsString::from).collect::<Vec<_>>();
        for line in [
            "regcreds credential-provider --static-server r.example --log-format json",
            "regcreds --log-format json credential-provider --ecr-regions eu-west-1",
        ] {
            let fast = format!("{:?}", parse_from(args(line)));
            assert_eq!(fast, format!("{:?}", Cli::parse_from(args(line))), "{line}");
            assert!(fast.contains("CredentialProvider"), "{fast}");
        }
        assert!(format!("{:?}", parse_from(args("regcreds config check"))).contains("Config"));
    }
}
