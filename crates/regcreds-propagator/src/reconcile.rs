//! Reconciling one namespace: make its managed Secrets and ServiceAccount references match [`Desired`].

use std::{collections::BTreeSet, sync::Arc};

use k8s_openapi::api::core::v1::{Namespace, ObjectReference};
use kube::{
    Client, Resource, ResourceExt,
    core::PartialObjectMeta,
    runtime::{
        controller::Action,
        events::{Event, EventType, Recorder, Reporter},
    },
};
use tokio::sync::watch;
use tracing::{info, warn};

use crate::{
    Desired, DesiredSecret, Error, PropagatorMetrics, Result, Settings,
    cached::{AccountState, SecretState},
    instance::Claim,
    labels::REFS_ANNOTATION,
    retarget,
    scope::Decision,
    secrets::{self, Ensured, SECRET_TYPE, TakenOver},
    service_accounts::{self, RefChange, parse_refs_annotation},
    view::View,
};

/// Everything a reconcile needs.
pub struct Context {
    /// API client.
    pub client: Client,
    /// Behaviour.
    pub settings: Settings,
    /// The desired Secrets, updated by the binary.
    pub desired: watch::Receiver<Desired>,
    /// Current state of Secrets and ServiceAccounts.
    pub view: View,
    /// Publishes Kubernetes Events.
    pub recorder: Recorder,
    /// Counters.
    pub metrics: PropagatorMetrics,
}

impl Context {
    /// A context whose Events name `regcreds` as controller and `settings.instance` (this replica).
    pub fn new(
        client: Client,
        settings: Settings,
        desired: watch::Receiver<Desired>,
        view: View,
        metrics: PropagatorMetrics,
    ) -> Self {
        let reporter = Reporter {
            controller: "regcreds".into(),
            instance: settings.instance.clone(),
        };
        Self {
            recorder: Recorder::new(client.clone(), reporter),
            client,
            settings,
            desired,
            view,
            metrics,
        }
    }
}

/// Reconciles one namespace.
pub async fn reconcile(namespace: Arc<PartialObjectMeta<Namespace>>, ctx: Arc<Context>) -> Result<Action> {
    // Until the caches hold their first list, "not in the cache" would not mean "absent".
    ctx.view.synced().await;
    let name = namespace.name_any();
    match ctx.settings.scope.decide(&namespace.metadata) {
        Decision::Terminating => {
            ctx.metrics.scope(&name, false);
            ctx.metrics.converged(&name, true);
            Ok(Action::await_change())
        }
        Decision::Exclude(reason) => {
            ctx.metrics.scope(&name, false);
            withdraw(&ctx, &name, &reason).await?;
            ctx.metrics.converged(&name, true);
            Ok(Action::await_change())
        }
        Decision::Include => {
            ctx.metrics.scope(&name, true);
            let complete = propagate(&ctx, &name).await?;
            // NB: an incomplete pass (a targeted ServiceAccount that does not exist) is not a failure:
            // with named targets it may stay so for good.
            ctx.metrics.converged(&name, true);
            // NB: a named ServiceAccount that does not exist yet normally arrives through the watch; the
            // short requeue is a safety net for an event lost while the apiserver was away. The periodic
            // resync of complete namespaces is one `reconcile_all_on` tick (controller.rs), not a timer
            // per namespace: the controller would keep one scheduler entry for each of them.
            Ok(if complete {
                Action::await_change()
            } else {
                Action::requeue(MISSING_ACCOUNT_RECHECK)
            })
        }
    }
}

/// How soon a namespace is checked again while a targeted ServiceAccount is missing, or a Secret no
/// provider writes any more waits to be deleted after its references were removed.
const MISSING_ACCOUNT_RECHECK: std::time::Duration = std::time::Duration::from_secs(10);

