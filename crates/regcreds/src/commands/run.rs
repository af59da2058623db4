//! `regcreds run`: the controller.
//!
//! Validates everything first (exit 2 on any problem, before a single request), connects to the API
//! server, starts the admin endpoint and the refresh scheduler, then runs the propagator until SIGTERM —
//! and releases the Lease once it has stopped writing, so a standby takes over at once. Pod healing
//! (`REGCREDS_HEAL_PODS`) runs in the leader only, from the Lease's acquisition until the propagator stops.
//! With `REGCREDS_RUN_ONCE` (`CONFIG_RUNONCE`) it makes one pass instead (see `run_once`); healing needs a
//! running controller, so the two together are refused.

use std::{net::SocketAddr, process::ExitCode, sync::Arc, time::Duration};

use prometheus_client::registry::Registry;
use regcreds_heal::HealSettings;
use regcreds_propagator::{Desired, Propagator, PropagatorMetrics, Settings};
use regcreds_verify::{ControllerChecks, PeriodicCheckArgs, PublishedConfig, require_probes};
use tokio::sync::watch;
use tracing::{error, info};

use crate::{
    admin::{self, AdminState},
    commands::{config_failure, run_once},
    config::{
        ConfigProblems, ConfiguredProvider, HealArgs, Instance, InstanceArgs, PropagationArgs, ProviderArgs,
        WatchModeArg,
    },
    events::SelfEvents,
    healing::Healing,
    kube_client,
    leader::{self, LeaseSettings},
    metrics::{ProcessMetrics, ProviderMetrics},
    rbac, refresh,
};

/// How long a leader that shuts down waits for the Lease release to be written.
const RELEASE_TIMEOUT: Duration = Duration::from_secs(5);

/// Arguments of `regcreds run`.
#[derive(clap::Args, Debug)]
pub struct RunArgs {
    /// Address of the admin endpoint (`/healthz`, `/readyz`, `/metrics`).
    #[arg(
        long = "admin-addr",
        env = "REGCREDS_ADMIN_ADDR",
        default_value = "0.0.0.0:8080"
    )]
    pub admin_addr: SocketAddr,
    /// Run several replicas safely: only the holder of a Lease in regcreds' namespace mints and writes.
    #[arg(long = "leader-election", env = "REGCREDS_LEADER_ELECTION", default_value_t = true, action = clap::ArgAction::Set)]
    pub leader_election: bool,
    /// Name of the Lease [default: REGCREDS_INSTANCE if set, else the workload (Deployment) name, so that
    /// two Deployments in one namespace elect a leader each].
    #[arg(long = "lease-name", env = "REGCREDS_LEASE_NAME")]
    pub lease_name: Option<String>,
    /// Seconds without renewal after which a standby takes over (a leader that shuts down releases the
    /// Lease at once).
    #[arg(
        long = "lease-duration-seconds",
        env = "REGCREDS_LEASE_DURATION_SECONDS",
        default_value_t = 15
    )]
    pub lease_duration_seconds: u64,
    /// Which regcreds this is, and where it runs.
    #[command(flatten)]
    pub instance: InstanceArgs,
    /// Propagation settings.
    #[command(flatten)]
    pub propagation: PropagationArgs,
    /// Provider settings.
    #[command(flatten)]
    pub providers: ProviderArgs,
    /// Periodic credential checks.
    #[command(flatten)]
    pub checks: PeriodicCheckArgs,
    /// Pod healing.
    #[command(flatten)]
    pub healing: HealArgs,
}

/// Runs the controller.
pub async fn run(args: RunArgs) -> ExitCode {
    let valid = match validate(&args).await {
        Ok(valid) => valid,
        Err(problems) => return config_failure(&problems),
    };
    info!(instance = %valid.instance.id, "regcreds instance {} ({})", valid.instance.id, valid.instance.origin);
    if valid.run_once {
        let gate = valid.checks.as_ref().and_then(ControllerChecks::gate);
        return run_once::run(valid.settings, valid.providers, gate).await;
    }
    let auto_watch = args.propagation.watch_mode == WatchModeArg::Auto;
    match run_valid(args.admin_addr, valid, auto_watch).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            error!(error = format!("{err:#}"), "regcreds stopped");
            ExitCode::FAILURE
        }
    }
}

