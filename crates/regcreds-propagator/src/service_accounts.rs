//! Adding and removing `imagePullSecrets` entries on ServiceAccounts.
//!
//! The list is `atomic` under server-side apply, so applying it would take ownership of the whole list
//! (erasing others' entries when forced). Instead: modify the cached account, write with its
//! `resourceVersion` as a precondition, and only after a conflict read it again and retry. Entries
//! regcreds did not add are never removed or reordered; the ones it added are listed in an annotation per
//! instance (`image-pull-secrets.regcreds.dev/<instance>`) so withdrawal and cleanup remove exactly those,
//! and two instances never remove each other's entries. Names in the annotation of earlier versions
//! (`regcreds.dev/image-pull-secrets`, shared) move to the annotation of the instance that writes them;
//! the others stay where they are.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::core::v1::ServiceAccount;
use kube::{
    Api, Client,
    api::{Patch, PatchParams},
};
use serde_json::{Value, json};

use crate::{
    Error, InstanceId, Result,
    cached::AccountState,
    error::api_error,
    labels::{REFS_ANNOTATION, REFS_ANNOTATION_PREFIX},
};

const MAX_ATTEMPTS: u32 = 8;

/// The change wanted on one ServiceAccount: names that must be referenced, names regcreds should stop
/// referencing (only if it added them).
#[derive(Debug, Clone)]
pub struct RefChange {
    /// Secret names that must be in `imagePullSecrets`.
    pub add: BTreeSet<String>,
    /// Secret names to drop if (and only if) this owner added them.
    pub remove: BTreeSet<String>,
    /// Names in `add` whose existing entries become this owner's: the references a predecessor added to
    /// a Secret regcreds took over, so that cleanup removes them with the Secret.
    pub claim: BTreeSet<String>,
    /// Whose additions these are.
    pub owner: RefOwner,
}

/// Whose recorded references a [`RefChange`] may add to and remove.
#[derive(Debug, Clone)]
pub enum RefOwner {
    /// One instance: its own annotation, plus the names of the shared annotation of earlier versions that
    /// it writes (`adopt`), which move to its own annotation.
    Instance {
        /// `image-pull-secrets.regcreds.dev/<instance>`.
        annotation: String,
        /// The Secret names this instance writes.
        adopt: BTreeSet<String>,
    },
    /// Every instance, and the shared annotation (`regcreds cleanup --all-instances`).
    Everyone,
}

impl RefChange {
    /// An empty change on behalf of `instance`, which writes the Secret names `adopt`.
    pub fn new(instance: &InstanceId, adopt: impl IntoIterator<Item = String>) -> Self {
        Self {
            add: BTreeSet::new(),
            remove: BTreeSet::new(),
            claim: BTreeSet::new(),
            owner: RefOwner::Instance {
                annotation: instance.refs_annotation(),
                adopt: adopt.into_iter().collect(),
            },
        }
    }

    /// An empty change on behalf of every instance.
    pub fn everyone() -> Self {
        Self {
            add: BTreeSet::new(),
            remove: BTreeSet::new(),
            claim: BTreeSet::new(),
            owner: RefOwner::Everyone,
        }
    }
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

/// Whether `key` is an annotation in which some regcreds records the references it added.
fn is_refs_annotation(key: &str) -> bool {
    key == REFS_ANNOTATION || key.starts_with(REFS_ANNOTATION_PREFIX)
}

/// The names recorded in each annotation `owner` may rewrite (absent annotations as empty sets).
fn recorded(sa: &AccountState, owner: &RefOwner) -> BTreeMap<String, BTreeSet<String>> {
    let annotation = |key: &str| sa.annotation(key).map(parse_refs_annotation).unwrap_or_default();
    match owner {
        RefOwner::Instance { annotation: own, .. } => BTreeMap::from([
            (own.clone(), annotation(own)),
            (REFS_ANNOTATION.to_string(), annotation(REFS_ANNOTATION)),
        ]),
        RefOwner::Everyone => sa
            .refs
            .annotations
            .keys()
            .filter(|k| is_refs_annotation(k))
            .map(|k| (k.clone(), annotation(k)))
            .collect(),
    }
}

/// The names `owner` added: only these may be removed.
fn owned(recorded: &BTreeMap<String, BTreeSet<String>>, owner: &RefOwner) -> BTreeSet<String> {
    match owner {
        RefOwner::Instance { annotation, adopt } => {
            let legacy = &recorded[REFS_ANNOTATION];
            let adopted = legacy.iter().filter(|n| adopt.contains(*n)).cloned();
            recorded[annotation].iter().cloned().chain(adopted).collect()
        }
        RefOwner::Everyone => recorded.values().flatten().cloned().collect(),
    }
}

/// What each rewritable annotation should hold once `ours` is what `owner` added.
fn rewritten(
    recorded: &BTreeMap<String, BTreeSet<String>>,
    owner: &RefOwner,
    ours: &BTreeSet<String>,
    dropped: &BTreeSet<&String>,
) -> BTreeMap<String, BTreeSet<String>> {
    match owner {
        RefOwner::Instance { annotation, adopt } => {
            let legacy = recorded[REFS_ANNOTATION]
                .iter()
                .filter(|n| !adopt.contains(*n))
                .cloned()
                .collect();
            BTreeMap::from([
                (annotation.clone(), ours.clone()),
                (REFS_ANNOTATION.to_string(), legacy),
            ])
        }
        RefOwner::Everyone => recorded
            .iter()
            .map(|(key, names)| {
                let kept = names.iter().filter(|n| !dropped.contains(n)).cloned().collect();
                (key.clone(), kept)
            })
            .collect(),
    }
}

/// The references and annotations after a change.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Updated {
    /// The whole new `imagePullSecrets` list.
    refs: Vec<String>,
    /// Only the annotations whose value changes; `None` removes one. Another instance's annotation is
    /// never among them.
    annotations: BTreeMap<String, Option<String>>,
}