/// Writes every minted Secret, removes ones no provider claims any more, and fixes ServiceAccounts.
/// `Ok(false)` when a named target ServiceAccount does not exist yet, or a Secret no provider writes
/// any more waits for its deletion (its references go first).
async fn propagate(ctx: &Context, namespace: &str) -> Result<bool> {
    let desired = ctx.desired.borrow().clone();
    let mut errors = Vec::new();
    let mut change = ref_change(ctx, &desired);
    for secret in desired.secrets() {
        match ensure_secret(ctx, namespace, secret).await {
            Ok(Held::Ours) => drop(change.add.insert(secret.name.clone())),
            Ok(Held::TakenOver) => {
                change.add.insert(secret.name.clone());
                change.claim.insert(secret.name.clone());
            }
            Ok(Held::NotOurs) => {}
            Err(error) => errors.push(error),
        }
    }
    let own_refs = ctx.settings.instance_id.refs_annotation();
    let referenced: BTreeSet<String> = ctx
        .view
        .accounts_with_annotation(namespace, &own_refs)
        .into_iter()
        .flatten()
        .collect();
    let mut retiring = false;
    for managed in ctx.view.managed_secrets(&ctx.client, namespace).await? {
        let name = managed.name_any();
        let claim = managed.claim(&ctx.settings.instance_id, |n| desired.expects(n));
        if matches!(claim, Claim::Others(_) | Claim::Unknown) {
            // Another instance's Secret (or one from before instances existed that we do not write).
            continue;
        }
        if desired.expects(&name) {
            // Minted earlier but not (yet) this run: keep it referenced, never drop a working credential.
            change.add.insert(name);
        } else if referenced.contains(&name) {
            // NB: a Secret no provider writes any more (a rename, a provider removed) loses its references
            // first and is deleted on a later pass: a pod created just before the ServiceAccount update
            // names it, and its first pull, a moment later, must still find it.
            change.remove.insert(name);
            retiring = true;
        } else {
            match secrets::delete(&ctx.client, namespace, &name).await {
                Ok(()) => {
                    ctx.metrics.secret_written("deleted");
                    info!(%namespace, secret = %name, "deleted secret {name} in namespace {namespace} (no provider writes it any more)")
                }
                Err(error) => errors.push(error),
            }
            change.remove.insert(name);
        }
    }
    // NB: also what this instance recorded on ServiceAccounts but no longer writes. The Secret may be gone
    // already (deleted on an earlier pass whose ServiceAccount update did not happen, e.g. before the
    // ServiceAccount cache was filled); its reference must still go.
    change
        .remove
        .extend(referenced.into_iter().filter(|name| !desired.expects(name)));
    let complete = match update_accounts(ctx, namespace, &change).await {
        Ok(complete) => complete,
        Err(error) => {
            errors.push(error);
            true
        }
    };
    if let Err(error) = release_untargeted(ctx, namespace).await {
        errors.push(error);
    }
    into_result(namespace, errors).map(|()| complete && !retiring)
}

/// Whether a Secret is this instance's after [`ensure_secret`].
enum Held {
    /// Ours and present: ServiceAccounts may reference it.
    Ours,
    /// Ours from now on, taken over from a predecessor: its existing references become ours too.
    TakenOver,
    /// Someone else's: left alone, not referenced.
    NotOurs,
}

/// Makes one Secret current.
async fn ensure_secret(ctx: &Context, namespace: &str, secret: &DesiredSecret) -> Result<Held> {
    let existing = ctx.view.secret(&ctx.client, namespace, &secret.name).await?;
    let ensured = secrets::ensure(&ctx.client, namespace, secret, existing.as_deref(), &ctx.settings).await?;
    let name = &secret.name;
    match ensured {
        Ensured::Unchanged => {}
        Ensured::Created(written) => {
            ctx.view.remember_secret(namespace, written);
            ctx.metrics.secret_written("created");
            info!(%namespace, secret = %name, "created secret {name} in namespace {namespace}")
        }
        Ensured::Updated(written) => {
            ctx.view.remember_secret(namespace, written);
            ctx.metrics.secret_written("updated");
            info!(%namespace, secret = %name, "updated secret {name} in namespace {namespace}")
        }
        Ensured::TakenOver(taken) => {
            let event = report_taken_over(namespace, &taken);
            ctx.view.remember_secret(namespace, taken.written.clone());
            ctx.metrics.secret_written("taken_over");
            publish(ctx, &event, &taken.written.object_ref(&())).await;
            return Ok(Held::TakenOver);
        }
        Ensured::Foreign(found) => {
            ctx.metrics.foreign_secret();
            report_foreign(ctx, namespace, &found).await;
            return Ok(Held::NotOurs);
        }
        Ensured::OtherInstance(other) => {
            ctx.metrics.foreign_secret();
            warn!(%namespace, secret = %name, instance = %other, "secret {name} in namespace {namespace} is written by regcreds instance {other}, not by this one ({}); leaving it untouched. Give each instance its own Secret names, or run `regcreds cleanup --instance {other}` if that instance is gone", ctx.settings.instance_id);
            return Ok(Held::NotOurs);
        }
    }
    Ok(Held::Ours)
}

