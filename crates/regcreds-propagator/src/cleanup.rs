//! `regcreds cleanup`: remove what one regcreds instance created — or, on request, what every instance
//! ever created — from the whole cluster.

use std::collections::BTreeSet;

use k8s_openapi::api::core::v1::{Secret, ServiceAccount};
use kube::{Api, Client, ResourceExt, api::ListParams};
use tracing::info;

use crate::{
    InstanceId, Result,
    error::api_error,
    instance::Claim,
    labels::{REFS_ANNOTATION, REFS_ANNOTATION_PREFIX, managed_selector},
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

/// Whose objects cleanup removes.
#[derive(Debug, Clone)]
pub enum CleanupScope {
    /// One instance: the Secrets labelled with its id, Secrets from before instances existed whose names
    /// it writes (`names`), and the ServiceAccount references it recorded (or adopts by `names`).
    Instance {
        /// The instance.
        id: InstanceId,
        /// The Secret names its configuration writes (may be empty).
        names: BTreeSet<String>,
    },
    /// Everything any regcreds instance ever created.
    Everyone,
}

impl CleanupScope {
    fn owns_secret(&self, secret: &impl ResourceExt) -> bool {
        match self {
            Self::Instance { id, names } => matches!(
                id.claim(secret, |n| names.contains(n)),
                Claim::Ours | Claim::Adopted
            ),
            Self::Everyone => true,
        }
    }

    /// The change removing this scope's references from `account`, if it recorded any.
    fn ref_change(&self, account: &ServiceAccount) -> Option<RefChange> {
        let recorded = |key: &str| {
            account
                .annotations()
                .get(key)
                .map(|v| parse_refs_annotation(v))
                .unwrap_or_default()
        };
        let (mut change, remove): (RefChange, BTreeSet<String>) = match self {
            Self::Instance { id, names } => {
                let legacy = recorded(REFS_ANNOTATION)
                    .into_iter()
                    .filter(|n| names.contains(n));
                let remove = recorded(&id.refs_annotation())
                    .into_iter()
                    .chain(legacy)
                    .collect();
                (RefChange::new(id, names.iter().cloned()), remove)
            }
            Self::Everyone => {
                let keys = account
                    .annotations()
                    .keys()
                    .filter(|k| *k == REFS_ANNOTATION || k.starts_with(REFS_ANNOTATION_PREFIX));
                let remove = keys.flat_map(|k| recorded(k)).collect();
                (RefChange::everyone(), remove)
            }
        };
        change.remove = remove;
        (!change.remove.is_empty()).then_some(change)
    }
}

/// Deletes the managed Secrets of `scope` and removes the `imagePullSecrets` entries it added (as
/// recorded in its annotations) from every ServiceAccount. Entries others added stay.
pub async fn cleanup(client: &Client, scope: &CleanupScope) -> Result<CleanupReport> {
    let mut report = CleanupReport::default();
    let secrets_api: Api<Secret> = Api::all(client.clone());
    let managed = secrets_api
        .list_metadata(&ListParams::default().labels(&managed_selector()))
        .await
        .map_err(api_error("list", "secret", "*", "*"))?;
    for secret in managed.into_iter().filter(|s| scope.owns_secret(s)) {
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
        let Some(change) = scope.ref_change(&account) else {
            continue;
        };
        let (name, namespace) = (account.name_any(), account.namespace().unwrap_or_default());
        if service_accounts::update(client, &namespace, &name, &change).await? {
            info!(%namespace, serviceaccount = %name, "removed regcreds' image pull secrets from serviceaccount {name} in namespace {namespace}");
            report.accounts_updated += 1;
        }
    }
    Ok(report)
}
