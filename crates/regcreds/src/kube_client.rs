//! Connecting to the Kubernetes API server, patiently: at start-up it may not be reachable yet.

use std::time::Duration;

use anyhow::Context as _;
use kube::Client;
use tracing::{info, warn};

const MAX_DELAY: Duration = Duration::from_secs(30);

/// Builds a client from the kubeconfig or the in-cluster service account, then waits until the API
/// server answers, retrying with backoff and saying so in the log.
pub async fn connect() -> anyhow::Result<Client> {
    let client = Client::try_default()
        .await
        .context("no Kubernetes configuration found (in-cluster service account or KUBECONFIG)")?;
    let mut delay = Duration::from_secs(1);
    loop {
        match client.apiserver_version().await {
            Ok(version) => {
                info!(version = %version.git_version, "connected to the Kubernetes API server");
                return Ok(client);
            }
            Err(error) => {
                warn!(%error, retry_in_s = delay.as_secs(), "cannot reach the Kubernetes API server; retrying");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(MAX_DELAY);
            }
        }
    }
}
