//! `regcreds cleanup`: remove the Secrets this instance created and the ServiceAccount references it
//! added, cluster-wide; with `--all-instances`, those of every regcreds instance.
//!
//! The instance is resolved as `regcreds run` resolves it (run it in the pod — `kubectl exec deploy/... --
//! /regcreds cleanup` — or pass `--instance`), and the provider settings name the Secrets it writes, so
//! that Secrets from before instances existed are cleaned up by the instance that wrote them.

use std::{collections::BTreeSet, process::ExitCode};

use regcreds_propagator::CleanupScope;
use tracing::{error, info};

use crate::{
    commands::config_failure,
    config::{ConfigProblems, Enablement, InstanceArgs, ProviderArgs},
    kube_client,
};

/// Arguments of `regcreds cleanup`.
#[derive(clap::Args, Debug)]
pub struct CleanupArgs {
    /// Remove what every regcreds instance created, not only this one's.
    #[arg(long = "all-instances", env = "REGCREDS_CLEANUP_ALL_INSTANCES")]
    pub all_instances: bool,
    /// Which instance to clean up.
    #[command(flatten)]
    pub instance: InstanceArgs,
    /// Provider settings: the Secret names this instance writes.
    #[command(flatten)]
    pub providers: ProviderArgs,
}

/// Runs `regcreds cleanup`.
pub async fn cleanup(args: CleanupArgs) -> ExitCode {
    let scope = match scope(&args).await {
        Ok(scope) => scope,
        Err(problems) => return config_failure(&problems),
    };
    match &scope {
        CleanupScope::Instance { id, names } => {
            info!(instance = %id, names = ?names, "cleaning up what instance {id} created")
        }
        CleanupScope::Everyone => info!("cleaning up what every regcreds instance created"),
    }
    let result = async {
        let client = kube_client::connect_once().await?;
        Ok::<_, anyhow::Error>(regcreds_propagator::cleanup(&client, &scope).await?)
    }
    .await;
    match result {
        Ok(report) => {
            println!(
                "removed {} secrets and cleaned {} serviceaccounts",
                report.secrets_deleted, report.accounts_updated
            );
            ExitCode::SUCCESS
        }
        Err(err) => {
            error!(error = format!("{err:#}"), "cleanup failed");
            ExitCode::FAILURE
        }
    }
}

async fn scope(args: &CleanupArgs) -> Result<CleanupScope, ConfigProblems> {
    if args.all_instances {
        return Ok(CleanupScope::Everyone);
    }
    let mut problems = ConfigProblems::default();
    let instance = args.instance.resolve(&mut problems);
    // NB: provider problems do not stop a cleanup; a provider that is not valid writes nothing anyway.
    let mut ignored = ConfigProblems::default();
    let names: BTreeSet<String> = args
        .providers
        .statuses(&mut ignored)
        .await
        .into_iter()
        .filter_map(|status| match status.enablement {
            Enablement::Enabled(configured) => Some(configured.provider.secret_name().to_string()),
            _ => None,
        })
        .collect();
    match instance {
        Some(instance) if problems.is_empty() => Ok(CleanupScope::Instance {
            id: instance.id,
            names,
        }),
        _ => Err(problems),
    }
}
