//! `regcreds run`: the controller.
//!
//! Validates everything first (exit 2 on any problem, before a single request), connects to the API
//! server, starts the admin endpoint and the refresh scheduler, then runs the propagator until SIGTERM.

use std::{net::SocketAddr, process::ExitCode, sync::Arc, time::Duration};

use prometheus_client::registry::Registry;
use regcreds_propagator::{Desired, Propagator, PropagatorMetrics, Settings};
use tokio::sync::watch;
use tracing::{error, info};

use crate::{
    admin::{self, AdminState},
    commands::config_failure,
    config::{ConfigProblems, ConfiguredProvider, HealArgs, PropagationArgs, ProviderArgs, WatchModeArg},
    events::SelfEvents,
    healing::Healing,
    kube_client,
    leader::{self, LeaseSettings},
    metrics::ProviderMetrics,
    rbac, refresh,
    verification::{PeriodicCheckArgs, PeriodicChecks},
};

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
    /// Name of the Lease.
    #[arg(long = "lease-name", env = "REGCREDS_LEASE_NAME", default_value = "regcreds")]
    pub lease_name: String,
    /// Seconds without renewal after which a standby takes over.
    #[arg(
        long = "lease-duration-seconds",
        env = "REGCREDS_LEASE_DURATION_SECONDS",
        default_value_t = 15
    )]
    pub lease_duration_seconds: u64,
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
    let mut problems = ConfigProblems::default();
    let heal = args.healing.build(&mut problems);
    let (settings, providers, lease, checks) = match validate(&args).await {
        Ok(valid) if problems.is_empty() => valid,
        Ok(_) => return config_failure(&problems),
        Err(more) => {
            problems.merge(more);
            return config_failure(&problems);
        }
    };
    let identity = Identity {
        namespace: args.propagation.own_namespace(),
        pod: args.propagation.pod_name.clone(),
    };
    let auto_watch = args.propagation.watch_mode == WatchModeArg::Auto;
    let run = run_valid(
        args.admin_addr,
        settings,
        providers,
        lease,
        identity,
        auto_watch,
        checks,
        heal,
    );
    match run.await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            error!(error = format!("{err:#}"), "regcreds stopped");
            ExitCode::FAILURE
        }
    }
}

/// Where regcreds runs (for Events and the Lease).
struct Identity {
    namespace: Option<String>,
    pod: Option<String>,
}

type Valid = (
    Settings,
    Vec<ConfiguredProvider>,
    Option<LeaseSettings>,
    Option<PeriodicChecks>,
);

async fn validate(args: &RunArgs) -> Result<Valid, ConfigProblems> {
    let mut problems = ConfigProblems::default();
    let settings = args.propagation.build(&mut problems);
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
    let lease = lease_settings(args, &mut problems);
    let checks = args.checks.build(&mut problems);
    match settings {
        Some(settings) if problems.is_empty() => Ok((settings, providers, lease, checks)),
        _ => Err(problems),
    }
}

fn lease_settings(args: &RunArgs, problems: &mut ConfigProblems) -> Option<LeaseSettings> {
    if !args.leader_election {
        return None;
    }
    if args.lease_duration_seconds < 2 {
        problems.add(
            "REGCREDS_LEASE_DURATION_SECONDS (--lease-duration-seconds)",
            "must be at least 2",
        );
    }
    let Some(namespace) = args.propagation.own_namespace() else {
        problems.add(
            "REGCREDS_NAMESPACE (--namespace)",
            "is required for leader election outside a cluster (or set REGCREDS_LEADER_ELECTION=false)",
        );
        return None;
    };
    let identity = args.propagation.pod_name.clone().unwrap_or_else(random_identity);
    Some(LeaseSettings {
        namespace,
        name: args.lease_name.clone(),
        identity,
        duration_seconds: args.lease_duration_seconds,
    })
}

fn random_identity() -> String {
    format!("regcreds-{:08x}", rand::random::<u32>())
}

// NB: each argument is one validated piece of the configuration; bundling them would only rename them.
#[allow(clippy::too_many_arguments)]
async fn run_valid(
    admin_addr: SocketAddr,
    mut settings: Settings,
    providers: Vec<ConfiguredProvider>,
    lease: Option<LeaseSettings>,
    identity: Identity,
    auto_watch: bool,
    checks: Option<PeriodicChecks>,
    heal: Option<regcreds_propagator::heal::HealSettings>,
) -> anyhow::Result<()> {
    let mut registry = Registry::default();
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
        settings.namespace_poll = rbac::namespace_poll(&client).await;
    }
    let lease = match lease {
        Some(lease) if rbac::can_elect_leader(&client, &lease.namespace).await => Some(lease),
        _ => None,
    };
    let leadership = match &lease {
        Some(lease) => {
            // A standby is healthy and ready: it is doing its job, which is waiting.
            ready_tx.send_replace(true);
            let held = leader::acquire(client.clone(), lease).await?;
            ready_tx.send_replace(false);
            Some(held)
        }
        None => None,
    };
    let names: Vec<String> = providers
        .iter()
        .map(|p| p.provider.secret_name().to_string())
        .collect();
    let provider_names: Vec<&'static str> = providers.iter().map(|p| p.provider.name()).collect();
    let (desired_tx, desired) = watch::channel(Desired::new(names));
    if let Some(checks) = checks {
        checks.spawn(desired_tx.subscribe());
    }
    let events = SelfEvents::new(client.clone(), identity.namespace, identity.pod);
    let _scheduler = refresh::start(providers, desired_tx, provider_metrics.clone(), Some(events)).await?;
    tokio::spawn(report_readiness(provider_names, provider_metrics, ready_tx));
    info!("propagating to every namespace in scope");
    let _healer = healing.start(
        &client,
        settings.scope.clone(),
        desired.clone(),
        settings.instance.clone(),
    );
    let (lost_tx, lost) = tokio::sync::oneshot::channel::<()>();
    if let Some(leadership) = leadership {
        tokio::spawn(async move {
            leadership.lost().await;
            let _ = lost_tx.send(());
        });
    }
    let stop = async move {
        tokio::select! {
            () = shutdown_signal() => {}
            Ok(()) = lost => error!("lost the lease; stopping so that this replica restarts as a standby"),
        }
    };
    Propagator::new(client, settings, desired)
        .with_metrics(propagator_metrics)
        .run(stop)
        .await?;
    info!("shut down cleanly");
    Ok(())
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
