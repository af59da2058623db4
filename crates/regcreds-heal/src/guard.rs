//! The replacement guard: healing must never turn into a delete loop.
//!
//! Deleting a pod helps only if its controller's replacement gets the reference, which the
//! ServiceAccount admission plugin adds only when the pod template lists no `imagePullSecrets` of its
//! own (and only if that plugin is enabled). regcreds cannot see that from the pod alone, so it checks
//! the outcome: after deleting a pod for a missing reference it waits for the watch to show the
//! deletion; every pod of the same controller that appears *after* that event was created after the
//! deletion (a watch delivers events in the order they happened). If such a replacement still lacks the
//! Secret, recreating pods of that controller is futile: the guard blocks it (and the healer says so,
//! once). A relist loses the order, so pending observations are dropped then (at worst one more futile
//! deletion per controller).

use std::collections::{BTreeSet, HashMap, HashSet};

use crate::pod::PodFacts;

/// A controller whose replacement pod came back without the Secrets it was recreated for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Futile {
    /// The controller's UID.
    pub owner_uid: String,
    /// The Secrets the replacement still lacks.
    pub secrets: BTreeSet<String>,
}

#[derive(Debug, Clone)]
struct Expectation {
    owner_uid: String,
    secrets: BTreeSet<String>,
}

#[derive(Debug, Clone)]
struct Watch {
    secrets: BTreeSet<String>,
    /// Pods of the owner that existed when the deletion was seen.
    known: HashSet<String>,
}

/// Tracks recreations and blocks healing of controllers whose replacements do not get the Secret.
#[derive(Debug, Default)]
pub(crate) struct ReplacementGuard {
    /// Pod UID → what its replacement should have; until the watch shows the pod deleted.
    deleted: HashMap<String, Expectation>,
    /// Owner UID → what its next new pod should have.
    watching: HashMap<String, Watch>,
    /// Owner UID → Secrets its replacements do not get.
    futile: HashMap<String, BTreeSet<String>>,
}

impl ReplacementGuard {
    /// Records that `pod` was deleted so that its replacement gets `secrets`.
    pub(crate) fn deleted(&mut self, pod: &PodFacts, secrets: &BTreeSet<String>) {
        if let Some(owner) = &pod.owner {
            self.deleted.insert(
                pod.uid.clone(),
                Expectation {
                    owner_uid: owner.uid.clone(),
                    secrets: secrets.clone(),
                },
            );
        }
    }

    /// Looks at a pod from the watch, before the index is updated. `gone` is true for a delete event;
    /// `pods_of` lists the UIDs of an owner's pods in the index. Returns a newly found futile owner.
    pub(crate) fn observe(
        &mut self,
        pod: &PodFacts,
        gone: bool,
        pods_of: impl Fn(&str) -> HashSet<String>,
    ) -> Option<Futile> {
        if gone || pod.deleting {
            if let Some(expected) = self.deleted.remove(&pod.uid) {
                let mut known = pods_of(&expected.owner_uid);
                known.insert(pod.uid.clone());
                self.watching.insert(
                    expected.owner_uid,
                    Watch {
                        secrets: expected.secrets,
                        known,
                    },
                );
            }
            return None;
        }
        let owner_uid = &pod.owner.as_ref()?.uid;
        let watch = self.watching.get_mut(owner_uid)?;
        if !watch.known.insert(pod.uid.clone()) {
            return None;
        }
        // A pod created after the deletion: the replacement.
        let missing: BTreeSet<String> = watch
            .secrets
            .iter()
            .filter(|s| !pod.pull_secrets.contains(s))
            .cloned()
            .collect();
        self.watching.remove(owner_uid);
        if missing.is_empty() {
            return None;
        }
        self.futile
            .entry(owner_uid.clone())
            .or_default()
            .extend(missing.iter().cloned());
        Some(Futile {
            owner_uid: owner_uid.clone(),
            secrets: missing,
        })
    }

    /// Whether recreating pods of `owner_uid` is known not to bring any of `secrets`.
    pub(crate) fn is_futile(&self, owner_uid: &str, secrets: &BTreeSet<String>) -> bool {
        self.futile
            .get(owner_uid)
            .is_some_and(|blocked| secrets.iter().all(|s| blocked.contains(s)))
    }

    /// The watch started over: event order across the gap is unknown.
    pub(crate) fn relisted(&mut self) {
        self.deleted.clear();
        self.watching.clear();
    }

    /// Forgets owners that have no pending pod any more (bounded memory; a blocked controller that gets
    /// stuck again costs at most one more futile deletion).
    pub(crate) fn retain_owners(&mut self, has_pending_pods: impl Fn(&str) -> bool) {
        self.futile.retain(|owner, _| has_pending_pods(owner));
        self.watching.retain(|owner, _| has_pending_pods(owner));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pod::fixtures::{pod, stuck};

    fn facts(name: &str) -> PodFacts {
        PodFacts::from_pod(&pod(stuck(name, "reg:5000/app:1")))
    }

    fn secrets() -> BTreeSet<String> {
        ["dpr-secret".to_string()].into()
    }

    fn none(_: &str) -> HashSet<String> {
        HashSet::new()
    }

    #[test]
    fn a_replacement_without_the_secret_blocks_its_controller() {
        let mut guard = ReplacementGuard::default();
        let first = facts("web-1");
        let sibling = facts("web-2");
        guard.deleted(&first, &secrets());
        let mut terminating = first.clone();
        terminating.deleting = true;
        let pods_of = |_: &str| HashSet::from([first.uid.clone(), sibling.uid.clone()]);
        assert_eq!(guard.observe(&terminating, false, pods_of), None);
        assert_eq!(
            guard.observe(&sibling, false, none),
            None,
            "existed before the deletion"
        );
        assert!(!guard.is_futile("rs-uid", &secrets()));
        let replacement = facts("web-3");
        let futile = guard.observe(&replacement, false, none);
        assert_eq!(
            futile,
            Some(Futile {
                owner_uid: "rs-uid".into(),
                secrets: secrets()
            })
        );
        assert!(guard.is_futile("rs-uid", &secrets()));
    }

    #[test]
    fn a_replacement_with_the_secret_keeps_healing_on() {
        let mut guard = ReplacementGuard::default();
        let first = facts("web-1");
        guard.deleted(&first, &secrets());
        assert_eq!(guard.observe(&first, true, none), None);
        let mut replacement = facts("web-3");
        replacement.pull_secrets = vec!["dpr-secret".into()];
        assert_eq!(guard.observe(&replacement, false, none), None);
        assert!(!guard.is_futile("rs-uid", &secrets()));
        assert!(guard.watching.is_empty());
    }

    #[test]
    fn nothing_is_concluded_before_the_deletion_is_seen_or_after_a_relist() {
        let mut guard = ReplacementGuard::default();
        guard.deleted(&facts("web-1"), &secrets());
        // A pod arriving before the deletion event may have been created before the deletion.
        assert_eq!(guard.observe(&facts("web-3"), false, none), None);
        guard.relisted();
        assert_eq!(guard.observe(&facts("web-1"), true, none), None);
        assert_eq!(guard.observe(&facts("web-4"), false, none), None);
        assert!(!guard.is_futile("rs-uid", &secrets()));
    }

    #[test]
    fn owners_without_pending_pods_are_forgotten() {
        let mut guard = ReplacementGuard::default();
        guard.futile.insert("rs-uid".into(), secrets());
        guard.retain_owners(|_| true);
        assert!(guard.is_futile("rs-uid", &secrets()));
        guard.retain_owners(|_| false);
        assert!(!guard.is_futile("rs-uid", &secrets()));
    }
}
