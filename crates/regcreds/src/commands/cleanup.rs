//! `regcreds cleanup`: remove the Secrets this instance created and the ServiceAccount references it
//! added, cluster-wide; with `--all-instances`, those of every regcreds instance.
//!
//! ```text
//!  --dry-run ─────────────────────────────────────────────▶ print what would go; no Lease, no change
//!  --deployment D --stop ─▶ scale D to 0, wait until its pods are gone
//!  leader election (default) ─▶ take the instance's Lease, waiting up to --lease-wait-seconds
//!        │ a live controller keeps it ──▶ exit 3 naming the holder: nothing was removed
//!        ▼ held by cleanup: a controller starting meanwhile stays standby
//!  delete Secrets, remove references ──▶ release the Lease (with --stop: delete it)
//! ```
//!
//! The instance and its Lease are resolved as `regcreds run` resolves them: `REGCREDS_INSTANCE` and
//! `REGCREDS_LEASE_NAME` if set, else from the workload — this pod's (`kubectl exec deploy/... --
//! /regcreds cleanup`), or the Deployment named by `--deployment` (a Job's pod). The provider settings
//! and `--secret-names` name the Secrets it writes, so that Secrets from before instances existed are
//! cleaned up by the instance that wrote them. `--all-instances` holds this instance's Lease only: the
//! controllers of the others must be stopped first.

use std::{collections::BTreeSet, process::ExitCode, time::Duration};

use regcreds_propagator::{CleanupReport, CleanupScope};
use tracing::{error, info, warn};

use crate::{
    commands::config_failure,
    config::{ConfigProblems, Enablement, Instance, InstanceArgs, ProviderArgs, workload_of},
    kube_client,
    leader::{self, Holder, LeaseSettings},
    rbac, stop,
};

/// Exit code when a running controller keeps the instance's Lease: nothing was removed.
pub const EXIT_LEASE_HELD: u8 = 3;
/// How long the Lease release (or deletion) at the end may take.
const RELEASE_TIMEOUT: Duration = Duration::from_secs(5);

/// Arguments of `regcreds cleanup`.
#[derive(clap::Args, Debug)]
pub struct CleanupArgs {
    /// Remove what every regcreds instance created, not only this one's. Only this instance's Lease is
    /// taken: stop the other instances' controllers first.
    #[arg(long = "all-instances", env = "REGCREDS_CLEANUP_ALL_INSTANCES")]
    pub all_instances: bool,
    /// List each Secret and ServiceAccount reference that would be removed, and change nothing (takes no
    /// Lease).
    #[arg(long = "dry-run", env = "REGCREDS_CLEANUP_DRY_RUN")]
    pub dry_run: bool,
    /// The Deployment the instance runs as: its instance and Lease are resolved as its pods resolve them
    /// (for a cleanup run from another pod, such as a Job's).
    #[arg(long = "deployment", env = "REGCREDS_CLEANUP_DEPLOYMENT")]
    pub deployment: Option<String>,
    /// First scale the --deployment to zero replicas and wait until its pods are gone; at the end delete
    /// its Lease instead of releasing it (an uninstall). Needs get on the Deployment, patch on its
    /// `scale` subresource and list on pods in its namespace.
    #[arg(long = "stop", env = "REGCREDS_CLEANUP_STOP")]
    pub stop: bool,
    /// Seconds --stop waits for the Deployment's pods to be gone.
    #[arg(
        long = "stop-timeout-seconds",
        env = "REGCREDS_CLEANUP_STOP_TIMEOUT_SECONDS",
        default_value_t = 120
    )]
    pub stop_timeout_seconds: u64,
    /// Seconds to wait for the instance's Lease while a controller holds it; then cleanup refuses (exit 3)
    /// and removes nothing.
    #[arg(
        long = "lease-wait-seconds",
        env = "REGCREDS_CLEANUP_LEASE_WAIT_SECONDS",
        default_value_t = 30
    )]
    pub lease_wait_seconds: u64,
    /// Whether the instance's controllers elect a leader (as for `regcreds run`). If they do not, they hold
    /// no Lease and cleanup cannot keep them from recreating what it removes: stop them first.
    #[arg(long = "leader-election", env = "REGCREDS_LEADER_ELECTION", default_value_t = true, action = clap::ArgAction::Set)]
    pub leader_election: bool,
    /// Name of the instance's Lease [default: REGCREDS_INSTANCE if set, else the workload (Deployment)
    /// name], in its namespace (REGCREDS_NAMESPACE).
    #[arg(long = "lease-name", env = "REGCREDS_LEASE_NAME")]
    pub lease_name: Option<String>,
    /// Seconds the Lease is held between renewals while cleaning up.
    #[arg(
        long = "lease-duration-seconds",
        env = "REGCREDS_LEASE_DURATION_SECONDS",
        default_value_t = 15
    )]
    pub lease_duration_seconds: u64,
    /// Secret names the instance writes, besides those of the providers configured here
    /// (comma-separated): Secrets from before instances existed with these names are removed too.
    #[arg(
        long = "secret-names",
        env = "REGCREDS_CLEANUP_SECRET_NAMES",
        value_delimiter = ','
    )]
    pub secret_names: Vec<String>,
    /// Which instance to clean up.
    #[command(flatten)]
    pub instance: InstanceArgs,
    /// Provider settings: the Secret names this instance writes.
    #[command(flatten)]
    pub providers: ProviderArgs,
}

