//! The polling driver of [`reconcile`], for RBAC that cannot watch namespaces (imagepullsecret-patcher's
//! ClusterRole grants only `list` and `get` on them): list every `interval`, reconcile each namespace
//! with bounded concurrency, and start a pass at once when the desired Secrets change. A failed
//! namespace is retried at the next pass. [`once`] is a single pass (imagepullsecret-patcher's
//! `CONFIG_RUNONCE`, for a Job or CronJob). `controller.rs` is the other driver.

use std::{
    future::Future,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use futures::StreamExt;
use k8s_openapi::api::core::v1::Namespace;
use kube::{Api, ResourceExt, api::ListParams};
use tracing::warn;

use crate::{
    Result,
    error::api_error,
    failure,
    reconcile::{Context, reconcile},
};

/// Polls until `shutdown` resolves.
pub async fn run(ctx: Arc<Context>, interval: Duration, shutdown: impl Future<Output = ()>) -> Result<()> {
    let mut desired = ctx.desired.clone();
    tokio::pin!(shutdown);
    loop {
        if let Err(error) = pass(&ctx).await {
            warn!(%error, retry_in_s = interval.as_secs(), "cannot list namespaces");
            for hint in error.rbac_hints() {
                warn!("{hint}");
            }
        }
        tokio::select! {
            () = &mut shutdown => return Ok(()),
            () = tokio::time::sleep(interval) => {}
            changed = desired.changed() => if changed.is_err() { return Ok(()) },
        }
    }
}

/// What one pass over every namespace did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct PassReport {
    /// Namespaces seen (in scope or not).
    pub namespaces: usize,
    /// Namespaces whose reconcile failed (logged one by one).
    pub failed: usize,
}

/// One pass over every namespace, then return.
pub async fn once(ctx: Arc<Context>) -> Result<PassReport> {
    pass(&ctx).await
}

/// One pass over every namespace.
async fn pass(ctx: &Arc<Context>) -> Result<PassReport> {
    let api: Api<Namespace> = Api::all(ctx.client.clone());
    let namespaces = api
        .list_metadata(&ListParams::default())
        .await
        .map_err(api_error("list", "namespace", "*", "*"))?;
    let failed = AtomicUsize::new(0);
    let count = namespaces.items.len();
    futures::stream::iter(namespaces.items)
        .for_each_concurrent(usize::from(ctx.settings.concurrency), |namespace| {
            let (ctx, failed) = (ctx.clone(), &failed);
            async move {
                let namespace = Arc::new(namespace);
                if let Err(error) = reconcile(namespace.clone(), ctx.clone()).await {
                    failed.fetch_add(1, Ordering::Relaxed);
                    failure::record(&namespace.name_any(), &error, &ctx.metrics);
                }
            }
        })
        .await;
    Ok(PassReport {
        namespaces: count,
        failed: failed.into_inner(),
    })
}
