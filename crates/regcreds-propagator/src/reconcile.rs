//! Reconciling one namespace: make its managed Secrets and ServiceAccount references match [`Desired`].

use std::sync::Arc;

use k8s_openapi::api::core::v1::{Namespace, ObjectReference, Secret};
use kube::{
    Client, Resource, ResourceExt,
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
    instance::Claim,
    labels::REFS_ANNOTATION,
    scope::Decision,
    secrets::{self, SecretOutcome},
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
            // short requeue is a safety net for an event lost while the apiserver was away.
            Ok(Action::requeue(if complete {
                ctx.settings.resync
            } else {
                MISSING_ACCOUNT_RECHECK
            }))
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
    let mut change = ref_change(ctx, &desired);
    for secret in desired.secrets() {
        match ensure_secret(ctx, namespace, secret).await {
            Ok(true) => drop(change.add.insert(secret.name.clone())),
            Ok(false) => {}
            Err(error) => errors.push(error),
        }
    }
    for managed in ctx.view.managed_secrets(&ctx.client, namespace).await? {
        let name = managed.name_any();
        let claim = ctx
            .settings
            .instance_id
            .claim(managed.as_ref(), |n| desired.expects(n));
        if matches!(claim, Claim::Others(_) | Claim::Unknown) {
            // Another instance's Secret (or one from before instances existed that we do not write).
            continue;
        }
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
    // NB: also what this instance recorded on ServiceAccounts but no longer writes. The Secret may be gone
    // already (deleted on an earlier pass whose ServiceAccount update did not happen, e.g. before the
    // ServiceAccount cache was filled); its reference must still go.
    change.remove.extend(
        ctx.view
            .accounts_with_annotation(namespace, &ctx.settings.instance_id.refs_annotation())
            .into_iter()
            .flatten()
            .filter(|name| !desired.expects(name)),
    );
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
    let outcome = secrets::ensure(
        &ctx.client,
        namespace,
        secret,
        existing.as_deref(),
        ctx.settings.force,
        &ctx.settings.instance_id,
    )
    .await?;
    let name = &secret.name;
    match outcome {
        SecretOutcome::Unchanged => {}
        SecretOutcome::Created => {
            ctx.metrics.secret_written("created");
            info!(%namespace, secret = %name, "created secret {name} in namespace {namespace}")
        }
        SecretOutcome::Updated => {
            ctx.metrics.secret_written("updated");
            info!(%namespace, secret = %name, "updated secret {name} in namespace {namespace}")
        }
        SecretOutcome::Foreign => {
            ctx.metrics.foreign_secret();
            if let Some(existing) = existing.as_deref() {
                report_foreign(ctx, existing).await;
            }
            return Ok(false);
        }
        SecretOutcome::OtherInstance(other) => {
            ctx.metrics.foreign_secret();
            warn!(%namespace, secret = %name, instance = %other, "secret {name} in namespace {namespace} is written by regcreds instance {other}, not by this one ({}); leaving it untouched. Give each instance its own Secret names, or run `regcreds cleanup --instance {other}` if that instance is gone", ctx.settings.instance_id);
            return Ok(false);
        }
    }
    Ok(true)
}

/// An empty ServiceAccount change on behalf of this instance, which writes the Secrets `desired` expects.
fn ref_change(ctx: &Context, desired: &Desired) -> RefChange {
    RefChange::new(&ctx.settings.instance_id, desired.expected().map(String::from))
}

/// Leaves a Secret regcreds did not create alone, and says so in the log and as an Event on it.
async fn report_foreign(ctx: &Context, secret: &Secret) {
    let (name, namespace) = (secret.name_any(), secret.namespace().unwrap_or_default());
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
    let reference: ObjectReference = secret.object_ref(&());
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
        let name = account.name_any();
        match service_accounts::update(&ctx.client, namespace, &name, change).await {
            Ok(true) => {
                ctx.metrics.account_written();
                info!(%namespace, serviceaccount = %name, "patched serviceaccount {name} in namespace {namespace}")
            }
            Ok(false) => {}
            Err(error) => errors.push(error),
        }
    }
    let complete = match &ctx.settings.service_accounts {
        crate::ServiceAccountMode::Named(names) => accounts.len() >= names.len(),
        _ => true,
    };
    into_result(namespace, errors).map(|()| complete)
}

/// Removes what this instance wrote in a namespace that is out of its scope.
async fn withdraw(ctx: &Context, namespace: &str, reason: &str) -> Result<()> {
    let desired = ctx.desired.borrow().clone();
    let mut errors = Vec::new();
    let mut change = ref_change(ctx, &desired);
    for managed in ctx.view.managed_secrets(&ctx.client, namespace).await? {
        let name = managed.name_any();
        match ctx
            .settings
            .instance_id
            .claim(managed.as_ref(), |n| desired.expects(n))
        {
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
    change.remove.extend(
        ctx.view
            .accounts_with_annotation(namespace, &ctx.settings.instance_id.refs_annotation())
            .into_iter()
            .flatten(),
    );
    change.remove.extend(
        ctx.view
            .accounts_with_annotation(namespace, REFS_ANNOTATION)
            .into_iter()
            .flatten()
            .filter(|name| desired.expects(name)),
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
