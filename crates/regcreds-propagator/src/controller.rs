//! Assembling the kube-runtime `Controller` and running it until shutdown.

use std::{future::Future, hash::Hash, sync::Arc, time::Duration};

use futures::{Stream, StreamExt, stream};
use k8s_openapi::api::core::v1::{Namespace, Secret, ServiceAccount};
use kube::{
    Api, Client, Resource, ResourceExt,
    core::PartialObjectMeta,
    runtime::{
        Controller, WatchStreamExt,
        controller::{Action, Config},
        events::{Recorder, Reporter},
        reflector::{self, ObjectRef, Store},
        watcher,
    },
};
use tokio::sync::watch;
use tokio_stream::wrappers::WatchStream;
use tracing::{debug, warn};

use crate::{
    Desired, Error, PropagatorMetrics, Result, Settings, WatchMode,
    labels::managed_selector,
    reconcile::{Context, reconcile},
    view::View,
};

/// Propagates [`Desired`] Secrets into every namespace in scope until shut down.
pub struct Propagator {
    client: Client,
    settings: Settings,
    desired: watch::Receiver<Desired>,
    metrics: PropagatorMetrics,
}

impl Propagator {
    /// A propagator fed by `desired`; every change of it reconciles every namespace.
    pub fn new(client: Client, settings: Settings, desired: watch::Receiver<Desired>) -> Self {
        Self {
            client,
            settings,
            desired,
            metrics: PropagatorMetrics::default(),
        }
    }

    /// Counts into `metrics` (registered by the caller) instead of private, unexported counters.
    pub fn with_metrics(mut self, metrics: PropagatorMetrics) -> Self {
        self.metrics = metrics;
        self
    }

    /// One pass over every namespace, reading Secrets and ServiceAccounts directly, then returns what it
    /// did: imagepullsecret-patcher's `CONFIG_RUNONCE`, for a Job or CronJob.
    pub async fn run_once(self) -> Result<crate::PassReport> {
        let Self {
            client,
            settings,
            desired,
            metrics,
        } = self;
        let reporter = Reporter {
            controller: "regcreds".into(),
            instance: settings.instance.clone(),
        };
        let context = Context {
            recorder: Recorder::new(client.clone(), reporter),
            client,
            settings,
            desired,
            view: View::Direct,
            metrics,
        };
        crate::polling::once(Arc::new(context)).await
    }

    /// Runs until `shutdown` resolves (in-flight reconciles finish first).
    pub async fn run(self, shutdown: impl Future<Output = ()> + Send + Sync + 'static) -> Result<()> {
        let Self {
            client,
            settings,
            desired,
            metrics,
        } = self;
        let reporter = Reporter {
            controller: "regcreds".into(),
            instance: settings.instance.clone(),
        };
        let recorder = Recorder::new(client.clone(), reporter);
        if let Some(interval) = settings.namespace_poll {
            let context = Context {
                client,
                settings,
                desired,
                view: View::Direct,
                recorder,
                metrics,
            };
            return crate::polling::run(Arc::new(context), interval, shutdown).await;
        }
        let namespaces: Api<PartialObjectMeta<Namespace>> = Api::all(client.clone());
        let config = Config::default().concurrency(settings.concurrency);
        let mut controller = Controller::new(namespaces, watcher::Config::default()).with_config(config);
        let view = match settings.watch_mode {
            WatchMode::Watch => {
                let (with_watches, view) = watch_dependents(controller, &client);
                controller = with_watches;
                view
            }
            WatchMode::Poll => View::Direct,
        };
        let changes = WatchStream::from_changes(desired.clone()).map(|_| ());
        let context = Arc::new(Context {
            client,
            settings,
            desired,
            view,
            recorder,
            metrics,
        });
        controller
            .reconcile_all_on(changes)
            .graceful_shutdown_on(shutdown)
            .run(reconcile, error_policy, context)
            .for_each(|result| async move {
                match result {
                    Ok((namespace, _)) => debug!(namespace = %namespace.name, "reconciled"),
                    Err(error) => debug!(%error, "reconcile failed"),
                }
            })
            .await;
        Ok(())
    }
}