/// The account's new references and annotations after applying `change`, or `None` if nothing needs to
/// change.
fn apply_change(sa: &AccountState, change: &RefChange) -> Option<Updated> {
    let current = &sa.refs.image_pull_secrets;
    let before = recorded(sa, &change.owner);
    let mut ours = owned(&before, &change.owner);
    let drop: BTreeSet<&String> = change.remove.iter().filter(|n| ours.contains(*n)).collect();
    let mut refs: Vec<String> = current.iter().filter(|n| !drop.contains(n)).cloned().collect();
    for name in &change.add {
        if !refs.contains(name) {
            refs.push(name.clone());
            ours.insert(name.clone());
        } else if change.claim.contains(name) {
            ours.insert(name.clone());
        }
    }
    ours.retain(|n| !drop.contains(n) && refs.contains(n));
    let after = rewritten(&before, &change.owner, &ours, &drop);
    if &refs == current && after == before {
        return None;
    }
    let annotations = after
        .into_iter()
        .map(|(key, names)| {
            let value = (!names.is_empty()).then(|| names.into_iter().collect::<Vec<_>>().join(","));
            (key, value)
        })
        .filter(|(key, value)| sa.annotation(key) != value.as_deref())
        .collect();
    Some(Updated { refs, annotations })
}

/// Whether `cached` (possibly stale) already satisfies `change`: if so no request is needed at all.
pub fn is_satisfied(cached: &AccountState, change: &RefChange) -> bool {
    apply_change(cached, change).is_none()
}

