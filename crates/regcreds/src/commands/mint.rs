//! `regcreds mint`: mint once and print the result. Passwords are masked unless `--show-secrets`.
//!
//! The dockerconfigjson goes to stdout (so `--show-secrets` output can be piped into a file used as
//! an authfile); a header per provider goes to stderr.

use std::process::ExitCode;

use crate::{
    cli::MintArgs,
    commands::config_failure,
    config::{ConfigProblems, ConfiguredProvider},
};

/// Runs `regcreds mint`.
pub async fn mint(args: MintArgs) -> ExitCode {
    let providers = match select(&args).await {
        Ok(providers) => providers,
        Err(problems) => return config_failure(&problems),
    };
    let mut failed = false;
    for configured in providers {
        let provider = &configured.provider;
        match provider.mint().await {
            Ok(credentials) => {
                let expiry = credentials
                    .expires_at()
                    .map_or("never".to_string(), |t| t.to_rfc3339());
                eprintln!(
                    "# provider {} -> Secret {} ({} registries, expires {expiry})",
                    provider.name(),
                    provider.secret_name(),
                    credentials.len()
                );
                if args.show_secrets {
                    println!("{}", String::from_utf8_lossy(&credentials.render()));
                } else {
                    println!("{}", credentials.render_masked());
                }
            }
            Err(error) => {
                eprintln!("error: {error}");
                failed = true;
            }
        }
    }
    if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

/// The providers to mint: all enabled ones, or the one named by `--provider`.
async fn select(args: &MintArgs) -> Result<Vec<ConfiguredProvider>, ConfigProblems> {
    let mut problems = ConfigProblems::default();
    if let Some(name) = &args.provider
        && !args
            .providers
            .knows(name, "REGCREDS_MINT_PROVIDER (--provider)", &mut problems)
    {
        return Err(problems);
    }
    let enabled = args.providers.build().await?;
    let selected: Vec<_> = enabled
        .into_iter()
        .filter(|p| {
            args.provider
                .as_deref()
                .is_none_or(|name| p.provider.name() == name)
        })
        .collect();
    if selected.is_empty() {
        let what = args
            .provider
            .as_deref()
            .map_or("any provider".to_string(), |n| format!("provider {n:?}"));
        problems.add(
            "providers",
            format!("{what} is not configured; see `regcreds config check`"),
        );
    }
    problems.into_result(selected)
}
