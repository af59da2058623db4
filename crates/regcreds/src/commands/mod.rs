//! One module per subcommand; each returns the process exit code.

pub mod check;
pub mod cleanup;
pub mod config_check;
pub mod credential_provider;
pub mod kubelet_plugin;
pub mod mint;
pub mod run;
pub mod run_once;

use std::process::ExitCode;

use crate::{
    EXIT_CONFIG,
    cli::{Command, ConfigCommand},
    config::ConfigProblems,
};

/// Runs a subcommand.
pub async fn dispatch(command: Command) -> ExitCode {
    match command {
        Command::Run(args) => run::run(*args).await,
        Command::Mint(args) => mint::mint(args).await,
        Command::Config(ConfigCommand::Check(args)) => config_check::check(args).await,
        Command::Cleanup(args) => cleanup::cleanup(args).await,
        Command::Check(args) => check::check(args).await,
        Command::CredentialProvider(args) => credential_provider::credential_provider(args).await,
        Command::KubeletPlugin(command) => kubelet_plugin::kubelet_plugin(command).await,
    }
}

/// Prints every configuration problem on its own line and returns exit code 2.
pub fn config_failure(problems: &ConfigProblems) -> ExitCode {
    eprint!("{problems}");
    ExitCode::from(EXIT_CONFIG)
}
