//! Connecting to the Kubernetes API server, patiently: at start-up it may not be reachable yet.
//!
//! While it is unreachable, each attempt logs one line naming the server URL, the cause and when the next
//! attempt is; kube-client's own ERROR line per failed request is silenced in `logging`, so the log reads
//! as one story instead of a wall of `client error (Connect)`.

use std::time::Duration;

use anyhow::Context as _;
use kube::{Client, Config};
use tokio::time::Instant;
use tracing::{info, warn};

const FIRST_DELAY: Duration = Duration::from_secs(1);
const MAX_DELAY: Duration = Duration::from_secs(30);
/// How long a one-shot run (`REGCREDS_RUN_ONCE`) waits for the API server before failing.
const ONE_SHOT_PATIENCE: Duration = Duration::from_secs(60);

/// Builds a client from the kubeconfig or the in-cluster service account, then waits until the API
/// server answers, retrying with backoff and saying so in the log.
pub async fn connect() -> anyhow::Result<Client> {
    connect_within(None).await
}

/// Like [`connect`], but gives up after about a minute (a Job should fail, not hang).
pub async fn connect_once() -> anyhow::Result<Client> {
    connect_within(Some(ONE_SHOT_PATIENCE)).await
}

async fn connect_within(patience: Option<Duration>) -> anyhow::Result<Client> {
    let config = Config::infer()
        .await
        .context("no Kubernetes configuration found (in-cluster service account or KUBECONFIG)")?;
    let server = config.cluster_url.to_string();
    let client = Client::try_from(config).context("cannot build the Kubernetes client")?;
    let started = Instant::now();
    let mut delay = FIRST_DELAY;
    loop {
        match client.apiserver_version().await {
            Ok(version) => {
                info!(%server, version = %version.git_version, "connected to the Kubernetes API server at {server}");
                return Ok(client);
            }
            Err(error) => {
                let cause = root_cause(&error);
                if patience.is_some_and(|limit| started.elapsed() + delay > limit) {
                    anyhow::bail!("cannot reach the Kubernetes API server at {server}: {cause}");
                }
                let next = chrono::Utc::now() + delay;
                let next_attempt = next.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
                warn!(
                    %server,
                    error = %cause,
                    retry_in_s = delay.as_secs(),
                    %next_attempt,
                    "cannot reach the Kubernetes API server at {server} ({cause}); next attempt in {} s",
                    delay.as_secs()
                );
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(MAX_DELAY);
            }
        }
    }
}

/// The innermost cause (`Connection refused (os error 111)`, a TLS verification error, ...): the
/// outer layers (`client error (Connect)`) say nothing a reader can act on.
fn root_cause(error: &(dyn std::error::Error + 'static)) -> String {
    let mut cause = error;
    while let Some(source) = cause.source() {
        cause = source;
    }
    cause.to_string()
}
