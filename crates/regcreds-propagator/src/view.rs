//! Where the propagator reads current state from: watch-fed indexes (watch mode) or the API (poll mode).
//!
//! Reads from the indexes cost no request and no scan: a lookup by namespace and name. A Secret missing
//! from the (label-selected) index may still exist without our label; the writer finds out with a
//! create that conflicts (`secrets::ensure`), not with a read before every create.

use std::{collections::BTreeSet, sync::Arc};

use k8s_openapi::api::core::v1::{Secret, ServiceAccount};
use kube::{Api, Client, api::ListParams};

use crate::{
    Result, ServiceAccountMode,
    cached::{AccountState, SecretState},
    error::api_error,
    index::Index,
    labels::managed_selector,
};

/// Current state of Secrets and ServiceAccounts.
#[derive(Clone)]
pub enum View {
    /// Indexes kept up to date by watches (and by regcreds' own writes).
    Cached {
        /// Managed Secrets (label-selected), all namespaces.
        secrets: Index<SecretState>,
        /// ServiceAccounts, all namespaces (only the targeted name when exactly one is targeted).
        accounts: Index<AccountState>,
        /// The only ServiceAccount name `accounts` holds, when its watch is narrowed to one name; `None`
        /// when it holds every account.
        only_account: Option<String>,
    },
    /// Direct API reads.
    Direct,
}

impl View {
    /// Resolves once the indexes hold their first complete list, so that no reconcile mistakes "not
    /// listed yet" for "absent". At once in direct mode.
    pub async fn synced(&self) {
        if let Self::Cached {
            secrets, accounts, ..
        } = self
        {
            secrets.synced().await;
            accounts.synced().await;
        }
    }

    /// The Secret `name` in `namespace`: in watch mode the managed one if the index has it (an
    /// unmanaged one is not looked for); in direct mode whatever exists.
    pub async fn secret(
        &self,
        client: &Client,
        namespace: &str,
        name: &str,
    ) -> Result<Option<Arc<SecretState>>> {
        if let Self::Cached { secrets, .. } = self {
            return Ok(secrets.get(namespace, name));
        }
        let api: Api<Secret> = Api::namespaced(client.clone(), namespace);
        let found = api
            .get_opt(name)
            .await
            .map_err(api_error("get", "secret", name, namespace))?;
        Ok(found.map(|secret| Arc::new(SecretState::from(secret))))
    }

    /// Every managed Secret in `namespace`.
    pub async fn managed_secrets(&self, client: &Client, namespace: &str) -> Result<Vec<Arc<SecretState>>> {
        match self {
            Self::Cached { secrets, .. } => Ok(secrets.in_namespace(namespace)),
            Self::Direct => {
                let api: Api<Secret> = Api::namespaced(client.clone(), namespace);
                match api.list(&ListParams::default().labels(&managed_selector())).await {
                    Ok(list) => Ok(list
                        .items
                        .into_iter()
                        .map(|secret| Arc::new(SecretState::from(secret)))
                        .collect()),
                    // NB: upmc-style RBAC grants get but not list on Secrets. Then regcreds cannot find
                    // Secrets it no longer needs (to remove them), but everything else still works.
                    Err(kube::Error::Api(status)) if status.code == 403 => Ok(Vec::new()),
                    Err(error) => Err(api_error("list", "secret", "*", namespace)(error)),
                }
            }
        }
    }

    /// The ServiceAccounts in `namespace` that `mode` targets and that exist. Every account (`All`)
    /// while the index holds only one name is a direct list: only withdrawal asks for that.
    pub async fn target_accounts(
        &self,
        client: &Client,
        namespace: &str,
        mode: &ServiceAccountMode,
    ) -> Result<Vec<Arc<AccountState>>> {
        match (self, mode) {
            (_, ServiceAccountMode::None) => Ok(Vec::new()),
            (Self::Cached { accounts, .. }, ServiceAccountMode::Named(names)) => Ok(names
                .iter()
                .filter_map(|name| accounts.get(namespace, name))
                .collect()),
            (
                Self::Cached {
                    accounts,
                    only_account: None,
                    ..
                },
                ServiceAccountMode::All,
            ) => Ok(accounts.in_namespace(namespace)),
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
                        found.push(Arc::new(AccountState::from(sa)));
                    }
                }
                Ok(found)
            }
            (Self::Direct | Self::Cached { .. }, ServiceAccountMode::All) => {
                let api: Api<ServiceAccount> = Api::namespaced(client.clone(), namespace);
                let list = api.list(&ListParams::default()).await.map_err(api_error(
                    "list",
                    "serviceaccount",
                    "*",
                    namespace,
                ))?;
                Ok(list
                    .items
                    .into_iter()
                    .map(|sa| Arc::new(AccountState::from(sa)))
                    .collect())
            }
        }
    }

    /// Whether only ServiceAccounts of the one targeted name are watched (accounts of other names are
    /// never in the index).
    pub fn watches_one_account_name(&self) -> bool {
        matches!(
            self,
            Self::Cached {
                only_account: Some(_),
                ..
            }
        )
    }

    /// In cached mode, every ServiceAccount of `namespace` the index holds; empty in direct mode.
    pub fn cached_accounts(&self, namespace: &str) -> Vec<Arc<AccountState>> {
        match self {
            Self::Cached { accounts, .. } => accounts.in_namespace(namespace),
            Self::Direct => Vec::new(),
        }
    }

    /// In cached mode, the names listed in `annotation` on any ServiceAccount of `namespace` the index
    /// holds (what regcreds added earlier); empty in direct mode, where the configured targets are used.
    pub fn accounts_with_annotation(&self, namespace: &str, annotation: &str) -> Vec<BTreeSet<String>> {
        let Self::Cached { accounts, .. } = self else {
            return Vec::new();
        };
        accounts
            .in_namespace(namespace)
            .into_iter()
            .filter_map(|sa| {
                sa.annotation(annotation)
                    .map(crate::service_accounts::parse_refs_annotation)
            })
            .collect()
    }

    /// Records a Secret regcreds just wrote (as the apiserver returned it), ahead of its watch event.
    pub fn remember_secret(&self, namespace: &str, written: Secret) {
        if let Self::Cached { secrets, .. } = self {
            secrets.remember(namespace, SecretState::from(written));
        }
    }

    /// Records a ServiceAccount regcreds just patched, ahead of its watch event — unless the index does
    /// not hold accounts of that name (no watch event would ever update or remove it).
    pub fn remember_account(&self, namespace: &str, written: ServiceAccount) {
        if let Self::Cached {
            accounts,
            only_account,
            ..
        } = self
        {
            let written = AccountState::from(written);
            if only_account.as_ref().is_none_or(|only| *only == written.name) {
                accounts.remember(namespace, written);
            }
        }
    }
}
