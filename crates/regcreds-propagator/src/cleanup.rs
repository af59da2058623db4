//! `regcreds cleanup`: remove what one regcreds instance created — or, on request, what every instance
//! ever created — from the whole cluster.

use std::collections::BTreeSet;

use k8s_openapi::api::core::v1::{Secret, ServiceAccount};
use kube::{
    Api, Client, ResourceExt,
    api::{ListParams, PartialObjectMeta},
};
use tracing::info;

use crate::{
    InstanceId, Result,
    error::api_error,
    instance::Claim,
    labels::{INSTANCE_LABEL, REFS_ANNOTATION, REFS_ANNOTATION_PREFIX, managed_selector},
    secrets,
    service_accounts::{self, RefChange, parse_refs_annotation},
};

/// What cleanup removed — or, in a dry run ([`CleanupScope::plan`]), would remove.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct CleanupReport {
    /// Managed Secrets deleted (0 in a dry run).
    pub secrets_deleted: usize,
    /// ServiceAccounts from which regcreds' references were removed (0 in a dry run).
    pub accounts_updated: usize,
    /// Each Secret removed, or that a dry run would remove: `(namespace, name)`.
    pub secrets: Vec<(String, String)>,
    /// Each ServiceAccount cleaned, or that a dry run would clean: `(namespace, name, entries)`, the
    /// `imagePullSecrets` entries regcreds added that go (empty when only its record annotation goes).
    pub accounts: Vec<(String, String, Vec<String>)>,
    /// The `regcreds.dev/instance` labels of those Secrets (`--all-instances` names the instances whose
    /// objects it removes).
    pub instances: BTreeSet<String>,
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
    /// A dry run: what [`cleanup`] would remove now, without changing anything (needs only list rights).
    pub async fn plan(&self, client: &Client) -> Result<CleanupReport> {
        let survey = survey(client, self).await?;
        let mut report = CleanupReport::default();
        for secret in &survey.secrets {
            report.note_secret(secret);
        }
        for (account, change) in &survey.accounts {
            report.note_account(account, change);
        }
        Ok(report)
    }

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

impl CleanupReport {
    fn note_secret(&mut self, secret: &PartialObjectMeta<Secret>) {
        let namespace = secret.namespace().unwrap_or_default();
        self.secrets.push((namespace, secret.name_any()));
        if let Some(instance) = secret.labels().get(INSTANCE_LABEL) {
            self.instances.insert(instance.clone());
        }
    }

    fn note_account(&mut self, account: &ServiceAccount, change: &RefChange) {
        let entries = account
            .image_pull_secrets
            .iter()
            .flatten()
            .map(|r| r.name.clone())
            .filter(|n| change.remove.contains(n))
            .collect();
        let (namespace, name) = (account.namespace().unwrap_or_default(), account.name_any());
        self.accounts.push((namespace, name, entries));
    }
}

/// What a cleanup of one scope finds: its Secrets, and the ServiceAccounts with the change removing its
/// references.
struct Survey {
    secrets: Vec<PartialObjectMeta<Secret>>,
    accounts: Vec<(ServiceAccount, RefChange)>,
}

async fn survey(client: &Client, scope: &CleanupScope) -> Result<Survey> {
    let secrets_api: Api<Secret> = Api::all(client.clone());
    let managed = secrets_api
        .list_metadata(&ListParams::default().labels(&managed_selector()))
        .await
        .map_err(api_error("list", "secret", "*", "*"))?;
    let secrets = managed.into_iter().filter(|s| scope.owns_secret(s)).collect();
    let accounts: Api<ServiceAccount> = Api::all(client.clone());
    let all =
        accounts
            .list(&ListParams::default())
            .await
            .map_err(api_error("list", "serviceaccount", "*", "*"))?;
    let accounts = all
        .into_iter()
        .filter_map(|account| scope.ref_change(&account).map(|change| (account, change)))
        .collect();
    Ok(Survey { secrets, accounts })
}

/// Deletes the managed Secrets of `scope` and removes the `imagePullSecrets` entries it added (as
/// recorded in its annotations) from every ServiceAccount. Entries others added stay.
pub async fn cleanup(client: &Client, scope: &CleanupScope) -> Result<CleanupReport> {
    let survey = survey(client, scope).await?;
    let mut report = CleanupReport::default();
    for secret in &survey.secrets {
        let (name, namespace) = (secret.name_any(), secret.namespace().unwrap_or_default());
        secrets::delete(client, &namespace, &name).await?;
        info!(%namespace, secret = %name, "deleted secret {name} in namespace {namespace}");
        report.secrets_deleted += 1;
        report.note_secret(secret);
    }
    for (account, change) in &survey.accounts {
        let (name, namespace) = (account.name_any(), account.namespace().unwrap_or_default());
        if service_accounts::update(client, &namespace, &name, change).await? {
            info!(%namespace, serviceaccount = %name, "removed regcreds' image pull secrets from serviceaccount {name} in namespace {namespace}");
            report.accounts_updated += 1;
            report.note_account(account, change);
        }
    }
    Ok(report)
}
