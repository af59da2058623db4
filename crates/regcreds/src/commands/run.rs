//! `regcreds run`: the controller.
//!
//! Validates everything first (exit 2 on any problem, before a single request), connects to the API
//! server, starts the admin endpoint and the refresh scheduler, then runs the propagator until SIGTERM.

use std::{net::SocketAddr, process::ExitCode, sync::Arc, time::Duration};

use prometheus_client::registry::Registry;
use regcreds_propagator::{Desired, Propagator, Settings};
use tokio::sync::watch;
use tracing::{error, info};

use crate::{
    admin::{self, AdminState},
    commands::config_failure,
    config::{ConfigProblems, ConfiguredProvider, PropagationArgs, ProviderArgs},
    kube_client,
    metrics::ProviderMetrics,
    refresh,
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
    /// Propagation settings.
    #[command(flatten)]
    pub propagation: PropagationArgs,
    /// Provider settings.
    #[command(flatten)]
    pub providers: ProviderArgs,
}

/// Runs the controller.
pub async fn run(args: RunArgs) -> ExitCode {
    let (settings, providers) = match validate(&args).await {
        Ok(valid) => valid,
        Err(problems) => return config_failure(&problems),
    };
    match run_valid(args.admin_addr, settings, providers).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            error!(error = format!("{err:#}"), "regcreds stopped");
            ExitCode::FAILURE
        }
    }
}

async fn validate(args: &RunArgs) -> Result<(Settings, Vec<ConfiguredProvider>), ConfigProblems> {
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
    match settings {
        Some(settings) if problems.is_empty() => Ok((settings, providers)),
        _ => Err(problems),
    }
}

async fn run_valid(
    admin_addr: SocketAddr,
    settings: Settings,
    providers: Vec<ConfiguredProvider>,
) -> anyhow::Result<()> {
    let mut registry = Registry::default();
    let provider_metrics = ProviderMetrics::register(&mut registry);
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
    let names: Vec<String> = providers
        .iter()
        .map(|p| p.provider.secret_name().to_string())
        .collect();
    let provider_names: Vec<&'static str> = providers.iter().map(|p| p.provider.name()).collect();
    let (desired_tx, desired) = watch::channel(Desired::new(names));
    let _scheduler = refresh::start(providers, desired_tx, provider_metrics.clone()).await?;
    tokio::spawn(report_readiness(provider_names, provider_metrics, ready_tx));
    info!("propagating to every namespace in scope");
    Propagator::new(client, settings, desired)
        .run(shutdown_signal())
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
