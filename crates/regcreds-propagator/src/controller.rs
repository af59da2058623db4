//! The watch-driven driver of [`reconcile`]: the kube-runtime `Controller` over namespaces (metadata
//! only), woken by their watch, by the watches of managed Secrets and ServiceAccounts (their indexes
//! are the reconcile's [`View`]), by every change of [`Desired`] and by the resync tick, until shutdown.
//! `polling.rs` is the other driver, for RBAC that cannot watch namespaces.

use std::{future::Future, sync::Arc, time::Duration};

use futures::{Stream, StreamExt, stream};
use k8s_openapi::api::core::v1::{Namespace, Secret, ServiceAccount};
use kube::{
    Api, Client, Resource, ResourceExt,
    core::PartialObjectMeta,
    runtime::{
        Controller, WatchStreamExt,
        controller::{Action, Config},
        reflector::{self, ObjectRef, Store},
        watcher,
    },
};
use tokio::sync::watch;
use tokio_stream::wrappers::{IntervalStream, WatchStream};
use tracing::{debug, info, warn};

use crate::{
    Desired, Error, NamespaceScope, PropagatorMetrics, Result, ServiceAccountMode, Settings, WatchMode,
    cached::{AccountState, SecretState},
    failure,
    index::{self, Cached, IndexWriter},
    labels::{IGNORE_ANNOTATIONS, managed_selector},
    reconcile::{Context, reconcile},
    view::View,
};