/// Says in the log what was taken over from whom; returns the Event to publish on the Secret.
fn report_taken_over(namespace: &str, taken: &TakenOver) -> Event {
    let name = taken.written.name_any();
    let tool = taken.from.tool();
    let replaced = match &taken.replaced {
        Some((old_type, absent)) => format!(
            "; its type {old_type} cannot change, so it was deleted and written again as {SECRET_TYPE} (absent for at most {} ms)",
            absent.as_millis()
        ),
        None => String::new(),
    };
    info!(%namespace, secret = %name, from = tool, "took over secret {name} in namespace {namespace} from {tool}: refreshed, labelled app.kubernetes.io/managed-by=regcreds, its ServiceAccount references now regcreds'{replaced} (REGCREDS_TAKE_OVER=false leaves such Secrets alone)");
    Event {
        type_: EventType::Normal,
        reason: "SecretTakenOver".into(),
        note: Some(format!(
            "Secret {name} was written by {tool}; regcreds took it over and now keeps it current{replaced}"
        )),
        action: "TakeOver".into(),
        secondary: None,
    }
}

/// Publishes an Event; a failure is logged, never fatal.
async fn publish(ctx: &Context, event: &Event, reference: &ObjectReference) {
    if let Err(error) = ctx.recorder.publish(event, reference).await {
        warn!(%error, "could not publish event");
    }
}

/// An empty ServiceAccount change on behalf of this instance, which writes the Secrets `desired` expects.
fn ref_change(ctx: &Context, desired: &Desired) -> RefChange {
    RefChange::new(&ctx.settings.instance_id, desired.expected().map(String::from))
}

/// Leaves a Secret regcreds did not create alone, and says so in the log and as an Event on it.
async fn report_foreign(ctx: &Context, namespace: &str, secret: &SecretState) {
    let name = &secret.name;
    warn!(%namespace, secret = %name, "secret {name} in namespace {namespace} exists and is not managed by regcreds; leaving it untouched (set REGCREDS_FORCE=true to take it over)");
    let event = Event {
        type_: EventType::Warning,
        reason: "SecretNotManaged".into(),
        note: Some(format!(
            "Secret {name} exists without label app.kubernetes.io/managed-by=regcreds; regcreds left it untouched (force is off)"
        )),
        action: "Skip".into(),
        secondary: None,
    };
    publish(ctx, &event, &secret.object_reference(namespace)).await;
}

/// Applies `change` to every targeted ServiceAccount that does not satisfy it yet. `Ok(false)` when a
/// named target does not exist (yet).
async fn update_accounts(ctx: &Context, namespace: &str, change: &RefChange) -> Result<bool> {
    let accounts = ctx
        .view
        .target_accounts(&ctx.client, namespace, &ctx.settings.service_accounts)
        .await?;
    let result = patch_accounts(ctx, namespace, &accounts, change, "patched serviceaccount").await;
    let complete = match &ctx.settings.service_accounts {
        crate::ServiceAccountMode::Named(names) => accounts.len() >= names.len(),
        _ => true,
    };
    result.map(|()| complete)
}

/// Patches each of `accounts` that does not satisfy `change` yet, from its cached state (no read), and
/// remembers what the apiserver answered.
async fn patch_accounts(
    ctx: &Context,
    namespace: &str,
    accounts: &[Arc<AccountState>],
    change: &RefChange,
    done: &str,
) -> Result<()> {
    let mut errors = Vec::new();
    for account in accounts
        .iter()
        .filter(|sa| !service_accounts::is_satisfied(sa, change))
    {
        let name = &account.name;
        match service_accounts::update_known(&ctx.client, namespace, account, change).await {
            Ok(Some(written)) => {
                ctx.view.remember_account(namespace, written);
                ctx.metrics.account_written();
                info!(%namespace, serviceaccount = %name, "{done} {name} in namespace {namespace}")
            }
            Ok(None) => {}
            Err(error) => errors.push(error),
        }
    }
    into_result(namespace, errors)
}

