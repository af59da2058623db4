//! A watch-fed cache of one kind of namespaced object, indexed by namespace, with write-through of
//! regcreds' own writes.
//!
//! ```text
//!  watcher ──Event<(namespace, T)>──▶ IndexWriter::apply ──▶ namespaces to wake (only if something changed)
//!                                        │ relist: buffered until InitDone, then swapped in
//!  reconcile ──get(ns, name) / in_namespace(ns)──▶ Index      (O(1) / O(objects in that namespace))
//!  reconcile ──remember(ns, T) after its own write──▶ Index  (the newer resourceVersion wins)
//! ```
//!
//! Why write-through: a reconcile writes a Secret, then the ServiceAccount. The Secret's own watch event
//! wakes the namespace again before the ServiceAccount's event has arrived; reading the stale account
//! from the cache would patch it again (a 409 and a re-read). Remembering what the apiserver answered
//! makes that second reconcile a no-op, and the echo of our own write (same `resourceVersion`) does not
//! wake anyone at all.
//!
//! `resourceVersion`s are compared as integers, as client-go's `MutationCache` does: they are etcd
//! revisions. One that does not parse as an integer is taken as newer (the watch is never ignored).

use std::{
    collections::HashMap,
    sync::{Arc, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard},
};

use kube::runtime::watcher::Event;
use tokio::sync::watch;

/// What the index needs of an object.
pub trait Cached {
    /// Name within its namespace.
    fn name(&self) -> &str;
    /// `resourceVersion`, if known.
    fn resource_version(&self) -> Option<&str>;
}

impl Cached for crate::cached::SecretState {
    fn name(&self) -> &str {
        &self.name
    }
    fn resource_version(&self) -> Option<&str> {
        self.resource_version.as_deref()
    }
}

impl Cached for crate::cached::AccountState {
    fn name(&self) -> &str {
        &self.name
    }
    fn resource_version(&self) -> Option<&str> {
        self.resource_version.as_deref()
    }
}

/// Objects by namespace; usually one or two per namespace, so a short vector beats a map.
type Objects<T> = HashMap<String, Vec<Arc<T>>>;

/// Read side, cheap to clone.
pub struct Index<T> {
    shared: Arc<Shared<T>>,
}

impl<T> Clone for Index<T> {
    fn clone(&self) -> Self {
        Self {
            shared: self.shared.clone(),
        }
    }
}

struct Shared<T> {
    objects: RwLock<Objects<T>>,
    /// Becomes true once the first list is complete.
    synced: watch::Sender<bool>,
}

impl<T> Shared<T> {
    // NB: a panic while holding the lock cannot leave the map half-updated (every update is one insert,
    // replace or remove), so a poisoned lock is used as is.
    fn read(&self) -> RwLockReadGuard<'_, Objects<T>> {
        self.objects.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn write(&self) -> RwLockWriteGuard<'_, Objects<T>> {
        self.objects.write().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Write side, owned by the watch stream that feeds the index.
pub struct IndexWriter<T> {
    shared: Arc<Shared<T>>,
    /// Objects of a list in progress (`Init` .. `InitDone`).
    relist: Option<Objects<T>>,
}

/// A new, empty index and its writer.
pub fn index<T: Cached>() -> (Index<T>, IndexWriter<T>) {
    let shared = Arc::new(Shared {
        objects: RwLock::new(HashMap::new()),
        synced: watch::Sender::new(false),
    });
    (
        Index {
            shared: shared.clone(),
        },
        IndexWriter { shared, relist: None },
    )
}

impl<T: Cached> Index<T> {
    /// The object `name` in `namespace`.
    pub fn get(&self, namespace: &str, name: &str) -> Option<Arc<T>> {
        self.shared
            .read()
            .get(namespace)?
            .iter()
            .find(|object| object.name() == name)
            .cloned()
    }

    /// Every object in `namespace`.
    pub fn in_namespace(&self, namespace: &str) -> Vec<Arc<T>> {
        self.shared.read().get(namespace).cloned().unwrap_or_default()
    }

    /// Resolves once the first list has been stored (at once if it has been).
    pub async fn synced(&self) {
        let mut synced = self.shared.synced.subscribe();
        // Err only if the writer side is gone, which happens only at shutdown.
        let _ = synced.wait_for(|synced| *synced).await;
    }