/// Watches managed Secrets and ServiceAccounts into caches, and wakes a namespace when one of its objects
/// changes.
///
/// NB: the trigger streams are the reflected streams themselves (`watches_stream`, behind kube's
/// `unstable-runtime` feature). With the stable `.watches`, a second, independent watch would wake the
/// reconcile, which could then read a cache that has not seen the deletion yet and skip a repair.
fn watch_dependents(
    controller: Controller<PartialObjectMeta<Namespace>>,
    client: &Client,
) -> (Controller<PartialObjectMeta<Namespace>>, View) {
    let (secrets, secret_writer) = reflector::store();
    let secret_config = watcher::Config::default().labels(&managed_selector());
    let secret_events = watcher(Api::<Secret>::all(client.clone()), secret_config)
        .default_backoff()
        .reflect(secret_writer);
    let secret_events = cached_changes(secret_events, secrets.clone());
    let (accounts, account_writer) = reflector::store();
    let account_events = watcher(
        Api::<ServiceAccount>::all(client.clone()),
        watcher::Config::default(),
    )
    .default_backoff()
    .reflect(account_writer);
    let account_events = cached_changes(account_events, accounts.clone());
    let controller = controller
        .watches_stream(secret_events, |secret: Secret| namespace_of(&secret))
        .watches_stream(account_events, |account: ServiceAccount| namespace_of(&account));
    (controller, View::Cached { secrets, accounts })
}

/// The objects whose namespaces must be reconciled, once the cache shows the change.
///
/// NB: not `touched_objects()`. During a (re)list — at start and whenever a watch must start over, e.g.
/// after an apiserver restart — the store buffers `InitApply` objects and swaps them in only at
/// `InitDone`. Waking a namespace on `InitApply` reads a cache without the object, and nothing wakes it
/// again: a ServiceAccount created while the watch was down never got its reference (until the hourly
/// resync). So a relist wakes every namespace that had or has an object, after the swap.
fn cached_changes<K>(
    events: impl Stream<Item = Result<watcher::Event<K>, watcher::Error>> + Send + 'static,
    store: Store<K>,
) -> impl Stream<Item = Result<K, watcher::Error>> + Send + 'static
where
    K: Resource + Clone + Send + Sync + 'static,
    K::DynamicType: Eq + Hash + Clone,
{
    let mut before_relist: Vec<Arc<K>> = Vec::new();
    events.flat_map(move |event| {
        let woken: Vec<Result<K, watcher::Error>> = match event {
            Ok(watcher::Event::Apply(object) | watcher::Event::Delete(object)) => vec![Ok(object)],
            Ok(watcher::Event::Init) => {
                // Objects deleted while the watch was down are missing from the relist: remember them.
                before_relist = store.state();
                Vec::new()
            }
            Ok(watcher::Event::InitApply(_)) => Vec::new(),
            Ok(watcher::Event::InitDone) => std::mem::take(&mut before_relist)
                .into_iter()
                .chain(store.state())
                .map(|object| Ok(K::clone(&object)))
                .collect(),
            Err(error) => vec![Err(error)],
        };
        stream::iter(woken)
    })
}

fn namespace_of<K: ResourceExt>(object: &K) -> Option<ObjectRef<PartialObjectMeta<Namespace>>> {
    object.namespace().map(|ns| ObjectRef::new(&ns))
}

/// Logs a failed reconcile and retries it later; Forbidden waits longer (only an RBAC change helps).
pub(crate) fn error_policy(
    namespace: Arc<PartialObjectMeta<Namespace>>,
    error: &Error,
    ctx: Arc<Context>,
) -> Action {
    let name = namespace.name_any();
    ctx.metrics.reconcile_failed(error.metric_label());
    warn!(namespace = %name, error = %error, kind = error.metric_label(), "reconcile failed; will retry");
    for hint in error.rbac_hints() {
        warn!(namespace = %name, "{hint}");
    }
    if error.is_forbidden() {
        Action::requeue(Duration::from_secs(60))
    } else {
        Action::requeue(Duration::from_secs(5))
    }
}