/// Removes this instance's references from the cached ServiceAccounts it no longer targets (its list of
/// ServiceAccounts changed); see `retarget.rs`.
async fn release_untargeted(ctx: &Context, namespace: &str) -> Result<()> {
    let own = ctx.settings.instance_id.refs_annotation();
    let mut errors = Vec::new();
    for account in ctx.view.cached_accounts(namespace) {
        let Some(change) = retarget::release_change(&ctx.settings, &account.name, account.annotation(&own))
        else {
            continue;
        };
        let released = patch_accounts(
            ctx,
            namespace,
            std::slice::from_ref(&account),
            &change,
            "removed regcreds' image pull secrets (no longer a target) from serviceaccount",
        );
        if let Err(error) = released.await {
            errors.push(error);
        }
    }
    into_result(namespace, errors)
}

/// Removes what this instance wrote in a namespace that is out of its scope.
async fn withdraw(ctx: &Context, namespace: &str, reason: &str) -> Result<()> {
    let desired = ctx.desired.borrow().clone();
    let mut errors = Vec::new();
    let mut change = ref_change(ctx, &desired);
    for managed in ctx.view.managed_secrets(&ctx.client, namespace).await? {
        let name = managed.name_any();
        match managed.claim(&ctx.settings.instance_id, |n| desired.expects(n)) {
            Claim::Ours | Claim::Adopted => {}
            Claim::Others(_) | Claim::Unknown => continue,
        }
        match secrets::delete(&ctx.client, namespace, &name).await {
            Ok(()) => {
                ctx.metrics.secret_written("deleted");
                info!(%namespace, secret = %name, "deleted secret {name} in namespace {namespace} ({reason})")
            }
            Err(error) => errors.push(error),
        }
        change.remove.insert(name);
    }
    change.remove.extend(recorded_refs(ctx, namespace, &desired));
    if !change.remove.is_empty()
        && let Err(error) = withdraw_refs(ctx, namespace, &desired, &mut change).await
    {
        errors.push(error);
    }
    into_result(namespace, errors)
}

/// The references this instance recorded on the ServiceAccounts the cache holds: in its own annotation,
/// and those of the shared annotation of earlier versions that it writes.
fn recorded_refs(ctx: &Context, namespace: &str, desired: &Desired) -> Vec<String> {
    let own = ctx
        .view
        .accounts_with_annotation(namespace, &ctx.settings.instance_id.refs_annotation());
    let legacy = ctx.view.accounts_with_annotation(namespace, REFS_ANNOTATION);
    own.into_iter()
        .flatten()
        .chain(legacy.into_iter().flatten().filter(|name| desired.expects(name)))
        .collect()
}

/// Removes `change.remove` from every ServiceAccount of the namespace that has them.
///
/// NB: every account, not only the targeted ones: the configuration may have targeted others before.
/// While the cache holds only the targeted account, this lists them (one request, only in a namespace
/// where this instance left something).
async fn withdraw_refs(
    ctx: &Context,
    namespace: &str,
    desired: &Desired,
    change: &mut RefChange,
) -> Result<()> {
    let accounts = ctx
        .view
        .target_accounts(&ctx.client, namespace, &crate::ServiceAccountMode::All)
        .await;
    // NB: in poll mode listing every account may be forbidden; fall back to the configured targets.
    let accounts = match accounts {
        Ok(accounts) => accounts,
        Err(_) => {
            ctx.view
                .target_accounts(&ctx.client, namespace, &ctx.settings.service_accounts)
                .await?
        }
    };
    // What this instance recorded on accounts the cache does not hold.
    let own = ctx.settings.instance_id.refs_annotation();
    for account in &accounts {
        let recorded = |key: &str| {
            account
                .annotation(key)
                .map(parse_refs_annotation)
                .unwrap_or_default()
        };
        change.remove.extend(recorded(&own));
        change.remove.extend(
            recorded(REFS_ANNOTATION)
                .into_iter()
                .filter(|name| desired.expects(name)),
        );
    }
    patch_accounts(
        ctx,
        namespace,
        &accounts,
        change,
        "removed regcreds' image pull secrets from serviceaccount",
    )
    .await
}

fn into_result(namespace: &str, mut errors: Vec<Error>) -> Result<()> {
    match errors.len() {
        0 => Ok(()),
        1 => Err(errors.remove(0)),
        _ => Err(Error::Many {
            namespace: namespace.to_string(),
            errors,
        }),
    }
}
