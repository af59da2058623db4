//! Adding and removing `imagePullSecrets` entries on ServiceAccounts.
//!
//! The list is `atomic` under server-side apply, so applying it would take ownership of the whole list
//! (erasing others' entries when forced). Instead: modify the cached account, write with its
//! `resourceVersion` as a precondition, and only after a conflict read it again and retry. Entries regcreds did not add are never removed or reordered; the ones it added
//! are listed in an annotation so cleanup can remove exactly those.

use std::collections::BTreeSet;

use k8s_openapi::api::core::v1::ServiceAccount;
use kube::{
    Api, Client,
    api::{Patch, PatchParams},
};
use serde_json::{Value, json};

use crate::{Error, Result, cached::AccountState, error::api_error, labels::REFS_ANNOTATION};

const MAX_ATTEMPTS: u32 = 8;

/// The change wanted on one ServiceAccount: names that must be referenced, names regcreds should stop
/// referencing (only if it added them).
#[derive(Debug, Clone, Default)]
pub struct RefChange {
    /// Secret names that must be in `imagePullSecrets`.
    pub add: BTreeSet<String>,
    /// Secret names to drop if (and only if) regcreds added them.
    pub remove: BTreeSet<String>,
}

/// Parses the [`REFS_ANNOTATION`] value: comma-separated Secret names.
pub fn parse_refs_annotation(value: &str) -> BTreeSet<String> {
    value
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(String::from)
        .collect()
}

/// The entries regcreds recorded as added by itself.
fn added_by_us(sa: &AccountState) -> BTreeSet<String> {
    sa.annotation(REFS_ANNOTATION)
        .map(parse_refs_annotation)
        .unwrap_or_default()
}

/// The references and our annotation after a change.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Updated {
    refs: Vec<String>,
    /// `None`: remove the annotation.
    annotation: Option<String>,
}

/// The account's new references after applying `change`, or `None` if nothing needs to change.
fn apply_change(sa: &AccountState, change: &RefChange) -> Option<Updated> {
    let current = &sa.refs.image_pull_secrets;
    let mut ours = added_by_us(sa);
    let drop: BTreeSet<&String> = change.remove.iter().filter(|n| ours.contains(*n)).collect();
    let mut refs: Vec<String> = current.iter().filter(|n| !drop.contains(n)).cloned().collect();
    for name in &change.add {
        if !refs.contains(name) {
            refs.push(name.clone());
            ours.insert(name.clone());
        }
    }
    ours.retain(|n| !drop.contains(n) && refs.contains(n));
    let annotation = ours.iter().cloned().collect::<Vec<_>>().join(",");
    let current_annotation = sa.annotation(REFS_ANNOTATION).unwrap_or_default();
    if &refs == current && annotation == current_annotation {
        return None;
    }
    Some(Updated {
        refs,
        annotation: (!annotation.is_empty()).then_some(annotation),
    })
}

/// Whether `cached` (possibly stale) already satisfies `change`: if so no request is needed at all.
pub fn is_satisfied(cached: &AccountState, change: &RefChange) -> bool {
    apply_change(cached, change).is_none()
}

/// A merge patch carrying the whole new list, our annotation, and the `resourceVersion` it was computed
/// from.
///
/// NB: a `resourceVersion` in a patch is a precondition: if someone wrote in between (or the cache was
/// stale), the apiserver answers 409 and we retry on a fresh read, so their entries survive. A patch (not
/// an update) needs only the `patch` verb, which is all imagepullsecret-patcher's ClusterRole grants on
/// ServiceAccounts.
fn guarded_patch(current: &AccountState, updated: &Updated) -> Value {
    json!({
        "metadata": {
            "resourceVersion": current.resource_version,
            "annotations": { REFS_ANNOTATION: updated.annotation },
        },
        "imagePullSecrets": updated.refs.iter().map(|name| json!({"name": name})).collect::<Vec<_>>(),
    })
}

/// Applies `change` to ServiceAccount `name` by read-modify-write with conflict retry.
/// Returns whether a write happened.
pub async fn update(client: &Client, namespace: &str, name: &str, change: &RefChange) -> Result<bool> {
    Ok(commit(client, namespace, name, change, None).await?.is_some())
}

