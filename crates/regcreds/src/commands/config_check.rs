//! `regcreds config check`: validate every setting and show which providers are enabled and why.

use std::process::ExitCode;

use regcreds_verify::require_probes;

use crate::{
    cli::ConfigCheckArgs,
    commands::config_failure,
    config::{ConfigProblems, Enablement},
};

/// Runs `regcreds config check`.
pub async fn check(args: ConfigCheckArgs) -> ExitCode {
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
    let providers = match args.providers.build().await {
        Ok(providers) => providers,
        Err(problems) => return config_failure(&problems),
    };
    let mut problems = ConfigProblems::default();
    if let Some(checker) = args.checks.build(&mut problems) {
        require_probes(&providers, &checker, &mut problems);
    }
    if !problems.is_empty() {
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
