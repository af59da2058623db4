//! The healer task: three watches and the minted Secrets in, guarded pod deletions out.
//!
//! It runs in the leader only (the binary starts it after acquiring the Lease and stops it before
//! releasing it; the process exits when the Lease is lost). All state lives in one [`State`], touched by
//! this one task, so decisions never race each other.
//!
//! Ownership: with several regcreds instances side by side, each heals for its own Secrets only — the
//! names it mints (from [`Desired`]) and, for credential changes, the Secrets labelled with its
//! [`InstanceId`] — so that another instance's Secret never makes this one delete a pod.

use std::{
    collections::hash_map::DefaultHasher,
    future::Future,
    hash::{Hash, Hasher},
    time::Instant,
};

use futures::{
    Stream, StreamExt,
    stream::{self, BoxStream},
};
use k8s_openapi::api::core::v1::{Namespace, Pod, Secret, ServiceAccount};
use kube::{
    Api, Client, ResourceExt,
    runtime::{
        WatchStreamExt,
        events::{Recorder, Reporter},
        watcher::{self, Event},
    },
};
use tokio::sync::watch;
use tokio_stream::wrappers::WatchStream;
use tracing::{debug, info, warn};

use regcreds_propagator::{Decision, Desired, InstanceId, NamespaceScope, api_error, instance_selector};

use crate::{
    HealMetrics, HealSettings,
    delete::{self, Deletion},
    guard::Futile,
    pod::PodFacts,
    registries::ManagedSecrets,
    state::{Input, ObjectKey, State, Step},
    verdict::Leave,
};

/// Only pods that have not left `Pending` can be stuck before their first container starts; the
/// apiserver filters the rest (a pod that starts leaves the watch as a delete event).
const PENDING_PODS: &str = "status.phase=Pending";

/// Recreates pods that cannot pull because they were created before their ServiceAccount listed a
/// managed Secret, or that wait out kubelet's back-off after a Secret they list was fixed.
pub struct Healer {
    client: Client,
    settings: HealSettings,
    scope: NamespaceScope,
    desired: watch::Receiver<Desired>,
    metrics: HealMetrics,
    owner: InstanceId,
    instance: Option<String>,
}

impl Healer {
    /// A healer for the namespaces in `scope` and the Secrets of instance `owner`: those it mints,
    /// learnt from `desired`, and — for credential changes — those labelled with its id.
    pub fn new(
        client: Client,
        settings: HealSettings,
        scope: NamespaceScope,
        owner: InstanceId,
        desired: watch::Receiver<Desired>,
    ) -> Self {
        Self {
            client,
            settings,
            scope,
            desired,
            metrics: HealMetrics::default(),
            owner,
            instance: None,
        }
    }

    /// Counts into `metrics` (registered by the caller).
    pub fn with_metrics(mut self, metrics: HealMetrics) -> Self {
        self.metrics = metrics;
        self
    }

    /// Names this replica (pod name) in Events.
    pub fn with_instance(mut self, instance: Option<String>) -> Self {
        self.instance = instance;
        self
    }

    /// Runs until `shutdown` resolves.
    pub async fn run(self, shutdown: impl Future<Output = ()>) {
        let recorder = Recorder::new(
            self.client.clone(),
            Reporter {
                controller: "regcreds".into(),
                instance: self.instance.clone(),
            },
        );
        self.metrics.set_enabled(true);
        let mut inputs = stream::select_all(self.inputs());
        let mut state = State::new(&self.settings, Instant::now());
        tokio::pin!(shutdown);
        loop {
            let wake = state.next_wake();
            let work = tokio::select! {
                () = &mut shutdown => break,
                input = inputs.next() => match input {
                    Some(Some(input)) => {
                        let absorbed = state.absorb(input);
                        for (pod, futile) in absorbed.futile {
                            report_futile(&pod, &futile);
                        }
                        absorbed.work
                    }
                    Some(None) => continue,
                    None => break,
                },
                () = sleep_until(wake) => state.due(Instant::now()),
            };
            for (key, trigger) in work {
                let step = state.decide(&key, trigger.clone(), Instant::now());
                if self.act(&mut state, &recorder, step).await == Some(Deletion::Changed) {
                    state.changed_meanwhile(&key, trigger);
                }
            }
        }
        self.metrics.set_enabled(false);
    }

