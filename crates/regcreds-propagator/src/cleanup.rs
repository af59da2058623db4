//! `regcreds cleanup`: remove everything regcreds ever created in the cluster.

use std::collections::BTreeSet;

use k8s_openapi::api::core::v1::{Secret, ServiceAccount};
use kube::{Api, Client, ResourceExt, api::ListParams};
use tracing::info;

use crate::{
    Result,
    error::api_error,
    labels::{REFS_ANNOTATION, managed_selector},
    secrets,
    service_accounts::{self, RefChange, parse_refs_annotation},
};

/// What cleanup removed.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct CleanupReport {
    /// Managed Secrets deleted.
    pub secrets_deleted: usize,
    /// ServiceAccounts from which regcreds' references were removed.
    pub accounts_updated: usize,
}

/// Deletes every Secret labelled as regcreds', and removes the `imagePullSecrets` entries regcreds added
/// (as recorded in its annotation) from every ServiceAccount. Entries others added stay.
pub async fn cleanup(client: &Client) -> Result<CleanupReport> {
    let mut report = CleanupReport::default();
    let secrets_api: Api<Secret> = Api::all(client.clone());
    let managed = secrets_api
        .list_metadata(&ListParams::default().labels(&managed_selector()))
        .await
        .map_err(api_error("list", "secret", "*", "*"))?;
    for secret in managed {
        let (name, namespace) = (secret.name_any(), secret.namespace().unwrap_or_default());
        secrets::delete(client, &namespace, &name).await?;
        info!(%namespace, secret = %name, "deleted secret {name} in namespace {namespace}");
        report.secrets_deleted += 1;
    }
    let accounts: Api<ServiceAccount> = Api::all(client.clone());
    let all =
        accounts
            .list(&ListParams::default())
            .await
            .map_err(api_error("list", "serviceaccount", "*", "*"))?;
    for account in all {
        let Some(ours) = account.annotations().get(REFS_ANNOTATION) else {
            continue;
        };
        let change = RefChange {
            add: BTreeSet::new(),
            remove: parse_refs_annotation(ours),
        };
        let (name, namespace) = (account.name_any(), account.namespace().unwrap_or_default());
        if service_accounts::update(client, &namespace, &name, &change).await? {
            info!(%namespace, serviceaccount = %name, "removed regcreds' image pull secrets from serviceaccount {name} in namespace {namespace}");
            report.accounts_updated += 1;
        }
    }
    Ok(report)
}