/// Everything a cleanup needs, validated.
struct Valid {
    scope: CleanupScope,
    instance: Instance,
    /// `None` with leader election off, and in a dry run.
    lease: Option<LeaseSettings>,
    /// `(namespace, Deployment)` to scale to zero first.
    stop: Option<(String, String)>,
    pod: Option<String>,
}

/// Runs `regcreds cleanup`.
pub async fn cleanup(args: CleanupArgs) -> ExitCode {
    let valid = match validate(&args).await {
        Ok(valid) => valid,
        Err(problems) => return config_failure(&problems),
    };
    match &valid.scope {
        CleanupScope::Instance { id, names } => {
            info!(instance = %id, names = ?names, "cleaning up what instance {id} created ({})", valid.instance.origin)
        }
        CleanupScope::Everyone => info!("cleaning up what every regcreds instance created"),
    }
    let client = match kube_client::connect_once().await {
        Ok(client) => client,
        Err(err) => {
            error!(error = format!("{err:#}"), "cleanup failed");
            return ExitCode::FAILURE;
        }
    };
    if args.dry_run {
        return dry_run(&client, &valid.scope).await;
    }
    match clean(&client, &valid, &args).await {
        Ok(report) => {
            if !report.instances.is_empty() && matches!(valid.scope, CleanupScope::Everyone) {
                let instances: Vec<&str> = report.instances.iter().map(String::as_str).collect();
                info!(instances = %instances.join(","), "removed the objects of instances {}", instances.join(", "));
            }
            println!(
                "removed {} secrets and cleaned {} serviceaccounts",
                report.secrets_deleted, report.accounts_updated
            );
            ExitCode::SUCCESS
        }
        Err(Failure::LeaseHeld(message)) => {
            eprintln!("{message}");
            ExitCode::from(EXIT_LEASE_HELD)
        }
        Err(Failure::Other(err)) => {
            error!(error = format!("{err:#}"), "cleanup failed");
            ExitCode::FAILURE
        }
    }
}

/// Why a cleanup did not finish.
enum Failure {
    /// A running controller keeps the Lease; the message says who and what to do.
    LeaseHeld(String),
    Other(anyhow::Error),
}

impl From<anyhow::Error> for Failure {
    fn from(error: anyhow::Error) -> Self {
        Self::Other(error)
    }
}

