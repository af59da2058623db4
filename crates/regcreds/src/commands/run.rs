//! `regcreds run`: the controller.

use std::process::ExitCode;

use crate::{commands::config_failure, config::ProviderArgs};

/// Arguments of `regcreds run`.
#[derive(clap::Args, Debug)]
pub struct RunArgs {
    /// Provider settings.
    #[command(flatten)]
    pub providers: ProviderArgs,
}

/// Runs the controller.
pub async fn run(args: RunArgs) -> ExitCode {
    match args.providers.build().await {
        Ok(_) => ExitCode::SUCCESS,
        Err(problems) => config_failure(&problems),
    }
}