    /// The watches, each reduced to what [`State`] keeps (`None` for an error, already logged).
    fn inputs(&self) -> Vec<BoxStream<'static, Option<Input>>> {
        let client = &self.client;
        let pods = watcher(
            Api::<Pod>::all(client.clone()),
            watcher::Config::default().fields(PENDING_PODS),
            "pods",
            |pod: Pod| {
                let facts = PodFacts::from_pod(&pod);
                (facts.key.clone(), facts)
            },
        )
        .map(|event| event.map(|event| Input::Pod(Box::new(event))));
        let accounts = watcher(
            Api::<ServiceAccount>::all(client.clone()),
            watcher::Config::default(),
            "serviceaccounts",
            |account: ServiceAccount| {
                let refs = account
                    .image_pull_secrets
                    .iter()
                    .flatten()
                    .map(|r| r.name.clone())
                    .collect::<Vec<_>>();
                (object_key(&account), refs)
            },
        )
        .map(|event| event.map(Input::Account));
        let managed = WatchStream::new(self.desired.clone())
            .map(|desired| Some(Input::Managed(ManagedSecrets::from_desired(&desired))));
        let mut inputs = vec![pods.boxed(), accounts.boxed(), managed.boxed()];
        if self.settings.after_credential_change {
            // NB: this instance's Secrets only: another instance's credential change is its own to heal.
            let secrets = watcher(
                Api::<Secret>::all(client.clone()),
                watcher::Config::default().labels(&instance_selector(&self.owner)),
                "secrets",
                |secret: Secret| (object_key(&secret), digest(&secret)),
            )
            .map(|event| event.map(Input::Secret));
            inputs.push(secrets.boxed());
        }
        inputs
    }

    /// Carries out one step; for a deletion, says what the API did.
    async fn act(&self, state: &mut State, recorder: &Recorder, step: Step) -> Option<Deletion> {
        match step {
            Step::Delete(pod, heal) => {
                if !self.in_scope(&pod.key.namespace).await {
                    debug!(pod = %pod.key, "not healing: namespace out of scope");
                    return None;
                }
                match delete::delete(&self.client, &pod).await {
                    Ok(Deletion::Deleted) => {
                        state.deleted(&pod, &heal);
                        self.metrics.healed(heal.cause.label());
                        delete::report(recorder, &pod, &heal).await;
                        Some(Deletion::Deleted)
                    }
                    Ok(outcome) => {
                        debug!(pod = %pod.key, ?outcome, "not deleted: the pod changed or is gone; its next version is looked at when it arrives");
                        Some(outcome)
                    }
                    Err(error) => {
                        self.metrics.failed(error.metric_label());
                        warn!(pod = %pod.key, %error, "could not delete pod");
                        for hint in error.rbac_hints() {
                            warn!("{hint}");
                        }
                        None
                    }
                }
            }
            Step::Deferred(key, wait) => {
                self.metrics.rate_limited();
                debug!(pod = %key, wait_ms = wait.as_millis() as u64, "rate limit: deleting later");
                None
            }
            Step::Tell(pod, leave) => {
                tell(&pod, &leave);
                self.metrics.not_healable(match leave {
                    Leave::Bare(_) => "bare_pod",
                    _ => "own_image_pull_secrets",
                });
                None
            }
            Step::Leave(key, leave) => {
                debug!(pod = %key, ?leave, "leaving pod alone");
                None
            }
            Step::Gone => None,
        }
    }

    /// Whether regcreds writes to `namespace` (a safety net: pods lacking a managed Secret that their
    /// ServiceAccount lists live in namespaces in scope anyway).
    async fn in_scope(&self, namespace: &str) -> bool {
        let api: Api<Namespace> = Api::all(self.client.clone());
        match api.get_metadata_opt(namespace).await {
            Ok(Some(meta)) => self.scope.decide(&meta.metadata) == Decision::Include,
            Ok(None) => false,
            Err(error) => {
                let error = api_error("get", "namespace", namespace, namespace)(error);
                warn!(%error, "cannot check whether the namespace is in scope; not healing there now");
                false
            }
        }
    }
}

/// A watch of `api`, reduced by `reduce`, retried with backoff; errors are logged and become `None`.
fn watcher<K, V>(
    api: Api<K>,
    config: watcher::Config,
    resource: &'static str,
    reduce: impl Fn(K) -> V + Send + 'static,
) -> impl Stream<Item = Option<Event<V>>> + Send + 'static
where
    K: kube::Resource + Clone + std::fmt::Debug + serde::de::DeserializeOwned + Send + 'static,
{
    watcher::watcher(api, config)
        .default_backoff()
        .map(move |event| match event {
            Ok(event) => Some(map_event(event, &reduce)),
            Err(error) => {
                warn!(%error, resource, "pod healing: watch failed; retrying");
                None
            }
        })
}

fn map_event<K, V>(event: Event<K>, reduce: impl Fn(K) -> V) -> Event<V> {
    match event {
        Event::Apply(object) => Event::Apply(reduce(object)),
        Event::Delete(object) => Event::Delete(reduce(object)),
        Event::Init => Event::Init,
        Event::InitApply(object) => Event::InitApply(reduce(object)),
        Event::InitDone => Event::InitDone,
    }
}

