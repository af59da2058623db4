//! Reconciling one namespace: make its managed Secrets and ServiceAccount references match [`Desired`].

use std::sync::Arc;

use k8s_openapi::api::core::v1::{Namespace, ObjectReference};
use kube::{
    Client, ResourceExt,
    core::PartialObjectMeta,
    runtime::{
        controller::Action,
        events::{Event, EventType, Recorder},
    },
};
use tokio::sync::watch;
use tracing::{info, warn};

use crate::{
    Desired, DesiredSecret, Error, PropagatorMetrics, Result, Settings,
    cached::SecretState,
    labels::REFS_ANNOTATION,
    scope::Decision,
    secrets::{self, Ensured},
    service_accounts::{self, RefChange},
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

/// Reconciles one namespace.
pub async fn reconcile(namespace: Arc<PartialObjectMeta<Namespace>>, ctx: Arc<Context>) -> Result<Action> {
    // Until the caches hold their first list, "not in the cache" would not mean "absent".
    ctx.view.synced().await;
    let name = namespace.name_any();
    match ctx.settings.scope.decide(&namespace.metadata) {
        Decision::Terminating => {
            ctx.metrics.scope(&name, false);
            Ok(Action::await_change())
        }
        Decision::Exclude(reason) => {
            ctx.metrics.scope(&name, false);
            withdraw(&ctx, &name, &reason).await?;
            Ok(Action::await_change())
        }
        Decision::Include => {
            ctx.metrics.scope(&name, true);
            let complete = propagate(&ctx, &name).await?;
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

/// How soon a namespace is checked again while a targeted ServiceAccount is missing.
const MISSING_ACCOUNT_RECHECK: std::time::Duration = std::time::Duration::from_secs(10);

/// Writes every minted Secret, removes ones no provider claims any more, and fixes ServiceAccounts.
/// `Ok(false)` when a named target ServiceAccount does not exist yet.
async fn propagate(ctx: &Context, namespace: &str) -> Result<bool> {
    let desired = ctx.desired.borrow().clone();
    let mut errors = Vec::new();
    let mut change = RefChange::default();
    for secret in desired.secrets() {
        match ensure_secret(ctx, namespace, secret).await {
            Ok(true) => drop(change.add.insert(secret.name.clone())),
            Ok(false) => {}
            Err(error) => errors.push(error),
        }
    }
    for managed in ctx.view.managed_secrets(&ctx.client, namespace).await? {
        let name = managed.name_any();
        if desired.expects(&name) {
            // Minted earlier but not (yet) this run: keep it referenced, never drop a working credential.
            change.add.insert(name);
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
    let complete = match update_accounts(ctx, namespace, &change).await {
        Ok(complete) => complete,
        Err(error) => {
            errors.push(error);
            true
        }
    };
    into_result(namespace, errors).map(|()| complete)
}

/// Makes one Secret current. `Ok(true)` when it is ours and present (so ServiceAccounts may use it).
async fn ensure_secret(ctx: &Context, namespace: &str, secret: &DesiredSecret) -> Result<bool> {
    let existing = ctx.view.secret(&ctx.client, namespace, &secret.name).await?;
    let ensured = secrets::ensure(
        &ctx.client,
        namespace,
        secret,
        existing.as_deref(),
        ctx.settings.force,
    )
    .await?;
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
        Ensured::Foreign(found) => {
            ctx.metrics.foreign_secret();
            report_foreign(ctx, namespace, &found).await;
            return Ok(false);
        }
    }
    Ok(true)
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
    let reference: ObjectReference = secret.object_reference(namespace);
    if let Err(error) = ctx.recorder.publish(&event, &reference).await {
        warn!(%error, "could not publish event");
    }
}

/// Applies `change` to every targeted ServiceAccount that does not satisfy it yet. `Ok(false)` when a
/// named target does not exist (yet).
async fn update_accounts(ctx: &Context, namespace: &str, change: &RefChange) -> Result<bool> {
    let accounts = ctx
        .view
        .target_accounts(&ctx.client, namespace, &ctx.settings.service_accounts)
        .await?;
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
                info!(%namespace, serviceaccount = %name, "patched serviceaccount {name} in namespace {namespace}")
            }
            Ok(None) => {}
            Err(error) => errors.push(error),
        }
    }
    let complete = match &ctx.settings.service_accounts {
        crate::ServiceAccountMode::Named(names) => accounts.len() >= names.len(),
        _ => true,
    };
    into_result(namespace, errors).map(|()| complete)
}

/// Removes what regcreds wrote in a namespace that is out of scope.
async fn withdraw(ctx: &Context, namespace: &str, reason: &str) -> Result<()> {
    let mut errors = Vec::new();
    let mut change = RefChange::default();
    for managed in ctx.view.managed_secrets(&ctx.client, namespace).await? {
        let name = managed.name_any();
        match secrets::delete(&ctx.client, namespace, &name).await {
            Ok(()) => {
                ctx.metrics.secret_written("deleted");
                info!(%namespace, secret = %name, "deleted secret {name} in namespace {namespace} ({reason})")
            }
            Err(error) => errors.push(error),
        }
        change.remove.insert(name);
    }
    change.remove.extend(
        ctx.view
            .accounts_with_annotation(namespace, REFS_ANNOTATION)
            .into_iter()
            .flatten(),
    );
    if !change.remove.is_empty()
        && let Err(error) = withdraw_refs(ctx, namespace, &change).await
    {
        errors.push(error);
    }
    into_result(namespace, errors)
}

async fn withdraw_refs(ctx: &Context, namespace: &str, change: &RefChange) -> Result<()> {
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
    let mut errors = Vec::new();
    for account in accounts
        .iter()
        .filter(|sa| !service_accounts::is_satisfied(sa, change))
    {
        let name = account.name_any();
        match service_accounts::update(&ctx.client, namespace, &name, change).await {
            Ok(true) => {
                ctx.metrics.account_written();
                info!(%namespace, serviceaccount = %name, "removed regcreds' image pull secrets from serviceaccount {name} in namespace {namespace}")
            }
            Ok(false) => {}
            Err(error) => errors.push(error),
        }
    }
    into_result(namespace, errors)
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
