//! A map mirroring one watch, holding only what healing needs of each object (a few strings instead of
//! whole pods and ServiceAccounts), and telling what changed.
//!
//! A (re)list is buffered and swapped in at `InitDone`, like kube's reflector store, and reported as
//! [`Change::Relisted`] with the previous content so that differences across a watch gap are not lost.

use std::collections::BTreeMap;

use kube::runtime::watcher::Event;

/// What one watch event changed.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Change<K, V> {
    /// An object was added or modified; `old` is what the mirror held before.
    Applied {
        /// Its key.
        key: K,
        /// The previous value.
        old: Option<V>,
    },
    /// An object was deleted.
    Deleted {
        /// Its key.
        key: K,
        /// The value it had.
        old: Option<V>,
    },
    /// A (re)list completed; the mirror now holds exactly the listed objects.
    Relisted {
        /// The content before, empty for the first list.
        previous: BTreeMap<K, V>,
        /// Whether this was the first list since start.
        first: bool,
    },
    /// Nothing visible yet (a relist in progress).
    Pending,
}

/// The mirror.
#[derive(Debug)]
pub(crate) struct Mirror<K, V> {
    current: BTreeMap<K, V>,
    relisting: Option<BTreeMap<K, V>>,
    synced: bool,
}

impl<K, V> Default for Mirror<K, V> {
    fn default() -> Self {
        Self {
            current: BTreeMap::new(),
            relisting: None,
            synced: false,
        }
    }
}

impl<K: Ord + Clone, V> Mirror<K, V> {
    /// Applies one watch event whose object was already reduced to `(key, value)`.
    pub(crate) fn apply(&mut self, event: Event<(K, V)>) -> Change<K, V> {
        match event {
            Event::Apply((key, value)) => {
                let old = self.current.insert(key.clone(), value);
                Change::Applied { key, old }
            }
            Event::Delete((key, _)) => {
                let old = self.current.remove(&key);
                Change::Deleted { key, old }
            }
            Event::Init => {
                self.relisting = Some(BTreeMap::new());
                Change::Pending
            }
            Event::InitApply((key, value)) => {
                self.relisting
                    .get_or_insert_with(BTreeMap::new)
                    .insert(key, value);
                Change::Pending
            }
            Event::InitDone => {
                let listed = self.relisting.take().unwrap_or_default();
                let previous = std::mem::replace(&mut self.current, listed);
                let first = !std::mem::replace(&mut self.synced, true);
                Change::Relisted { previous, first }
            }
        }
    }

    /// Whether the first list has completed.
    pub(crate) fn is_synced(&self) -> bool {
        self.synced
    }

    /// The value for `key`.
    pub(crate) fn get(&self, key: &K) -> Option<&V> {
        self.current.get(key)
    }

    /// Every entry, in key order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (&K, &V)> {
        self.current.iter()
    }

    /// Entries from `start` on, in key order (callers stop at the end of their namespace).
    pub(crate) fn range_from(&self, start: &K) -> impl Iterator<Item = (&K, &V)> {
        self.current.range(start.clone()..)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_relist_swaps_atomically_and_reports_what_was_there() {
        let mut mirror: Mirror<&str, u8> = Mirror::default();
        assert_eq!(mirror.apply(Event::Init), Change::Pending);
        assert_eq!(mirror.apply(Event::InitApply(("a", 1))), Change::Pending);
        assert_eq!(mirror.get(&"a"), None, "not visible before InitDone");
        assert_eq!(
            mirror.apply(Event::InitDone),
            Change::Relisted {
                previous: BTreeMap::new(),
                first: true
            }
        );
        assert!(mirror.is_synced());
        assert_eq!(
            mirror.apply(Event::Apply(("a", 2))),
            Change::Applied {
                key: "a",
                old: Some(1)
            }
        );
        mirror.apply(Event::Init);
        mirror.apply(Event::InitApply(("b", 3)));
        assert_eq!(
            mirror.apply(Event::InitDone),
            Change::Relisted {
                previous: BTreeMap::from([("a", 2)]),
                first: false
            }
        );
        assert_eq!(mirror.iter().collect::<Vec<_>>(), vec![(&"b", &3)]);
        assert_eq!(
            mirror.apply(Event::Delete(("b", 0))),
            Change::Deleted {
                key: "b",
                old: Some(3)
            }
        );
    }
}