fn object_key<K: ResourceExt>(object: &K) -> ObjectKey {
    (object.namespace().unwrap_or_default(), object.name_any())
}

/// A digest of a Secret's data: a change of content, not of labels, counts as a credential change.
fn digest(secret: &Secret) -> u64 {
    let mut hasher = DefaultHasher::new();
    for (key, value) in secret.data.iter().flatten() {
        key.hash(&mut hasher);
        value.0.hash(&mut hasher);
    }
    hasher.finish()
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(tokio::time::Instant::from_std(at)).await,
        None => std::future::pending().await,
    }
}

/// Says once why a stuck pod is left alone although its ServiceAccount lists a managed Secret.
fn tell(pod: &PodFacts, leave: &Leave) {
    let (namespace, name) = (&pod.key.namespace, &pod.key.name);
    let image = pod.pull_failures().next().map_or("", |c| c.image.as_str());
    let secrets = leave
        .stuck_without()
        .map(|s| s.iter().cloned().collect::<Vec<_>>().join(", "))
        .unwrap_or_default();
    let why = match leave {
        Leave::Bare(_) => {
            "no controller owns it, so nothing would recreate it: delete and recreate it yourself"
        }
        _ => {
            "it lists imagePullSecrets of its own (from its template), so a replacement would not get the \
              ServiceAccount's either: add them to its template"
        }
    };
    info!(
        %namespace,
        pod = %name,
        %image,
        "pod {namespace}/{name} cannot pull {image} without imagePullSecrets {secrets} that ServiceAccount {} lists; {why}",
        pod.service_account
    );
}

/// Says once that a controller's replacements come back without the Secret.
fn report_futile(pod: &PodFacts, futile: &Futile) {
    let owner = pod.owner.as_ref().map(ToString::to_string).unwrap_or_default();
    let secrets = futile.secrets.iter().cloned().collect::<Vec<_>>().join(", ");
    let namespace = &pod.key.namespace;
    warn!(
        %namespace,
        pod = %pod.key.name,
        %owner,
        "pod {} of {owner} was recreated without imagePullSecrets {secrets}: its template lists imagePullSecrets \
         of its own, or the ServiceAccount admission plugin is off. regcreds stops recreating pods of {owner}; \
         add {secrets} to its template",
        pod.key
    );
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use http::{Request, Response};
    use kube::client::Body;
    use serde_json::json;

    use super::*;

    /// A client whose API server refuses every request, recording each one's path and query.
    fn refusing() -> (Client, Arc<Mutex<Vec<String>>>) {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let record = seen.clone();
        let service = tower::service_fn(move |request: Request<Body>| {
            let uri = request.uri().path_and_query().map(ToString::to_string);
            record.lock().expect("lock").extend(uri);
            let answer = json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "code": 503,
                                "reason": "ServiceUnavailable", "message": "not in this test"});
            async move {
                Response::builder()
                    .status(503)
                    .header("content-type", "application/json")
                    .body(Body::from(serde_json::to_vec(&answer).expect("json")))
            }
        });
        (Client::new(service, "default"), seen)
    }

    #[tokio::test]
    async fn the_credential_change_watch_lists_only_this_instances_secrets() {
        let (client, seen) = refusing();
        let (_desired_tx, desired) = watch::channel(Desired::new(["hub-secret".to_string()]));
        let scope = NamespaceScope::new(&[], None, None).expect("scope");
        let owner = InstanceId::new("hub.regcreds-system").expect("id");
        let healer = Healer::new(client, HealSettings::default(), scope, owner, desired);
        let mut inputs = healer.inputs();
        let mut secrets = inputs
            .pop()
            .expect("with after_credential_change, a Secret watch");
        // NB: the watcher starts with `Init`, then lists (refused here: an error, reported as `None`).
        let listed = async { while secrets.next().await.is_some_and(|item| item.is_some()) {} };
        tokio::time::timeout(std::time::Duration::from_secs(10), listed)
            .await
            .expect("the Secret watch lists at once");
        let seen = seen.lock().expect("lock").clone();
        let list = seen
            .iter()
            .find(|uri| uri.starts_with("/api/v1/secrets?"))
            .unwrap_or_else(|| panic!("a Secret list: {seen:?}"));
        let decoded = list.replace("%2F", "/").replace("%3D", "=").replace("%2C", ",");
        assert!(
            decoded.contains(
                "labelSelector=app.kubernetes.io/managed-by=regcreds,regcreds.dev/instance=hub.regcreds-system"
            ),
            "{list}"
        );
    }
}
