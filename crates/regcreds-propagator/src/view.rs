//! Where the propagator reads current state from: reflector caches (watch mode) or the API (poll mode).
//!
//! Reads from the caches cost nothing; a Secret missing from the (label-selected) cache may still exist
//! without our label, so that case falls back to one `get`.

use std::{collections::BTreeSet, sync::Arc};

use k8s_openapi::api::core::v1::{Secret, ServiceAccount};
use kube::{
    Api, Client, ResourceExt,
    api::ListParams,
    runtime::reflector::{ObjectRef, Store},
};

use crate::{Result, ServiceAccountMode, error::api_error, labels::managed_selector};

/// Current state of Secrets and ServiceAccounts.
#[derive(Clone)]
pub enum View {
    /// Reflector caches kept up to date by watches.
    Cached {
        /// Managed Secrets (label-selected), all namespaces.
        secrets: Store<Secret>,
        /// ServiceAccounts, all namespaces.
        accounts: Store<ServiceAccount>,
    },
    /// Direct API reads.
    Direct,
}

impl View {
    /// The Secret `name` in `namespace`, managed or not.
    pub async fn secret(&self, client: &Client, namespace: &str, name: &str) -> Result<Option<Arc<Secret>>> {
        if let Self::Cached { secrets, .. } = self
            && let Some(found) = secrets.get(&ObjectRef::new(name).within(namespace))
        {
            return Ok(Some(found));
        }
        let api: Api<Secret> = Api::namespaced(client.clone(), namespace);
        let found = api
            .get_opt(name)
            .await
            .map_err(api_error("get", "secret", name, namespace))?;
        Ok(found.map(Arc::new))
    }

    /// Every managed Secret in `namespace`.
    pub async fn managed_secrets(&self, client: &Client, namespace: &str) -> Result<Vec<Arc<Secret>>> {
        match self {
            Self::Cached { secrets, .. } => Ok(secrets
                .state()
                .into_iter()
                .filter(|s| s.namespace().as_deref() == Some(namespace))
                .collect()),
            Self::Direct => {
                let api: Api<Secret> = Api::namespaced(client.clone(), namespace);
                match api.list(&ListParams::default().labels(&managed_selector())).await {
                    Ok(list) => Ok(list.items.into_iter().map(Arc::new).collect()),
                    // NB: upmc-style RBAC grants get but not list on Secrets. Then regcreds cannot find
                    // Secrets it no longer needs (to remove them), but everything else still works.
                    Err(kube::Error::Api(status)) if status.code == 403 => Ok(Vec::new()),
                    Err(error) => Err(api_error("list", "secret", "*", namespace)(error)),
                }
            }
        }
    }

    /// The ServiceAccounts in `namespace` that `mode` targets and that exist.
    pub async fn target_accounts(
        &self,
        client: &Client,
        namespace: &str,
        mode: &ServiceAccountMode,
    ) -> Result<Vec<Arc<ServiceAccount>>> {
        match (self, mode) {
            (_, ServiceAccountMode::None) => Ok(Vec::new()),
            (Self::Cached { accounts, .. }, _) => Ok(accounts
                .state()
                .into_iter()
                .filter(|sa| sa.namespace().as_deref() == Some(namespace) && mode.targets(&sa.name_any()))
                .collect()),
            (Self::Direct, ServiceAccountMode::Named(names)) => {
                let api: Api<ServiceAccount> = Api::namespaced(client.clone(), namespace);
                let mut found = Vec::new();
                for name in names {
                    if let Some(sa) = api.get_opt(name).await.map_err(api_error(
                        "get",
                        "serviceaccount",
                        name,
                        namespace,
                    ))? {
                        found.push(Arc::new(sa));
                    }
                }
                Ok(found)
            }
            (Self::Direct, ServiceAccountMode::All) => {
                let api: Api<ServiceAccount> = Api::namespaced(client.clone(), namespace);
                let list = api.list(&ListParams::default()).await.map_err(api_error(
                    "list",
                    "serviceaccount",
                    "*",
                    namespace,
                ))?;
                Ok(list.items.into_iter().map(Arc::new).collect())
            }
        }
    }

    /// In cached mode, the names listed in `annotation` on any ServiceAccount of `namespace`
    /// (what regcreds added earlier); empty in direct mode, where the configured targets are used.
    pub fn accounts_with_annotation(&self, namespace: &str, annotation: &str) -> Vec<BTreeSet<String>> {
        let Self::Cached { accounts, .. } = self else {
            return Vec::new();
        };
        accounts
            .state()
            .into_iter()
            .filter(|sa| sa.namespace().as_deref() == Some(namespace))
            .filter_map(|sa| {
                sa.annotations()
                    .get(annotation)
                    .map(|v| crate::service_accounts::parse_refs_annotation(v))
            })
            .collect()
    }
}
