//! Adding and removing `imagePullSecrets` entries on ServiceAccounts.
//!
//! The list is `atomic` under server-side apply, so applying it would take ownership of the whole list
//! (erasing others' entries when forced). Instead: read, modify, write with the read `resourceVersion`,
//! and retry on conflict. Entries regcreds did not add are never removed or reordered; the ones it added
//! are listed in an annotation so cleanup can remove exactly those.

use std::collections::BTreeSet;

use k8s_openapi::api::core::v1::{LocalObjectReference, ServiceAccount};
use kube::{
    Api, Client, ResourceExt,
    api::{Patch, PatchParams},
};
use serde_json::{Value, json};

use crate::{Error, Result, error::api_error, labels::REFS_ANNOTATION};

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
fn added_by_us(sa: &ServiceAccount) -> BTreeSet<String> {
    sa.annotations()
        .get(REFS_ANNOTATION)
        .map(|v| parse_refs_annotation(v))
        .unwrap_or_default()
}

fn referenced(sa: &ServiceAccount) -> Vec<String> {
    sa.image_pull_secrets
        .iter()
        .flatten()
        .map(|r| r.name.clone())
        .collect()
}

/// The ServiceAccount after applying `change`, or `None` if nothing needs to change.
fn apply_change(sa: &ServiceAccount, change: &RefChange) -> Option<ServiceAccount> {
    let current = referenced(sa);
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
    let current_annotation = sa.annotations().get(REFS_ANNOTATION).cloned().unwrap_or_default();
    if refs == current && annotation == current_annotation {
        return None;
    }
    let mut updated = sa.clone();
    updated.image_pull_secrets = Some(
        refs.into_iter()
            .map(|name| LocalObjectReference { name })
            .collect(),
    );
    let annotations = updated.annotations_mut();
    if annotation.is_empty() {
        annotations.remove(REFS_ANNOTATION);
    } else {
        annotations.insert(REFS_ANNOTATION.to_string(), annotation);
    }
    Some(updated)
}

/// Whether `cached` (possibly stale) already satisfies `change`: if so no request is needed at all.
pub fn is_satisfied(cached: &ServiceAccount, change: &RefChange) -> bool {
    apply_change(cached, change).is_none()
}

/// A merge patch carrying the whole new list, our annotation, and the `resourceVersion` we read.
///
/// NB: a `resourceVersion` in a patch is a precondition: if someone wrote in between, the apiserver answers
/// 409 and we retry on a fresh read, so their entries survive. A patch (not an update) needs only the
/// `patch` verb, which is all imagepullsecret-patcher's ClusterRole grants on ServiceAccounts.
fn guarded_patch(current: &ServiceAccount, updated: &ServiceAccount) -> Value {
    let ours = updated
        .annotations()
        .get(REFS_ANNOTATION)
        .map_or(Value::Null, |v| Value::String(v.clone()));
    json!({
        "metadata": {
            "resourceVersion": current.resource_version(),
            "annotations": { REFS_ANNOTATION: ours },
        },
        "imagePullSecrets": updated.image_pull_secrets.iter().flatten().map(|r| json!({"name": r.name})).collect::<Vec<_>>(),
    })
}

/// Applies `change` to ServiceAccount `name` by read-modify-write with conflict retry.
/// Returns whether a write happened.
pub async fn update(client: &Client, namespace: &str, name: &str, change: &RefChange) -> Result<bool> {
    let api: Api<ServiceAccount> = Api::namespaced(client.clone(), namespace);
    for _ in 0..MAX_ATTEMPTS {
        let Some(current) =
            api.get_opt(name)
                .await
                .map_err(api_error("get", "serviceaccount", name, namespace))?
        else {
            return Ok(false);
        };
        let Some(updated) = apply_change(&current, change) else {
            return Ok(false);
        };
        match api
            .patch(
                name,
                &PatchParams::default(),
                &Patch::Merge(guarded_patch(&current, &updated)),
            )
            .await
        {
            Ok(_) => return Ok(true),
            Err(kube::Error::Api(status)) if status.code == 409 => continue,
            Err(kube::Error::Api(status)) if status.code == 404 => return Ok(false),
            Err(source) => return Err(api_error("patch", "serviceaccount", name, namespace)(source)),
        }
    }
    Err(Error::Conflict {
        name: name.to_string(),
        namespace: namespace.to_string(),
        attempts: MAX_ATTEMPTS,
    })
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use kube::api::ObjectMeta;

    use super::*;

    fn sa(refs: &[&str], ours: Option<&str>) -> ServiceAccount {
        ServiceAccount {
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
        }
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
        assert_eq!(referenced(&updated), ["theirs-b", "theirs-a", "ours"]);
        assert_eq!(updated.annotations()[REFS_ANNOTATION], "ours");
        assert!(
            apply_change(&updated, &change(&["ours"], &[])).is_none(),
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
        assert_eq!(referenced(&updated), ["theirs"]);
        assert!(!updated.annotations().contains_key(REFS_ANNOTATION));
    }

    #[test]
    fn an_entry_the_user_added_first_is_not_claimed() {
        assert!(apply_change(&sa(&["shared"], None), &change(&["shared"], &[])).is_none());
    }
}