    /// Records an object regcreds just wrote, as the apiserver returned it, unless the index already
    /// holds a newer version.
    pub fn remember(&self, namespace: &str, object: T) {
        upsert(&mut self.shared.write(), namespace, object);
    }
}

impl<T: Cached> IndexWriter<T> {
    /// Applies one watch event; returns the namespaces whose view changed.
    ///
    /// The first list wakes nothing (every namespace is reconciled once the caches are synced anyway).
    /// A later relist — after the watch had to start over, e.g. an apiserver restart — wakes every
    /// namespace that had or has an object, after the swap, so that nothing created or deleted while
    /// the watch was down waits for the periodic resync.
    pub fn apply(&mut self, event: Event<(String, T)>) -> Vec<String> {
        match event {
            Event::Apply((namespace, object)) => {
                let mut objects = self.shared.write();
                if upsert(&mut objects, &namespace, object) {
                    vec![namespace]
                } else {
                    Vec::new()
                }
            }
            Event::Delete((namespace, object)) => {
                let mut objects = self.shared.write();
                if remove(&mut objects, &namespace, &object) {
                    vec![namespace]
                } else {
                    Vec::new()
                }
            }
            Event::Init => {
                self.relist = Some(HashMap::new());
                Vec::new()
            }
            Event::InitApply((namespace, object)) => {
                let relist = self.relist.get_or_insert_with(HashMap::new);
                relist.entry(namespace).or_default().push(Arc::new(object));
                Vec::new()
            }
            Event::InitDone => {
                let listed = self.relist.take().unwrap_or_default();
                let first = !*self.shared.synced.borrow();
                let before = std::mem::replace(&mut *self.shared.write(), listed);
                self.shared.synced.send_replace(true);
                if first {
                    return Vec::new();
                }
                let mut woken: Vec<String> = before.into_keys().collect();
                woken.extend(self.shared.read().keys().cloned());
                woken.sort_unstable();
                woken.dedup();
                woken
            }
        }
    }
}

/// Inserts or replaces `object` unless the stored one is at least as new. Returns whether it changed.
fn upsert<T: Cached>(objects: &mut Objects<T>, namespace: &str, object: T) -> bool {
    let list = match objects.get_mut(namespace) {
        Some(list) => list,
        None => objects.entry(namespace.to_string()).or_default(),
    };
    match list.iter_mut().find(|stored| stored.name() == object.name()) {
        Some(stored) if !is_newer(object.resource_version(), stored.resource_version()) => false,
        Some(stored) => {
            *stored = Arc::new(object);
            true
        }
        None => {
            list.push(Arc::new(object));
            true
        }
    }
}

/// Removes the stored object named like `deleted`, unless the stored one is newer than the deletion
/// (regcreds re-created it since). Returns whether it changed.
fn remove<T: Cached>(objects: &mut Objects<T>, namespace: &str, deleted: &T) -> bool {
    let Some(list) = objects.get_mut(namespace) else {
        return false;
    };
    let Some(position) = list.iter().position(|stored| stored.name() == deleted.name()) else {
        return false;
    };
    if is_newer(list[position].resource_version(), deleted.resource_version()) {
        return false;
    }
    list.swap_remove(position);
    if list.is_empty() {
        objects.remove(namespace);
    }
    true
}

/// Whether `candidate` is newer than `stored`. Unknown or non-numeric versions count as newer, so that
/// the watch is never ignored because of a version regcreds cannot compare.
fn is_newer(candidate: Option<&str>, stored: Option<&str>) -> bool {
    let parse = |rv: Option<&str>| rv.and_then(|rv| rv.parse::<u64>().ok());
    match (parse(candidate), parse(stored)) {
        (Some(candidate), Some(stored)) => candidate > stored,
        _ => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, PartialEq)]
    struct Object(&'static str, &'static str);

    impl Cached for Object {
        fn name(&self) -> &str {
            self.0
        }
        fn resource_version(&self) -> Option<&str> {
            Some(self.1)
        }
    }

    fn listed(writer: &mut IndexWriter<Object>, objects: Vec<(&str, Object)>) -> Vec<String> {
        writer.apply(Event::Init);
        for (namespace, object) in objects {
            writer.apply(Event::InitApply((namespace.into(), object)));
        }
        writer.apply(Event::InitDone)
    }

    #[test]
    fn the_first_list_wakes_nothing_and_marks_the_index_synced() {
        let (index, mut writer) = index();
        assert!(!*index.shared.synced.borrow());
        let woken = listed(
            &mut writer,
            vec![("a", Object("x", "1")), ("b", Object("x", "2"))],
        );
        assert!(woken.is_empty());
        assert!(*index.shared.synced.borrow());
        assert_eq!(index.get("a", "x").as_deref(), Some(&Object("x", "1")));
        assert_eq!(index.in_namespace("b").len(), 1);
        assert!(index.get("a", "y").is_none());
    }

    #[test]
    fn a_relist_wakes_namespaces_that_had_or_have_objects_after_the_swap() {
        let (index, mut writer) = index();
        listed(
            &mut writer,
            vec![("gone", Object("x", "1")), ("kept", Object("x", "2"))],
        );
        let woken = listed(
            &mut writer,
            vec![("kept", Object("x", "2")), ("new", Object("x", "5"))],
        );
        assert_eq!(woken, ["gone", "kept", "new"]);
        assert!(index.in_namespace("gone").is_empty());
        assert!(index.get("new", "x").is_some());
    }

    #[test]
    fn the_echo_of_a_remembered_write_changes_nothing_and_older_events_never_regress_it() {
        let (index, mut writer) = index();
        listed(&mut writer, vec![]);
        index.remember("ns", Object("x", "10"));
        assert!(
            writer
                .apply(Event::Apply(("ns".into(), Object("x", "10"))))
                .is_empty()
        );
        assert!(
            writer
                .apply(Event::Apply(("ns".into(), Object("x", "9"))))
                .is_empty()
        );
        assert!(
            writer
                .apply(Event::Delete(("ns".into(), Object("x", "8"))))
                .is_empty()
        );
        assert_eq!(index.get("ns", "x").as_deref(), Some(&Object("x", "10")));
        assert_eq!(
            writer.apply(Event::Apply(("ns".into(), Object("x", "11")))),
            ["ns"]
        );
        index.remember("ns", Object("x", "10"));
        assert_eq!(index.get("ns", "x").as_deref(), Some(&Object("x", "11")));
        assert_eq!(
            writer.apply(Event::Delete(("ns".into(), Object("x", "12")))),
            ["ns"]
        );
        assert!(index.get("ns", "x").is_none());
        assert!(
            writer
                .apply(Event::Delete(("ns".into(), Object("x", "13"))))
                .is_empty()
        );
    }

    #[test]
    fn unparseable_versions_count_as_newer() {
        assert!(is_newer(Some("abc"), Some("5")));
        assert!(is_newer(None, Some("5")));
        assert!(is_newer(Some("6"), Some("5")));
        assert!(!is_newer(Some("5"), Some("5")));
    }
}
