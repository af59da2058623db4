//! Minting on schedule: one task per provider, woken by its cron schedule, by its token's approaching
//! expiry, or by a retry after a failure — whichever comes first.
//!
//! ```text
//!  tokio-cron-scheduler ──tick──▶ provider task ──mint()──▶ CredentialSet ──render──▶ Gate ──▶ watch::Sender<Desired>
//!                                   ▲    │ error or refused: keep last good, retry with backoff  (only if bytes changed)
//!                       expiry ×½ ──┘    └───────────────────────────────────────────────────▶ logs, metrics, Event
//! ```
//!
//! One mint per provider per refresh, whatever the number of namespaces. A failed mint never touches the
//! desired state: the last good credential stays in every namespace. Neither does a credential the
//! registry refuses to let pull its probe image ([`Gate`]): new bytes are published only once admitted.
//!
//! Logging is quiet at rest: a mint that changes nothing is a DEBUG line; INFO is for new credentials,
//! a recovery after failures, and one summary per [`SUMMARY_EVERY`] of the unchanged mints (a
//! dockerconfigjson file checked every 10 s would otherwise log 8,640 identical lines a day).

mod backoff;
mod timing;

use std::{sync::Arc, time::Duration};

use chrono::Utc;
use regcreds_core::{CredentialSet, Provider};
use regcreds_propagator::{Desired, DesiredSecret};
use regcreds_verify::{Gate, Refusal};
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
    gate: Option<Gate>,
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
        if let Some(period) = configured.schedule.period() {
            metrics.refresh_period(configured.provider.name(), period);
        }
        let context = LoopContext {
            desired: desired.clone(),
            metrics: metrics.clone(),
            events: events.clone(),
            gate: gate.clone(),
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
    /// Verify before propagate, when probe images are configured.
    gate: Option<Gate>,
}

/// Why a refresh published nothing.
enum Failure {
    /// The provider could not mint.
    Mint(regcreds_core::Error),
    /// The registry refused to let the new credential (these bytes) pull its probe image.
    Refused(Refusal, Arc<[u8]>),
    /// The same bytes as a refusal whose backoff has not run out: not asked again, nothing to say.
    Held(Instant),
}

/// Bytes a registry refused, not to be checked again before `until`: a provider that mints the same
/// credential every tick (a file re-read every 10 s) must not turn into a request per tick, while a
/// different credential (the user fixed it) is checked at once.
struct Refused {
    data: Arc<[u8]>,
    until: Instant,
}

/// Mints now, then whenever woken; publishes only successful, changed results.
async fn refresh_loop(provider: Arc<dyn Provider>, mut ticks: mpsc::Receiver<()>, context: LoopContext) {
    let mut backoff = Backoff::default();
    let mut quiet = QuietLog::new(provider.name());
    let mut refused: Option<Refused> = None;
    loop {
        let next = match mint_once(provider.as_ref(), &context, refused.as_ref()).await {
            Ok((credentials, changed)) => {
                backoff.reset();
                refused = None;
                quiet.minted(changed, &credentials);
                credentials
                    .expires_at()
                    .map(|expiry| Instant::now() + refresh_delay(Utc::now(), expiry))
            }
            Err(Failure::Held(until)) => Some(until),
            Err(failure) => {
                quiet.failed();
                let delay = backoff.next_delay();
                let until = Instant::now() + delay;
                report_failure(provider.as_ref(), &failure, delay, &context).await;
                if let Failure::Refused(_, data) = failure {
                    refused = Some(Refused { data, until });
                }
                Some(until)
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

/// One mint; on success the rendered bytes replace the desired Secret if they differ (then `true`),
/// once the gate has admitted them.
async fn mint_once(
    provider: &dyn Provider,
    context: &LoopContext,
    refused: Option<&Refused>,
) -> Result<(CredentialSet, bool), Failure> {
    let LoopContext { desired, metrics, .. } = context;
    let name = provider.name();
    let credentials = match provider.mint().await {
        Ok(set) if set.is_empty() => Err(regcreds_core::Error::EmptyMint { provider: name }),
        other => other,
    }
    .map_err(|error| {
        metrics.mint_failed(name, error.metric_label());
        Failure::Mint(error)
    })?;
    let secret = DesiredSecret {
        name: provider.secret_name().to_string(),
        provider: name.to_string(),
        data: Arc::from(credentials.render()),
    };
    let published = desired.borrow().secrets().any(|s| *s == secret);
    if let (Some(gate), false) = (&context.gate, published) {
        if let Some(refused) = refused.filter(|r| r.data == secret.data && Instant::now() < r.until) {
            return Err(Failure::Held(refused.until));
        }
        gate.admit(name, &credentials).await.map_err(|refusal| {
            metrics.mint_failed(name, REFUSED_LABEL);
            Failure::Refused(refusal, secret.data.clone())
        })?;
    }
    metrics.minted(name, credentials.expires_at());
    let changed = desired.send_if_modified(|state| state.set(secret));
    if changed {
        info!(provider = name, secret = provider.secret_name(), registries = ?credentials.registries(), expires = %expiry(&credentials), "minted new credentials");
    }
    Ok((credentials, changed))
}

/// `regcreds_provider_mint_failures_total{error}` of a credential the registry refused.
const REFUSED_LABEL: &str = "registry_refused";

/// One log line and an Event per failed refresh; never a credential.
async fn report_failure(
    provider: &dyn Provider,
    failure: &Failure,
    retry_in: Duration,
    context: &LoopContext,
) {
    let name = provider.name();
    let retry_in_s = retry_in.as_secs();
    match failure {
        Failure::Mint(error) => {
            warn!(provider = name, error = %error, retry_in_s, "mint failed; keeping the last good credential");
            if let Some(events) = &context.events {
                events.mint_failed(name, &error.to_string()).await;
            }
        }
        Failure::Held(_) => {}
        Failure::Refused(refusal, _) => {
            let has_last_good = context
                .desired
                .borrow()
                .secrets()
                .any(|s| s.name == provider.secret_name());
            let kept = if has_last_good {
                "keeping the last good credential in every namespace"
            } else {
                "nothing was written: no namespace receives a credential from this provider until the registry accepts one"
            };
            warn!(
                provider = name,
                registry = %refusal.registry,
                image = %refusal.image,
                code = refusal.code.as_deref(),
                reason = %refusal.reason,
                retry_in_s,
                "{refusal}; {kept}"
            );
            if let Some(events) = &context.events {
                events.credential_refused(name, refusal, kept).await;
            }
        }
    }
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