/// Applies `change` starting from `known` (the cached account; no read), re-reading only after a
/// conflict. Returns the account as written, or `None` if no write was needed (or it is gone).
pub async fn update_known(
    client: &Client,
    namespace: &str,
    known: &AccountState,
    change: &RefChange,
) -> Result<Option<ServiceAccount>> {
    commit(client, namespace, &known.name, change, Some(known.clone())).await
}

/// The guarded-patch loop: compute from `known` (or a fresh read), patch, and on 409 read and retry.
async fn commit(
    client: &Client,
    namespace: &str,
    name: &str,
    change: &RefChange,
    mut known: Option<AccountState>,
) -> Result<Option<ServiceAccount>> {
    let api: Api<ServiceAccount> = Api::namespaced(client.clone(), namespace);
    for _ in 0..MAX_ATTEMPTS {
        let current = match known.take() {
            Some(current) => current,
            None => {
                match api
                    .get_opt(name)
                    .await
                    .map_err(api_error("get", "serviceaccount", name, namespace))?
                {
                    Some(fresh) => AccountState::from(fresh),
                    None => return Ok(None),
                }
            }
        };
        let Some(updated) = apply_change(&current, change) else {
            return Ok(None);
        };
        match api
            .patch(
                name,
                &PatchParams::default(),
                &Patch::Merge(guarded_patch(&current, &updated)),
            )
            .await
        {
            Ok(written) => return Ok(Some(written)),
            Err(kube::Error::Api(status)) if status.code == 409 => continue,
            Err(kube::Error::Api(status)) if status.code == 404 => return Ok(None),
            Err(source) => return Err(api_error("patch", "serviceaccount", name, namespace)(source)),
        }
    }
    Err(Error::Conflict {
        kind: "serviceaccount",
        name: name.to_string(),
        namespace: namespace.to_string(),
        attempts: MAX_ATTEMPTS,
    })
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use k8s_openapi::api::core::v1::LocalObjectReference;
    use kube::api::ObjectMeta;

    use super::*;

    fn sa(refs: &[&str], ours: Option<&str>) -> AccountState {
        AccountState::from(ServiceAccount {
            metadata: ObjectMeta {
                name: Some("default".into()),
                annotations: ours.map(|o| BTreeMap::from([(REFS_ANNOTATION.to_string(), o.to_string())])),
                ..Default::default()
            },
            image_pull_secrets: Some(
                refs.iter()
                    .map(|n| LocalObjectReference { name: n.to_string() })
                    .collect(),
            ),
            ..Default::default()
        })
    }

    /// The account as it looks after `updated` was written.
    fn written(updated: &Updated) -> AccountState {
        let refs: Vec<&str> = updated.refs.iter().map(String::as_str).collect();
        sa(&refs, updated.annotation.as_deref())
    }

    fn change(add: &[&str], remove: &[&str]) -> RefChange {
        RefChange {
            add: add.iter().map(|s| s.to_string()).collect(),
            remove: remove.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn appends_after_existing_entries_without_reordering_or_duplicating() {
        let updated =
            apply_change(&sa(&["theirs-b", "theirs-a"], None), &change(&["ours"], &[])).expect("change");
        assert_eq!(updated.refs, ["theirs-b", "theirs-a", "ours"]);
        assert_eq!(updated.annotation.as_deref(), Some("ours"));
        assert!(
            apply_change(&written(&updated), &change(&["ours"], &[])).is_none(),
            "second pass is a no-op"
        );
    }

    #[test]
    fn removes_only_entries_regcreds_added() {
        let updated = apply_change(
            &sa(&["theirs", "ours"], Some("ours")),
            &change(&[], &["ours", "theirs"]),
        );
        let updated = updated.expect("change");
        assert_eq!(updated.refs, ["theirs"]);
        assert_eq!(updated.annotation, None);
    }

    #[test]
    fn an_entry_the_user_added_first_is_not_claimed() {
        assert!(apply_change(&sa(&["shared"], None), &change(&["shared"], &[])).is_none());
    }

    #[test]
    fn the_patch_is_guarded_by_the_resource_version_it_was_computed_from() {
        let mut current = sa(&["theirs"], None);
        current.resource_version = Some("41".into());
        let updated = apply_change(&current, &change(&["ours"], &[])).expect("change");
        assert_eq!(
            guarded_patch(&current, &updated),
            json!({
                "metadata": {"resourceVersion": "41", "annotations": {REFS_ANNOTATION: "ours"}},
                "imagePullSecrets": [{"name": "theirs"}, {"name": "ours"}],
            })
        );
    }
}
