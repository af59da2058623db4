//! Which managed Secret can authenticate a pull of which image, matched the way kubelet matches
//! `.dockerconfigjson` keys against image references ([`regcreds_core::reference::KeyPattern`]).
//!
//! Healing only deletes a pod when a Secret it lacks (or whose content just changed) covers the image it
//! fails to pull: a pod stuck on another registry would gain nothing from being recreated.

use std::{collections::BTreeMap, sync::Arc};

use regcreds_core::{DockerConfig, reference::KeyPattern};

use regcreds_propagator::Desired;

/// The registry keys of every minted Secret: what each managed Secret can authenticate.
#[derive(Debug, Clone, Default)]
pub(crate) struct ManagedSecrets {
    keys: BTreeMap<String, Arc<[KeyPattern]>>,
}

impl ManagedSecrets {
    /// Reads the keys of every minted Secret in `desired`. Content that does not parse (it always does:
    /// the binary renders it) covers nothing.
    pub(crate) fn from_desired(desired: &Desired) -> Self {
        let keys = desired
            .secrets()
            .map(|secret| {
                let keys: Vec<KeyPattern> = DockerConfig::parse(&secret.data)
                    .map(|config| {
                        config
                            .credentials()
                            .iter()
                            .map(|credential| KeyPattern::parse(credential.registry.as_str()))
                            .collect()
                    })
                    .unwrap_or_default();
                (secret.name.clone(), Arc::from(keys))
            })
            .collect();
        Self { keys }
    }

    /// Whether `name` is a minted, managed Secret.
    pub(crate) fn contains(&self, name: &str) -> bool {
        self.keys.contains_key(name)
    }

    /// The key of Secret `name` that covers `image`, if any.
    pub(crate) fn covering_key(&self, name: &str, image: &str) -> Option<&KeyPattern> {
        self.keys.get(name)?.iter().find(|key| key.covers(image))
    }

    #[cfg(test)]
    pub(crate) fn from_keys(entries: &[(&str, &[&str])]) -> Self {
        let keys = entries
            .iter()
            .map(|(name, keys)| {
                let keys: Vec<KeyPattern> = keys.iter().map(|k| KeyPattern::parse(k)).collect();
                (name.to_string(), Arc::from(keys))
            })
            .collect();
        Self { keys }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use regcreds_propagator::DesiredSecret;

    #[test]
    fn managed_secrets_come_from_the_minted_dockerconfigjson() {
        let mut desired = Desired::new(["dpr-secret".to_string(), "later".to_string()]);
        desired.set(DesiredSecret {
            name: "dpr-secret".into(),
            provider: "static".into(),
            data: Arc::from(
                br#"{"auths":{"10.254.77.1:5443":{"username":"u","password":"p","auth":"dTpw"}}}"#.as_slice(),
            ),
        });
        let managed = ManagedSecrets::from_desired(&desired);
        assert!(managed.contains("dpr-secret"));
        assert!(
            !managed.contains("later"),
            "expected but not minted: nothing to match yet"
        );
        let key = managed.covering_key("dpr-secret", "10.254.77.1:5443/demo/hello:v1");
        assert_eq!(key.map(KeyPattern::as_str), Some("10.254.77.1:5443"));
        assert!(managed.covering_key("dpr-secret", "nginx").is_none());
    }
}
