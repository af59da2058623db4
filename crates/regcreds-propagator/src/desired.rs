//! What should exist in every namespace in scope: the propagator's only input.

use std::{
    collections::{BTreeMap, BTreeSet},
    sync::Arc,
};

/// One Secret to write: its name, the provider it came from, and the `.dockerconfigjson` bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DesiredSecret {
    /// Secret name in every namespace.
    pub name: String,
    /// Provider name (goes into a label; never used to decide anything).
    pub provider: String,
    /// The exact `.dockerconfigjson` bytes. Shared, never copied per namespace.
    pub data: Arc<[u8]>,
}

/// The desired state: the Secret names that belong to configured providers, and the content of those
/// that have been minted.
///
/// `expected` is known before the first mint. A managed Secret whose name is expected but not minted yet
/// (right after a restart, or while a provider is failing) is left alone; only names no longer expected
/// (a provider removed from the configuration) are cleaned up.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Desired {
    expected: BTreeSet<String>,
    secrets: BTreeMap<String, DesiredSecret>,
}

impl Desired {
    /// A desired state for providers writing the given Secret names, none minted yet.
    pub fn new(expected: impl IntoIterator<Item = String>) -> Self {
        Self {
            expected: expected.into_iter().collect(),
            secrets: BTreeMap::new(),
        }
    }

    /// Records freshly minted content. Returns whether anything changed, so that callers can wake the
    /// propagator only for real changes (`watch::Sender::send_if_modified`).
    pub fn set(&mut self, secret: DesiredSecret) -> bool {
        self.expected.insert(secret.name.clone());
        if self.secrets.get(&secret.name) == Some(&secret) {
            return false;
        }
        self.secrets.insert(secret.name.clone(), secret);
        true
    }

    /// Minted Secrets, by name.
    pub fn secrets(&self) -> impl Iterator<Item = &DesiredSecret> {
        self.secrets.values()
    }

    /// Whether a Secret name belongs to a configured provider.
    pub fn expects(&self, name: &str) -> bool {
        self.expected.contains(name)
    }

    /// All expected Secret names.
    pub fn expected(&self) -> impl Iterator<Item = &str> {
        self.expected.iter().map(String::as_str)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret(name: &str, data: &str) -> DesiredSecret {
        DesiredSecret {
            name: name.into(),
            provider: "static".into(),
            data: Arc::from(data.as_bytes()),
        }
    }

    #[test]
    fn setting_identical_bytes_is_not_a_change() {
        let mut desired = Desired::new(["a".to_string()]);
        assert!(desired.set(secret("a", "{1}")));
        assert!(!desired.set(secret("a", "{1}")));
        assert!(desired.set(secret("a", "{2}")));
    }

    #[test]
    fn expected_names_are_known_before_minting() {
        let desired = Desired::new(["a".to_string()]);
        assert!(desired.expects("a"));
        assert!(!desired.expects("b"));
        assert_eq!(desired.secrets().count(), 0);
    }
}
