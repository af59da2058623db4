//! `regcreds`: wires providers, the refresh scheduler and the propagator together.
#![forbid(unsafe_code)]

mod admin;
mod cli;
mod commands;
mod config;
mod events;
mod healing;
mod kube_client;
mod leader;
mod logging;
mod metrics;
mod rbac;
mod refresh;
mod verification;

use std::process::ExitCode;

use clap::Parser;

/// Exit code for invalid configuration (nothing was written anywhere).
const EXIT_CONFIG: u8 = 2;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    let log_problems = cli.log.problems();
    if !log_problems.is_empty() {
        return commands::config_failure(&log_problems);
    }
    logging::init(&cli.log);
    commands::dispatch(cli.command).await
}
