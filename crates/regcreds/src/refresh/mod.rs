//! Minting on schedule: one task per provider, woken by its cron schedule, by its token's approaching
//! expiry, or by a retry after a failure — whichever comes first.
//!
//! ```text
//!  tokio-cron-scheduler ──tick──▶ provider task ──mint()──▶ CredentialSet ──render──▶ watch::Sender<Desired>
//!                                   ▲    │ error: keep last good, retry with backoff      (only if bytes changed)
//!                       expiry ×½ ──┘    └─────────────────────────────────────────────▶ logs, metrics
//! ```
//!
//! One mint per provider per refresh, whatever the number of namespaces. A failed mint never touches the
//! desired state: the last good credential stays in every namespace.
//!
//! Logging is quiet at rest: a mint that changes nothing is a DEBUG line; INFO is for new credentials,
//! a recovery after failures, and one summary per [`SUMMARY_EVERY`] of the unchanged mints (a
//! dockerconfigjson file checked every 10 s would otherwise log 8,640 identical lines a day).

mod backoff;
mod timing;

use std::sync::Arc;

use chrono::Utc;
use regcreds_core::{CredentialSet, Provider};
use regcreds_propagator::{Desired, DesiredSecret};
use tokio::{
    sync::{mpsc, watch},
    time::Instant,
};
use tokio_cron_scheduler::{Job, JobScheduler};
use tracing::{debug, info, warn};

use crate::{config::ConfiguredProvider, events::SelfEvents, metrics::ProviderMetrics};
use backoff::Backoff;

pub use timing::refresh_delay;

/// Starts the cron scheduler and one refresh task per provider. The returned scheduler must be kept
/// alive (dropping it stops the cron ticks).
pub async fn start(
    providers: Vec<ConfiguredProvider>,
    desired: watch::Sender<Desired>,
    metrics: ProviderMetrics,
    events: Option<SelfEvents>,
) -> anyhow::Result<JobScheduler> {
    let scheduler = JobScheduler::new().await?;
    for configured in providers {
        // NB: capacity 1 + try_send: ticks that arrive during a mint collapse into one follow-up mint.
        let (tick, ticks) = mpsc::channel::<()>(1);
        let job = Job::new_async(configured.schedule.expression(), move |_, _| {
            let tick = tick.clone();
            Box::pin(async move {
                let _ = tick.try_send(());
            })
        })?;
        scheduler.add(job).await?;
        let context = LoopContext {
            desired: desired.clone(),
            metrics: metrics.clone(),
            events: events.clone(),
        };
        tokio::spawn(refresh_loop(configured.provider, ticks, context));
    }
    scheduler.start().await?;
    Ok(scheduler)
}

/// How often unchanged mints are summed up in one INFO line.
const SUMMARY_EVERY: std::time::Duration = std::time::Duration::from_secs(3600);

/// Where a refresh loop reports to.
struct LoopContext {
    desired: watch::Sender<Desired>,
    metrics: ProviderMetrics,
    events: Option<SelfEvents>,
}

/// Mints now, then whenever woken; publishes only successful, changed results.
async fn refresh_loop(provider: Arc<dyn Provider>, mut ticks: mpsc::Receiver<()>, context: LoopContext) {
    let LoopContext {
        desired,
        metrics,
        events,
    } = context;
    let mut backoff = Backoff::default();
    let mut quiet = QuietLog::new(provider.name());
    loop {
        let next = match mint_once(provider.as_ref(), &desired, &metrics).await {
            Ok((credentials, changed)) => {
                backoff.reset();
                quiet.minted(changed, &credentials);
                credentials
                    .expires_at()
                    .map(|expiry| Instant::now() + refresh_delay(Utc::now(), expiry))
            }
            Err(error) => {
                quiet.failed();
                let delay = backoff.next_delay();
                warn!(provider = provider.name(), error = %error, retry_in_s = delay.as_secs(), "mint failed; keeping the last good credential");
                if let Some(events) = &events {
                    events.mint_failed(provider.name(), &error.to_string()).await;
                }
                Some(Instant::now() + delay)
            }
        };
        tokio::select! {
            tick = ticks.recv() => if tick.is_none() { return },
            () = sleep_until(next) => {}
        }
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

/// One mint; on success the rendered bytes replace the desired Secret if they differ (then `true`).
async fn mint_once(
    provider: &dyn Provider,
    desired: &watch::Sender<Desired>,
    metrics: &ProviderMetrics,
) -> regcreds_core::Result<(CredentialSet, bool)> {
    let name = provider.name();
    let credentials = match provider.mint().await {
        Ok(set) if set.is_empty() => Err(regcreds_core::Error::EmptyMint { provider: name }),
        other => other,
    }
    .inspect_err(|error| metrics.mint_failed(name, error.metric_label()))?;
    metrics.minted(name, credentials.expires_at());
    let secret = DesiredSecret {
        name: provider.secret_name().to_string(),
        provider: name.to_string(),
        data: Arc::from(credentials.render()),
    };
    let changed = desired.send_if_modified(|state| state.set(secret));
    if changed {
        info!(provider = name, secret = provider.secret_name(), registries = ?credentials.registries(), expires = %expiry(&credentials), "minted new credentials");
    }
    Ok((credentials, changed))
}

fn expiry(credentials: &CredentialSet) -> String {
    credentials
        .expires_at()
        .map_or("never".to_string(), |t| t.to_rfc3339())
}

/// What one provider's loop has to say about its mints, at the right level.
struct QuietLog {
    provider: &'static str,
    /// Failures since the last successful mint.
    failures: u32,
    /// Unchanged mints since `since`.
    unchanged: u64,
    since: Instant,
}

impl QuietLog {
    fn new(provider: &'static str) -> Self {
        Self {
            provider,
            failures: 0,
            unchanged: 0,
            since: Instant::now(),
        }
    }

    fn failed(&mut self) {
        self.failures = self.failures.saturating_add(1);
    }

    /// After a successful mint (the change itself was logged by `mint_once`).
    fn minted(&mut self, changed: bool, credentials: &CredentialSet) {
        let provider = self.provider;
        if self.failures > 0 {
            info!(provider, failures = self.failures, expires = %expiry(credentials), "minting works again after {} failures", self.failures);
            self.failures = 0;
        }
        if changed {
            // The change itself was the news; the summary counts unchanged mints since then.
            self.unchanged = 0;
            self.since = Instant::now();
            return;
        }
        debug!(provider, expires = %expiry(credentials), "minted; credentials unchanged");
        self.unchanged += 1;
        let elapsed = self.since.elapsed();
        if elapsed >= SUMMARY_EVERY {
            info!(provider, mints = self.unchanged, expires = %expiry(credentials), "credentials unchanged: {} mints in the last {} min", self.unchanged, elapsed.as_secs() / 60);
            self.unchanged = 0;
            self.since = Instant::now();
        }
    }
}