async fn clean(client: &kube::Client, valid: &Valid, args: &CleanupArgs) -> Result<CleanupReport, Failure> {
    if let Some((namespace, deployment)) = &valid.stop {
        let timeout = Duration::from_secs(args.stop_timeout_seconds);
        stop::stop_deployment(client, namespace, deployment, valid.pod.as_deref(), timeout).await?;
    }
    let Some(lease) = &valid.lease else {
        if valid.stop.is_some() {
            info!("leader election is off (REGCREDS_LEADER_ELECTION=false): no Lease to take");
        } else {
            warn!(
                "leader election is off (REGCREDS_LEADER_ELECTION=false): this instance's controllers hold no \
                 Lease, so cleanup cannot keep them from recreating what it removes. Stop them first \
                 (scale their Deployment to zero, or run cleanup with --deployment <name> --stop)."
            );
        }
        return Ok(regcreds_propagator::cleanup(client, &valid.scope)
            .await
            .map_err(anyhow::Error::from)?);
    };
    let mut held = hold(client, lease, &valid.instance, args.lease_wait_seconds).await?;
    let lost = held.lost();
    let outcome = tokio::select! {
        report = regcreds_propagator::cleanup(client, &valid.scope) => report.map_err(anyhow::Error::from),
        Ok(()) = lost => Err(anyhow::anyhow!(
            "lost Lease {}/{} while cleaning up; a controller may have taken over: run cleanup again",
            lease.namespace, lease.name
        )),
    };
    held.release(RELEASE_TIMEOUT).await;
    if valid.stop.is_some() {
        match leader::delete_if_free(client, lease).await {
            Ok(true) => {
                info!(lease = %lease.name, namespace = %lease.namespace, "deleted Lease {}/{}", lease.namespace, lease.name)
            }
            Ok(false) => {}
            Err(error) => {
                warn!(%error, lease = %lease.name, "could not delete Lease {}/{}", lease.namespace, lease.name)
            }
        }
    }
    Ok(outcome?)
}

/// Takes the instance's Lease, waiting up to `wait_seconds` for a running controller to let go.
async fn hold(
    client: &kube::Client,
    lease: &LeaseSettings,
    instance: &Instance,
    wait_seconds: u64,
) -> Result<leader::Leadership, Failure> {
    let (namespace, name) = (&lease.namespace, &lease.name);
    let mut missing = Vec::new();
    for verb in ["get", "create", "patch"] {
        if !rbac::allowed_in(client, verb, "coordination.k8s.io", "leases", Some(namespace)).await {
            missing.push(verb);
        }
    }
    if !missing.is_empty() {
        return Err(Failure::Other(anyhow::anyhow!(
            "cannot take Lease {namespace}/{name}: RBAC does not allow {} on leases (coordination.k8s.io) in \
             namespace {namespace}. Grant them, or stop the instance's controllers and run cleanup with \
             REGCREDS_LEADER_ELECTION=false",
            missing.join(", ")
        )));
    }
    let mut settings = lease.clone();
    settings.watch_allowed =
        rbac::allowed_in(client, "watch", "coordination.k8s.io", "leases", Some(namespace)).await
            && rbac::allowed_in(client, "list", "coordination.k8s.io", "leases", Some(namespace)).await;
    if let Ok(Some(holder)) = leader::live_holder(client, &settings).await {
        info!(lease = %name, %namespace, holder = %holder.identity, "Lease {namespace}/{name} is held by {}; waiting up to {wait_seconds}s for it", holder.identity);
    }
    let wait = Duration::from_secs(wait_seconds);
    match tokio::time::timeout(wait, leader::take(client.clone(), &settings)).await {
        Ok(Ok(held)) => {
            info!(lease = %name, %namespace, identity = %settings.identity, "holding Lease {namespace}/{name}: the instance's controllers stand by");
            Ok(held)
        }
        Ok(Err(error)) => Err(Failure::Other(error)),
        Err(_) => match leader::live_holder(client, &settings).await {
            Ok(Some(holder)) => Err(Failure::LeaseHeld(held_message(
                &settings,
                instance,
                &holder,
                wait_seconds,
            ))),
            Ok(None) => Err(Failure::Other(anyhow::anyhow!(
                "could not take Lease {namespace}/{name} within {wait_seconds}s; nothing was removed"
            ))),
            Err(error) => Err(Failure::Other(anyhow::Error::from(error).context(format!(
                "could not take Lease {namespace}/{name} within {wait_seconds}s, nor read it"
            )))),
        },
    }
}