/// Everything `run` needs, validated.
struct Valid {
    settings: Settings,
    providers: Vec<ConfiguredProvider>,
    lease: Option<LeaseSettings>,
    checks: Option<ControllerChecks>,
    /// Pod healing, when turned on.
    heal: Option<HealSettings>,
    instance: Instance,
    run_once: bool,
    /// Namespace listing period when namespaces cannot be watched, and the variable that set it.
    namespace_poll: (Duration, Option<&'static str>),
    /// regcreds' own namespace and pod, for Events.
    namespace: Option<String>,
    pod: Option<String>,
}

async fn validate(args: &RunArgs) -> Result<Valid, ConfigProblems> {
    let mut problems = ConfigProblems::default();
    let (namespace, pod) = (args.instance.own_namespace(), args.instance.pod_name());
    let instance = args.instance.resolve(&mut problems);
    let settings = args.propagation.build(namespace.clone(), &mut problems);
    let run_once = args.propagation.run_once(&mut problems);
    let namespace_poll = args.propagation.namespace_poll(&mut problems);
    let providers = match args.providers.build().await {
        Ok(providers) => providers,
        Err(provider_problems) => {
            problems.merge(provider_problems);
            Vec::new()
        }
    };
    if providers.is_empty() && problems.is_empty() {
        problems.add(
            "providers",
            "no provider is configured; see `regcreds config check` and config/*.env",
        );
    }
    let lease = match &instance {
        Some(instance) if !run_once => {
            lease_settings(args, instance, namespace.clone(), pod.clone(), &mut problems)
        }
        _ => None,
    };
    let checks = args.checks.build(&mut problems);
    if let Some(checks) = &checks {
        require_probes(&providers, checks.checker(), &mut problems);
    }
    let heal = args.healing.build(&mut problems);
    if run_once && heal.is_some() {
        problems.add(
            "REGCREDS_HEAL_PODS (--heal-pods)",
            "healing watches pods and needs a running controller, but REGCREDS_RUN_ONCE (CONFIG_RUNONCE) \
             makes one pass and exits: unset one of the two",
        );
    }
    match (settings, instance) {
        (Some(mut settings), Some(instance)) if problems.is_empty() => {
            settings.instance = pod.clone();
            settings.instance_id = instance.id.clone();
            Ok(Valid {
                settings,
                providers,
                lease,
                checks,
                heal,
                instance,
                run_once,
                namespace_poll,
                namespace,
                pod,
            })
        }
        _ => Err(problems),
    }
}

fn lease_settings(
    args: &RunArgs,
    instance: &Instance,
    namespace: Option<String>,
    pod: Option<String>,
    problems: &mut ConfigProblems,
) -> Option<LeaseSettings> {
    if !args.leader_election {
        return None;
    }
    if args.lease_duration_seconds < 2 {
        problems.add(
            "REGCREDS_LEASE_DURATION_SECONDS (--lease-duration-seconds)",
            "must be at least 2",
        );
    }
    let Some(namespace) = namespace else {
        problems.add(
            "REGCREDS_NAMESPACE (--namespace)",
            "is required for leader election outside a cluster (or set REGCREDS_LEADER_ELECTION=false)",
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
        identity: pod.unwrap_or_else(random_identity),
        duration_seconds: args.lease_duration_seconds,
        watch_allowed: false,
    })
}

fn random_identity() -> String {
    format!("regcreds-{:08x}", rand::random::<u32>())
}

async fn run_valid(admin_addr: SocketAddr, valid: Valid, auto_watch: bool) -> anyhow::Result<()> {
    let Valid {
        mut settings,
        providers,
        lease,
        checks,
        heal,
        namespace_poll,
        namespace,
        pod,
        ..
    } = valid;
    let mut registry = Registry::default();
    let process_metrics = ProcessMetrics::register(&mut registry);
    let provider_metrics = ProviderMetrics::register(&mut registry);
    let propagator_metrics = PropagatorMetrics::register(&mut registry);
    let checks = checks.map(|checks| checks.register(&mut registry));
    let mut healing = Healing::register(heal, &mut registry);
    let (ready_tx, ready) = watch::channel(false);
    let admin = AdminState {
        registry: Arc::new(registry),
        ready,
    };
    tokio::spawn(async move {
        if let Err(err) = admin::serve(admin_addr, admin).await {
            error!(error = %err, %admin_addr, "admin endpoint failed");
        }
    });
    let client = kube_client::connect().await?;
    healing.check_permissions(&client).await;
    if auto_watch {
        settings.watch_mode = rbac::detect_watch_mode(&client).await;
        settings.namespace_poll = rbac::namespace_poll(&client, namespace_poll).await;
    }
    let lease = match lease {
        Some(mut lease) if rbac::can_elect_leader(&client, &lease.namespace).await => {
            lease.watch_allowed = rbac::can_watch_lease(&client, &lease.namespace).await;
            Some(lease)
        }
        _ => None,
    };
    let mut leadership = match &lease {
        Some(lease) => {
            // A standby is healthy and ready: it is doing its job, which is waiting.
            ready_tx.send_replace(true);
            let held = tokio::select! {
                held = leader::acquire(client.clone(), lease) => held?,
                () = shutdown_signal() => {
                    info!("shut down cleanly (standby)");
                    return Ok(());
                }
            };
            ready_tx.send_replace(false);
            Some(held)
        }
        None => None,
    };
    // NB: also without leader election: this replica then writes on its own.
    process_metrics.set_leader(true);
    let names: Vec<String> = providers
        .iter()
        .map(|p| p.provider.secret_name().to_string())
        .collect();
    let provider_names: Vec<&'static str> = providers.iter().map(|p| p.provider.name()).collect();
    let (desired_tx, desired) = watch::channel(Desired::new(names));
    let gate = checks.as_ref().and_then(ControllerChecks::gate);
    if let Some(checks) = checks {
        checks.spawn(desired_tx.subscribe(), published);
    }
    let events = SelfEvents::new(client.clone(), namespace, pod);
    let _scheduler = refresh::start(
        providers,
        desired_tx,
        provider_metrics.clone(),
        Some(events),
        gate,
    )
    .await?;
    tokio::spawn(report_readiness(provider_names, provider_metrics, ready_tx));
    info!("propagating to every namespace in scope");
    // NB: after the Lease: only the leader heals, like only the leader writes.
    let healer = healing.start(&client, &settings, desired.clone());
    let lost = leadership.as_mut().map(leader::Leadership::lost);
    let stop = async move {
        let lost = async move {
            let lost = match lost {
                Some(lost) => lost.await.is_ok(),
                None => false,
            };
            if !lost {
                std::future::pending::<()>().await;
            }
        };
        tokio::select! {
            () = shutdown_signal() => {}
            () = lost => error!("lost the lease; stopping so that this replica restarts as a standby"),
        }
    };
    let stopped = Propagator::new(client, settings, desired)
        .with_metrics(propagator_metrics)
        .run(stop)
        .await;
    if let Some(healer) = healer {
        healer.stop().await;
    }
    // NB: only now, with every write and deletion finished, may the next leader start writing.
    process_metrics.set_leader(false);
    if let Some(leadership) = leadership {
        leadership.release(RELEASE_TIMEOUT).await;
    }
    stopped?;
    info!("shut down cleanly");
    Ok(())
}

/// What the re-checks check: every minted Secret's bytes.
fn published(desired: &Desired) -> Vec<PublishedConfig> {
    desired
        .secrets()
        .map(|secret| PublishedConfig {
            name: secret.name.clone(),
            provider: secret.provider.clone(),
            data: secret.data.clone(),
        })
        .collect()
}

/// Flips readiness once every provider has minted at least once.
async fn report_readiness(
    providers: Vec<&'static str>,
    metrics: ProviderMetrics,
    ready: watch::Sender<bool>,
) {
    while !providers.iter().all(|p| metrics.has_minted(p)) {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    ready.send_replace(true);
    info!("ready: every provider has minted");
}

/// Resolves on SIGTERM (Kubernetes) or SIGINT (Ctrl-C).
async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(term) => term,
            Err(_) => return std::future::pending().await,
        };
        tokio::select! {
            _ = ctrl_c => {},
            _ = term.recv() => {},
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
    info!("shutdown requested; finishing in-flight work");
}
