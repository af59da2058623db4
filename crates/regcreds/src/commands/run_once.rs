//! `regcreds run` with `REGCREDS_RUN_ONCE=true` (imagepullsecret-patcher's `CONFIG_RUNONCE`): mint every
//! provider once, make one pass over every namespace, exit — for a Job or a CronJob.
//!
//! ```text
//!  providers ──mint once──▶ Desired ──▶ Propagator::run_once (list namespaces, reconcile each) ──▶ exit code
//! ```
//!
//! Exit 0 when every provider minted and every namespace converged, 1 otherwise (each failure logged
//! with its namespace or provider). With probe images, a credential its registry refuses is not
//! written, as in the controller (see `regcreds_verify::Gate`). No leader election and no admin endpoint: a Job is not a service.

use std::{process::ExitCode, sync::Arc};

use regcreds_propagator::{Desired, DesiredSecret, Propagator, Settings};
use regcreds_verify::Gate;
use tokio::sync::watch;
use tracing::{error, info};

use crate::{config::ConfiguredProvider, kube_client};

/// Mints, makes one pass, and returns the exit code.
pub async fn run(settings: Settings, providers: Vec<ConfiguredProvider>, gate: Option<Gate>) -> ExitCode {
    let client = match kube_client::connect_once().await {
        Ok(client) => client,
        Err(err) => {
            error!(
                error = format!("{err:#}"),
                "cannot reach the Kubernetes API server"
            );
            return ExitCode::FAILURE;
        }
    };
    let (desired, failed_mints) = mint_all(&providers, gate.as_ref()).await;
    let (_, receiver) = watch::channel(desired);
    match Propagator::new(client, settings, receiver).run_once().await {
        Ok(report) if report.failed == 0 && failed_mints == 0 => {
            info!(
                namespaces = report.namespaces,
                "one pass over every namespace done"
            );
            ExitCode::SUCCESS
        }
        Ok(report) => {
            error!(
                namespaces = report.namespaces,
                failed_namespaces = report.failed,
                failed_providers = failed_mints,
                "one pass done with failures (see above)"
            );
            ExitCode::FAILURE
        }
        Err(err) => {
            error!(error = %err, "cannot list namespaces");
            ExitCode::FAILURE
        }
    }
}

/// Mints every provider once. A provider that fails keeps whatever its Secrets hold (they stay expected
/// and referenced, never emptied) and makes the run fail.
async fn mint_all(providers: &[ConfiguredProvider], gate: Option<&Gate>) -> (Desired, usize) {
    let mut desired = Desired::new(providers.iter().map(|p| p.provider.secret_name().to_string()));
    let mut failed = 0;
    for configured in providers {
        let provider = &configured.provider;
        match provider.mint().await {
            Ok(credentials) if !credentials.is_empty() => {
                if let Some(gate) = gate
                    && let Err(refusal) = gate.admit(provider.name(), &credentials).await
                {
                    failed += 1;
                    error!(provider = provider.name(), registry = %refusal.registry, image = %refusal.image, code = refusal.code.as_deref(), "{refusal}; keeping the last good Secret");
                    continue;
                }
                desired.set(DesiredSecret {
                    name: provider.secret_name().to_string(),
                    provider: provider.name().to_string(),
                    data: Arc::from(credentials.render()),
                });
                info!(
                    provider = provider.name(),
                    secret = provider.secret_name(),
                    "minted"
                );
            }
            Ok(_) => {
                failed += 1;
                error!(
                    provider = provider.name(),
                    "minted no credentials; keeping the last good Secret"
                );
            }
            Err(err) => {
                failed += 1;
                error!(provider = provider.name(), error = %err, "mint failed; keeping the last good Secret");
            }
        }
    }
    (desired, failed)
}
