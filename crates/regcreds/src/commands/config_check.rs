//! `regcreds config check`: validate every setting and show which providers are enabled and why.

use std::process::ExitCode;

use crate::{
    cli::CheckArgs,
    commands::config_failure,
    config::{ConfigProblems, Enablement},
};

/// Runs `regcreds config check`.
pub async fn check(args: CheckArgs) -> ExitCode {
    let mut problems = ConfigProblems::default();
    let statuses = args.providers.statuses(&mut problems).await;
    for status in &statuses {
        match &status.enablement {
            Enablement::Enabled(p) => println!(
                "provider {:<17} enabled  ({}): {}; Secret {:?}; schedule {:?}",
                status.name,
                p.reason,
                p.provider.describe(),
                p.provider.secret_name(),
                p.schedule.expression()
            ),
            Enablement::Disabled(hint) => {
                println!("provider {:<17} disabled (not configured: {hint})", status.name)
            }
            Enablement::Invalid => println!("provider {:<17} INVALID  (see below)", status.name),
        }
    }
    if let Err(problems) = args.providers.build().await {
        return config_failure(&problems);
    }
    if statuses
        .iter()
        .all(|s| !matches!(s.enablement, Enablement::Enabled(_)))
    {
        eprintln!("warning: no provider is configured; regcreds would have nothing to propagate");
    }
    ExitCode::SUCCESS
}