/// Runs the controller until `shutdown` resolves (in-flight reconciles finish first).
pub(crate) async fn run(
    client: Client,
    settings: Settings,
    desired: watch::Receiver<Desired>,
    metrics: PropagatorMetrics,
    shutdown: impl Future<Output = ()> + Send + Sync + 'static,
) -> Result<()> {
    let config = Config::default().concurrency(settings.concurrency);
    let (namespaces, namespace_wakes) = watch_namespaces(&client, settings.scope.clone());
    // NB: every trigger is an `ObjectRef` stream (`reconcile_on`): the namespace watch only feeds the
    // store and says which namespaces to wake, so no object is cloned to trigger a reconcile.
    let mut controller = Controller::for_stream(stream::pending(), namespaces)
        .with_config(config)
        .reconcile_on(namespace_wakes);
    let view = match settings.watch_mode {
        WatchMode::Watch => {
            let (wakes, view) = watch_dependents(&client, &settings.service_accounts);
            controller = controller.reconcile_on(wakes);
            view
        }
        WatchMode::Poll => View::Direct,
    };
    if view.watches_one_account_name() {
        // NB: accounts of other names are not in the index, so references recorded on them under an
        // earlier list of targets are found once, here (`retarget.rs`).
        let (client, settings) = (client.clone(), settings.clone());
        tokio::spawn(async move {
            match crate::retarget::sweep(&client, &settings).await {
                Ok(0) => {}
                Ok(released) => info!(
                    released,
                    "removed regcreds' references from {released} serviceaccounts it no longer targets"
                ),
                Err(error) => {
                    warn!(%error, "could not look for serviceaccounts regcreds no longer targets")
                }
            }
        });
    }
    let changes = WatchStream::from_changes(desired.clone()).map(|_| ());
    let every = settings.resync.max(Duration::from_secs(1));
    let resync = IntervalStream::new(tokio::time::interval_at(
        tokio::time::Instant::now() + every,
        every,
    ))
    .map(|_| ());
    let context = Arc::new(Context::new(client, settings, desired, view, metrics));
    controller
        .reconcile_all_on(stream::select(changes, resync))
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

/// A reference that wakes the reconcile of one namespace.
type Wake = ObjectRef<PartialObjectMeta<Namespace>>;

/// Watches namespaces (metadata only) into the controller's store, keeping only what deciding the scope
/// needs, and says which to reconcile: each one added or changed, and every one after a (re)list.
///
/// NB: not on `InitApply`. During a (re)list the store swaps the listed objects in only at `InitDone`;
/// a namespace created while the watch was down is not in the store before that, and its reconcile
/// would be dropped as "object not found".
fn watch_namespaces(
    client: &Client,
    scope: NamespaceScope,
) -> (
    Store<PartialObjectMeta<Namespace>>,
    impl Stream<Item = Wake> + Send + 'static,
) {
    let (store, writer) = reflector::store();
    let reader = store.clone();
    let api: Api<PartialObjectMeta<Namespace>> = Api::all(client.clone());
    let wakes = watcher(api, watcher::Config::default())
        .default_backoff()
        .modify(move |namespace| strip_namespace(namespace, &scope))
        .reflect(writer)
        .flat_map(move |event| {
            let woken: Vec<Wake> = match event {
                Ok(watcher::Event::Apply(namespace)) => vec![ObjectRef::new(&namespace.name_any())],
                Ok(watcher::Event::InitDone) => reader
                    .state()
                    .iter()
                    .map(|namespace| ObjectRef::new(&namespace.name_any()))
                    .collect(),
                Ok(_) => Vec::new(),
                Err(error) => {
                    debug!(%error, "namespace watch failed; retrying");
                    Vec::new()
                }
            };
            stream::iter(woken)
        });
    (store, wakes)
}

/// Drops from a namespace everything [`NamespaceScope::decide`] does not read: managed fields, owner
/// references, finalizers, timestamps other than the deletion's, annotations other than the opt-out
/// ones, and labels other than those the label selector reads.
fn strip_namespace(namespace: &mut PartialObjectMeta<Namespace>, scope: &NamespaceScope) {
    namespace.types = None;
    let meta = &mut namespace.metadata;
    meta.managed_fields = None;
    meta.owner_references = None;
    meta.finalizers = None;
    meta.creation_timestamp = None;
    meta.uid = None;
    meta.generate_name = None;
    meta.self_link = None;
    if let Some(labels) = &mut meta.labels {
        labels.retain(|key, _| scope.reads_label(key));
        if labels.is_empty() {
            meta.labels = None;
        }
    }
    if let Some(annotations) = &mut meta.annotations {
        annotations.retain(|key, _| IGNORE_ANNOTATIONS.contains(&key.as_str()));
        if annotations.is_empty() {
            meta.annotations = None;
        }
    }
}

/// Watches managed Secrets and ServiceAccounts into indexes, and says which namespaces to wake when
/// what regcreds knows about them changed.
///
/// When exactly one ServiceAccount name is targeted (the default, `default`), only accounts of that name
/// are watched: in a real cluster most accounts are never looked at. Withdrawing from a namespace that
/// left the scope then lists its accounts directly (references added to other accounts under an earlier
/// configuration must go too); that is not on the hot path.
fn watch_dependents(
    client: &Client,
    targets: &ServiceAccountMode,
) -> (impl Stream<Item = Wake> + Send + 'static, View) {
    let (secrets, secret_writer) = index::index::<SecretState>();
    let secret_config = watcher::Config::default().labels(&managed_selector());
    let secret_wakes = indexed(
        watcher(Api::<Secret>::all(client.clone()), secret_config),
        secret_writer,
        SecretState::from,
    );
    let (accounts, account_writer) = index::index::<AccountState>();
    let only_account = match targets {
        ServiceAccountMode::Named(names) if names.len() == 1 => Some(names[0].clone()),
        _ => None,
    };
    let account_config = match &only_account {
        Some(name) => watcher::Config::default().fields(&format!("metadata.name={name}")),
        None => watcher::Config::default(),
    };
    let account_wakes = indexed(
        watcher(Api::<ServiceAccount>::all(client.clone()), account_config),
        account_writer,
        AccountState::from,
    );
    let wakes = stream::select(secret_wakes, account_wakes);
    let view = View::Cached {
        secrets,
        accounts,
        only_account,
    };
    (wakes, view)
}

/// Feeds a watch into an index (as compact `T`s) and yields the namespaces whose state changed.
fn indexed<K, T>(
    events: impl Stream<Item = Result<watcher::Event<K>, watcher::Error>> + Send + 'static,
    mut writer: IndexWriter<T>,
    compact: fn(K) -> T,
) -> impl Stream<Item = Wake> + Send + 'static
where
    K: Resource + Clone + std::fmt::Debug + Send + 'static,
    T: Cached + Send + Sync + 'static,
{
    let entry = move |object: K| (object.namespace().unwrap_or_default(), compact(object));
    events.default_backoff().flat_map(move |event| {
        let woken = match event {
            Ok(event) => writer.apply(match event {
                watcher::Event::Apply(object) => watcher::Event::Apply(entry(object)),
                watcher::Event::Delete(object) => watcher::Event::Delete(entry(object)),
                watcher::Event::Init => watcher::Event::Init,
                watcher::Event::InitApply(object) => watcher::Event::InitApply(entry(object)),
                watcher::Event::InitDone => watcher::Event::InitDone,
            }),
            Err(error) => {
                debug!(%error, "watch failed; retrying");
                Vec::new()
            }
        };
        stream::iter(woken.into_iter().map(|namespace| ObjectRef::new(&namespace)))
    })
}

/// Records a failed reconcile and retries it later; Forbidden waits longer (only an RBAC change helps).
fn error_policy(namespace: Arc<PartialObjectMeta<Namespace>>, error: &Error, ctx: Arc<Context>) -> Action {
    failure::record(&namespace.name_any(), error, &ctx.metrics);
    if error.is_forbidden() {
        Action::requeue(Duration::from_secs(60))
    } else {
        Action::requeue(Duration::from_secs(5))
    }
}
