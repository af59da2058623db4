//! ServiceAccounts this instance no longer targets lose the references it recorded on them.
//!
//! ```text
//!  configuration: service accounts [default, builder] ──▶ [default]   (a helm upgrade or rollback)
//!  builder still lists regcreds' Secrets and records them in image-pull-secrets.regcreds.dev/<instance>
//!     ├─ accounts in the index (every account is watched): on each namespace's reconcile (`reconcile.rs`)
//!     └─ only the one target is watched (the default): one metadata list of every account at start
//! ```
//!
//! Only what this instance recorded is removed; entries anyone else added stay where they are.

use std::collections::BTreeSet;

use k8s_openapi::api::core::v1::ServiceAccount;
use kube::{Api, Client, ResourceExt, api::ListParams};
use tracing::info;

use crate::{
    Result, Settings,
    error::api_error,
    service_accounts::{self, RefChange, parse_refs_annotation},
};

/// ServiceAccounts per page of the start-up list (as kube's watcher pages its lists).
const PAGE: u32 = 500;

/// The change removing every name `settings`' instance recorded on account `name` (`recorded`: the value
/// of its own annotation there), if that account is not a target and the record holds any.
pub(crate) fn release_change(settings: &Settings, name: &str, recorded: Option<&str>) -> Option<RefChange> {
    if settings.service_accounts.targets(name) {
        return None;
    }
    let names: BTreeSet<String> = recorded.map(parse_refs_annotation).unwrap_or_default();
    if names.is_empty() {
        return None;
    }
    let mut change = RefChange::new(&settings.instance_id, std::iter::empty());
    change.remove = names;
    Some(change)
}

/// Lists every ServiceAccount's metadata once and releases those this instance recorded references on
/// but no longer targets. For the mode in which only the targeted name is watched.
pub(crate) async fn sweep(client: &Client, settings: &Settings) -> Result<usize> {
    let own = settings.instance_id.refs_annotation();
    let api = Api::<ServiceAccount>::all(client.clone());
    let mut accounts = Vec::new();
    let mut page = ListParams::default().limit(PAGE);
    loop {
        let list = api
            .list_metadata(&page)
            .await
            .map_err(api_error("list", "serviceaccount", "*", "*"))?;
        let next = list.metadata.continue_.clone().filter(|token| !token.is_empty());
        accounts.extend(
            list.items
                .into_iter()
                .filter(|a| a.annotations().contains_key(&own)),
        );
        match next {
            Some(token) => page = ListParams::default().limit(PAGE).continue_token(&token),
            None => break,
        }
    }
    let mut released = 0;
    for account in accounts {
        let (namespace, name) = (account.namespace().unwrap_or_default(), account.name_any());
        let recorded = account.annotations().get(&own).map(String::as_str);
        let Some(change) = release_change(settings, &name, recorded) else {
            continue;
        };
        if service_accounts::update(client, &namespace, &name, &change).await? {
            released += 1;
            info!(%namespace, serviceaccount = %name, "removed regcreds' image pull secrets from serviceaccount {name} in namespace {namespace} (no longer a target)");
        }
    }
    Ok(released)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{NamespaceScope, ServiceAccountMode};

    fn settings(targets: &[&str]) -> Settings {
        let mut settings =
            Settings::new(NamespaceScope::new(&Vec::<String>::new(), None, None).expect("scope"));
        settings.service_accounts =
            ServiceAccountMode::Named(targets.iter().map(|s| s.to_string()).collect());
        settings
    }

    #[test]
    fn only_an_untargeted_account_with_recorded_names_is_released() {
        let only_default = settings(&["default"]);
        assert!(
            release_change(&only_default, "default", Some("a")).is_none(),
            "a target"
        );
        assert!(
            release_change(&only_default, "builder", None).is_none(),
            "nothing recorded"
        );
        let change = release_change(&only_default, "builder", Some("a,b")).expect("released");
        assert_eq!(change.remove, BTreeSet::from(["a".to_string(), "b".to_string()]));
        assert!(change.add.is_empty());
    }
}
