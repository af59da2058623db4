//! `regcreds cleanup`: remove every Secret regcreds created and every ServiceAccount reference it added.

use std::process::ExitCode;

use tracing::error;

use crate::kube_client;

/// Runs `regcreds cleanup`.
pub async fn cleanup() -> ExitCode {
    let result = async {
        let client = kube_client::connect().await?;
        Ok::<_, anyhow::Error>(regcreds_propagator::cleanup(&client).await?)
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