/// A merge patch carrying the whole new list, the annotations this change rewrote, and the
/// `resourceVersion` it was computed from.
///
/// NB: a `resourceVersion` in a patch is a precondition: if someone wrote in between (or the cache was
/// stale), the apiserver answers 409 and we retry on a fresh read, so their entries survive. A patch (not
/// an update) needs only the `patch` verb, which is all imagepullsecret-patcher's ClusterRole grants on
/// ServiceAccounts.
fn guarded_patch(current: &AccountState, updated: &Updated) -> Value {
    json!({
        "metadata": {
            "resourceVersion": current.resource_version,
            "annotations": updated.annotations,
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

    const OURS: &str = "image-pull-secrets.regcreds.dev/hub";

    fn sa(refs: &[&str], annotations: &[(&str, &str)]) -> AccountState {
        AccountState::from(ServiceAccount {
            metadata: ObjectMeta {
                name: Some("default".into()),
                annotations: Some(
                    annotations
                        .iter()
                        .map(|(k, v)| (k.to_string(), v.to_string()))
                        .collect::<BTreeMap<_, _>>(),
                ),
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

    /// The account as it looks after `updated` was written onto `current` (a merge patch).
    fn written(current: &AccountState, updated: &Updated) -> AccountState {
        let mut annotations = current.refs.annotations.clone();
        for (key, value) in &updated.annotations {
            match value {
                Some(value) => annotations.insert(key.clone(), value.clone()),
                None => annotations.remove(key),
            };
        }
        let refs: Vec<&str> = updated.refs.iter().map(String::as_str).collect();
        let annotations: Vec<(&str, &str)> = annotations
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        sa(&refs, &annotations)
    }

    /// A change by instance `hub`, which writes the Secrets `writes`.
    fn change(add: &[&str], remove: &[&str], writes: &[&str]) -> RefChange {
        let mut change = RefChange::new(
            &InstanceId::new("hub").expect("id"),
            writes.iter().map(|s| s.to_string()),
        );
        change.add = add.iter().map(|s| s.to_string()).collect();
        change.remove = remove.iter().map(|s| s.to_string()).collect();
        change
    }

    #[test]
    fn appends_after_existing_entries_without_reordering_or_duplicating() {
        let account = sa(&["theirs-b", "theirs-a"], &[]);
        let updated = apply_change(&account, &change(&["ours"], &[], &["ours"])).expect("change");
        assert_eq!(updated.refs, ["theirs-b", "theirs-a", "ours"]);
        assert_eq!(updated.annotations[OURS].as_deref(), Some("ours"));
        assert!(
            apply_change(&written(&account, &updated), &change(&["ours"], &[], &["ours"])).is_none(),
            "second pass is a no-op"
        );
    }

    #[test]
    fn removes_only_entries_this_instance_added() {
        let account = sa(&["theirs", "ours"], &[(OURS, "ours")]);
        let updated = apply_change(&account, &change(&[], &["ours", "theirs"], &[])).expect("change");
        assert_eq!(updated.refs, ["theirs"]);
        assert_eq!(updated.annotations, BTreeMap::from([(OURS.to_string(), None)]));
        assert!(written(&account, &updated).annotation(OURS).is_none());
    }

    #[test]
    fn an_entry_the_user_added_first_is_not_claimed() {
        assert!(apply_change(&sa(&["shared"], &[]), &change(&["shared"], &[], &["shared"])).is_none());
    }

    #[test]
    fn the_entry_of_a_taken_over_secret_is_claimed_once_without_a_second_entry() {
        // upmc appended `awsecr-cred` to the `default` ServiceAccount; regcreds took the Secret over.
        let account = sa(&["mine", "awsecr-cred"], &[]);
        let mut taking = change(&["awsecr-cred"], &[], &["awsecr-cred"]);
        taking.claim.insert("awsecr-cred".into());
        let updated = apply_change(&account, &taking).expect("claimed");
        assert_eq!(updated.refs, ["mine", "awsecr-cred"], "referenced once");
        assert_eq!(updated.annotations[OURS].as_deref(), Some("awsecr-cred"));
        // Cleanup (by this instance) now removes it, and never the user's own entry.
        let after = written(&account, &updated);
        let withdrawn =
            apply_change(&after, &change(&[], &["awsecr-cred", "mine"], &["awsecr-cred"])).expect("removed");
        assert_eq!(withdrawn.refs, ["mine"]);
    }

    #[test]
    fn another_instances_entries_and_annotation_are_never_touched() {
        let other = "image-pull-secrets.regcreds.dev/ecr";
        let account = sa(&["ecr-secret"], &[(other, "ecr-secret")]);
        let updated = apply_change(
            &account,
            &change(&["hub-secret"], &["ecr-secret"], &["hub-secret"]),
        )
        .expect("change");
        assert_eq!(updated.refs, ["ecr-secret", "hub-secret"]);
        let after = written(&account, &updated);
        assert_eq!(after.annotation(other), Some("ecr-secret"));
        assert_eq!(after.annotation(OURS), Some("hub-secret"));
        assert!(
            !guarded_patch(&account, &updated)["metadata"]["annotations"]
                .as_object()
                .expect("annotations")
                .contains_key(other)
        );
    }

    #[test]
    fn names_in_the_shared_annotation_of_earlier_versions_move_to_the_instance_that_writes_them() {
        let account = sa(
            &["hub-secret", "ecr-secret"],
            &[(REFS_ANNOTATION, "ecr-secret,hub-secret")],
        );
        let updated = apply_change(&account, &change(&["hub-secret"], &[], &["hub-secret"])).expect("moved");
        assert_eq!(updated.refs, ["hub-secret", "ecr-secret"]);
        let after = written(&account, &updated);
        assert_eq!(after.annotation(OURS), Some("hub-secret"));
        assert_eq!(after.annotation(REFS_ANNOTATION), Some("ecr-secret"));
        assert!(apply_change(&after, &change(&["hub-secret"], &[], &["hub-secret"])).is_none());
        // Withdrawing removes the adopted name, never the other one.
        let withdrawn = apply_change(
            &account,
            &change(&[], &["hub-secret", "ecr-secret"], &["hub-secret"]),
        )
        .expect("withdrawn");
        assert_eq!(withdrawn.refs, ["ecr-secret"]);
        assert_eq!(
            written(&account, &withdrawn).annotation(REFS_ANNOTATION),
            Some("ecr-secret")
        );
    }

    #[test]
    fn everyone_removes_what_any_instance_recorded() {
        let account = sa(
            &["a", "b", "c", "theirs"],
            &[
                (REFS_ANNOTATION, "a"),
                (OURS, "b"),
                ("image-pull-secrets.regcreds.dev/x", "c"),
            ],
        );
        let mut all = RefChange::everyone();
        all.remove = ["a", "b", "c", "theirs"].iter().map(|s| s.to_string()).collect();
        let updated = apply_change(&account, &all).expect("change");
        assert_eq!(updated.refs, ["theirs"]);
        let after = written(&account, &updated);
        assert!(after.refs.annotations.is_empty(), "{:?}", after.refs.annotations);
    }

    #[test]
    fn the_patch_is_guarded_by_the_resource_version_it_was_computed_from() {
        let mut current = sa(&["theirs"], &[]);
        current.resource_version = Some("41".into());
        let updated = apply_change(&current, &change(&["ours"], &[], &["ours"])).expect("change");
        assert_eq!(
            guarded_patch(&current, &updated),
            json!({
                "metadata": {"resourceVersion": "41", "annotations": {OURS: "ours"}},
                "imagePullSecrets": [{"name": "theirs"}, {"name": "ours"}],
            })
        );
    }
}