/// What a refused cleanup says: who holds the Lease and what to do.
fn held_message(lease: &LeaseSettings, instance: &Instance, holder: &Holder, waited: u64) -> String {
    let (namespace, name) = (&lease.namespace, &lease.name);
    let workload = workload_of(&holder.identity);
    format!(
        "cleanup refused, nothing was removed: Lease {namespace}/{name} is held by {} (renewed {}s ago), a \
         running regcreds of instance {}, which would recreate at once what cleanup removes. Stop it first: \
         `kubectl -n {namespace} scale deployment/{workload} --replicas=0` (or run cleanup with --deployment \
         {workload} --stop, which does that), then run cleanup again. Waited {waited}s \
         (--lease-wait-seconds, REGCREDS_CLEANUP_LEASE_WAIT_SECONDS).",
        holder.identity,
        holder.renewed_ago.as_secs(),
        instance.id,
    )
}

/// `--dry-run`: one line per Secret and per ServiceAccount reference that would go, then a summary.
async fn dry_run(client: &kube::Client, scope: &CleanupScope) -> ExitCode {
    let plan = match scope.plan(client).await {
        Ok(plan) => plan,
        Err(err) => {
            error!(error = %err, "cleanup dry run failed");
            return ExitCode::FAILURE;
        }
    };
    print!("{}", dry_run_text(&plan, matches!(scope, CleanupScope::Everyone)));
    ExitCode::SUCCESS
}

fn dry_run_text(plan: &CleanupReport, all_instances: bool) -> String {
    let mut out = String::new();
    for (namespace, name) in &plan.secrets {
        out += &format!("would delete secret {namespace}/{name}\n");
    }
    for (namespace, account, entries) in &plan.accounts {
        if entries.is_empty() {
            out += &format!(
                "would remove regcreds' record annotation from serviceaccount {namespace}/{account}\n"
            );
        }
        for entry in entries {
            out += &format!(
                "would remove imagePullSecrets entry {entry} from serviceaccount {namespace}/{account}\n"
            );
        }
    }
    let instances = if all_instances && !plan.instances.is_empty() {
        let names: Vec<&str> = plan.instances.iter().map(String::as_str).collect();
        format!(" of instances {}", names.join(", "))
    } else {
        String::new()
    };
    out += &format!(
        "dry run: would remove {} secrets and clean {} serviceaccounts{instances}; nothing was changed\n",
        plan.secrets.len(),
        plan.accounts.len()
    );
    out
}

async fn validate(args: &CleanupArgs) -> Result<Valid, ConfigProblems> {
    let mut problems = ConfigProblems::default();
    let deployment = args
        .deployment
        .as_deref()
        .map(str::trim)
        .filter(|d| !d.is_empty());
    let instance = args.instance.resolve_as(deployment, &mut problems);
    let namespace = args.instance.own_namespace();
    let pod = args.instance.pod_name();
    let stop = match (args.stop, deployment) {
        (false, _) => None,
        (true, None) => {
            problems.add(
                "REGCREDS_CLEANUP_STOP (--stop)",
                "needs the Deployment to stop: set REGCREDS_CLEANUP_DEPLOYMENT (--deployment)",
            );
            None
        }
        (true, Some(deployment)) => match &namespace {
            Some(namespace) => Some((namespace.clone(), deployment.to_string())),
            None => {
                problems.add(
                    "REGCREDS_NAMESPACE (--namespace)",
                    "is required with --stop outside a cluster: the namespace of the Deployment",
                );
                None
            }
        },
    };
    let lease = match &instance {
        Some(instance) if args.leader_election && !args.dry_run => {
            lease_settings(args, instance, namespace, pod.clone(), &mut problems)
        }
        _ => None,
    };
    let scope = scope(args, instance.as_ref()).await;
    match (instance, scope) {
        (Some(instance), Some(scope)) if problems.is_empty() => Ok(Valid {
            scope,
            instance,
            lease,
            stop,
            pod,
        }),
        _ => Err(problems),
    }
}

fn lease_settings(
    args: &CleanupArgs,
    instance: &Instance,
    namespace: Option<String>,
    pod: Option<String>,
    problems: &mut ConfigProblems,
) -> Option<LeaseSettings> {
    if args.lease_duration_seconds < 2 {
        problems.add(
            "REGCREDS_LEASE_DURATION_SECONDS (--lease-duration-seconds)",
            "must be at least 2",
        );
    }
    let Some(namespace) = namespace else {
        problems.add(
            "REGCREDS_NAMESPACE (--namespace)",
            "is required outside a cluster: the namespace of the instance's Lease (or, once its controllers \
             are stopped, set REGCREDS_LEADER_ELECTION=false)",
        );
        return None;
    };
    let name = args
        .lease_name
        .clone()
        .filter(|n| !n.trim().is_empty())
        .unwrap_or_else(|| instance.lease_name.clone());
    Some(LeaseSettings {
        namespace,
        name,
        // NB: never the bare pod name: run inside a controller's pod (`kubectl exec`), cleanup would
        // count the controller's Lease as its own.
        identity: format!(
            "regcreds-cleanup@{}",
            pod.unwrap_or_else(|| format!("{:08x}", rand::random::<u32>()))
        ),
        duration_seconds: args.lease_duration_seconds,
        watch_allowed: false,
    })
}

async fn scope(args: &CleanupArgs, instance: Option<&Instance>) -> Option<CleanupScope> {
    if args.all_instances {
        return Some(CleanupScope::Everyone);
    }
    // NB: provider problems do not stop a cleanup; a provider that is not valid writes nothing anyway.
    let mut ignored = ConfigProblems::default();
    let configured = args
        .providers
        .statuses(&mut ignored)
        .await
        .into_iter()
        .filter_map(|status| match status.enablement {
            Enablement::Enabled(configured) => Some(configured.provider.secret_name().to_string()),
            _ => None,
        });
    let given = args
        .secret_names
        .iter()
        .map(|n| n.trim().to_string())
        .filter(|n| !n.is_empty());
    let names: BTreeSet<String> = configured.chain(given).collect();
    Some(CleanupScope::Instance {
        id: instance?.id.clone(),
        names,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dry_run_lists_each_secret_and_each_reference_then_a_summary() {
        let plan = CleanupReport {
            secrets: vec![
                ("app1".into(), "dpr-secret".into()),
                ("app2".into(), "dpr-secret".into()),
            ],
            accounts: vec![
                ("app1".into(), "default".into(), vec!["dpr-secret".into()]),
                ("app2".into(), "builder".into(), vec![]),
            ],
            instances: BTreeSet::from(["regcreds.regcreds".to_string()]),
            ..CleanupReport::default()
        };
        assert_eq!(
            dry_run_text(&plan, false),
            "would delete secret app1/dpr-secret\n\
             would delete secret app2/dpr-secret\n\
             would remove imagePullSecrets entry dpr-secret from serviceaccount app1/default\n\
             would remove regcreds' record annotation from serviceaccount app2/builder\n\
             dry run: would remove 2 secrets and clean 2 serviceaccounts; nothing was changed\n"
        );
        assert!(dry_run_text(&plan, true).ends_with(
            "would remove 2 secrets and clean 2 serviceaccounts of instances regcreds.regcreds; \
                 nothing was changed\n"
        ));
    }

    #[test]
    fn a_refusal_names_the_holder_and_how_to_stop_it() {
        let lease = LeaseSettings {
            namespace: "regcreds".into(),
            name: "regcreds".into(),
            identity: "regcreds-cleanup-1".into(),
            duration_seconds: 15,
            watch_allowed: true,
        };
        let mut problems = ConfigProblems::default();
        let instance = InstanceArgs {
            instance: Some("regcreds.regcreds".into()),
            ..InstanceArgs::default()
        }
        .resolve(&mut problems)
        .expect("instance");
        let holder = Holder {
            identity: "regcreds-7d9f8b6c4-x2k5p".into(),
            renewed_ago: Duration::from_secs(2),
        };
        let message = held_message(&lease, &instance, &holder, 30);
        for needle in [
            "nothing was removed",
            "Lease regcreds/regcreds is held by regcreds-7d9f8b6c4-x2k5p (renewed 2s ago)",
            "instance regcreds.regcreds",
            "kubectl -n regcreds scale deployment/regcreds --replicas=0",
            "--deployment regcreds --stop",
            "Waited 30s",
        ] {
            assert!(message.contains(needle), "{needle:?} in {message}");
        }
    }
}
