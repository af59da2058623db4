//! Which managed Secret can authenticate a pull of which image, matched the way kubelet matches
//! `.dockerconfigjson` keys against image references (`pkg/credentialprovider/keyring.go`):
//!
//! * a key is a schemeless URL: `host[:port][/path]`; `https://` and a trailing `/v1/` or `/v2/` are ignored;
//! * it matches an image when the ports are equal, the host has as many dot-separated labels and each
//!   label matches as a glob (`*.azurecr.io`), and the key's path is a prefix of the image's path;
//! * images without a registry part (`nginx`, `team/app`), or on `docker.io`, use the key of Docker Hub
//!   (`https://index.docker.io/v1/`, or `docker.io`).
//!
//! Healing only deletes a pod when a Secret it lacks (or whose content just changed) covers the image it
//! fails to pull: a pod stuck on another registry would gain nothing from being recreated.

use std::{collections::BTreeMap, sync::Arc};

use globset::{Glob, GlobMatcher};
use regcreds_core::DockerConfig;

use crate::Desired;

/// Docker Hub's canonical key host, which kubelet uses for images without a registry part.
const DOCKER_HUB: &str = "index.docker.io";

/// One `.dockerconfigjson` key, parsed for matching.
#[derive(Debug, Clone)]
pub(crate) struct RegistryKey {
    labels: Vec<Label>,
    port: Option<String>,
    path: String,
    /// The key as written, for logs.
    raw: String,
}

#[derive(Debug, Clone)]
enum Label {
    Exact(String),
    Glob(GlobMatcher),
}

impl Label {
    fn matches(&self, target: &str) -> bool {
        match self {
            Self::Exact(label) => label == target,
            Self::Glob(glob) => glob.is_match(target),
        }
    }
}

/// `host[:port]` split into lowercase labels and port, and the path, of a schemeless URL.
fn split_location(location: &str) -> (Vec<String>, Option<String>, String) {
    let location = location.split_once("://").map_or(location, |(_, rest)| rest);
    let (authority, path) = match location.find('/') {
        Some(slash) => (&location[..slash], &location[slash..]),
        None => (location, ""),
    };
    let (host, port) = if authority.starts_with('[') {
        // NB: an IPv6 literal: `[::1]:5000`.
        match authority.find(']') {
            Some(end) => (
                &authority[..=end],
                authority[end + 1..].strip_prefix(':').map(String::from),
            ),
            None => (authority, None),
        }
    } else {
        match authority.rsplit_once(':') {
            Some((host, port)) => (host, Some(port.to_string())),
            None => (authority, None),
        }
    };
    let labels = host.split('.').map(str::to_ascii_lowercase).collect();
    (labels, port, path.to_string())
}

impl RegistryKey {
    /// Parses an `auths` key such as `registry.example.com:5000`, `https://index.docker.io/v1/` or
    /// `*.azurecr.io`.
    pub(crate) fn parse(raw: &str) -> Self {
        let (labels, port, mut path) = split_location(raw.trim());
        for version in ["/v1/", "/v2/"] {
            if let Some(rest) = path.strip_prefix(version) {
                path = format!("/{rest}");
            }
        }
        let path = path.trim_end_matches('/').to_string();
        let labels = labels
            .into_iter()
            .map(|label| match label.contains(['*', '?', '[']) {
                true => Glob::new(&label)
                    .map(|glob| Label::Glob(glob.compile_matcher()))
                    .unwrap_or(Label::Exact(label)),
                false => Label::Exact(label),
            })
            .collect();
        Self {
            labels,
            port,
            path,
            raw: raw.to_string(),
        }
    }

    /// The key as written in the Secret.
    pub(crate) fn as_str(&self) -> &str {
        &self.raw
    }

    /// Whether kubelet would offer this key's credential when pulling `image`.
    pub(crate) fn covers(&self, image: &str) -> bool {
        self.matches_location(image) || (is_docker_hub_image(image) && self.is_docker_hub())
    }

    fn matches_location(&self, image: &str) -> bool {
        let (labels, port, path) = split_location(image);
        self.port == port
            && self.labels.len() == labels.len()
            && self
                .labels
                .iter()
                .zip(&labels)
                .all(|(key, label)| key.matches(label))
            && path.starts_with(&self.path)
    }

    fn is_docker_hub(&self) -> bool {
        let host: Vec<&str> = self
            .labels
            .iter()
            .filter_map(|label| match label {
                Label::Exact(label) => Some(label.as_str()),
                Label::Glob(_) => None,
            })
            .collect();
        self.port.is_none()
            && self.path.is_empty()
            && (host.join(".") == DOCKER_HUB || host.join(".") == "docker.io")
    }
}

/// Whether `image` is pulled from Docker Hub: no registry part, or `docker.io` / `index.docker.io`.
fn is_docker_hub_image(image: &str) -> bool {
    match image.split_once('/') {
        None => !image.is_empty(),
        Some((first, _)) => first == "docker.io" || first == DOCKER_HUB || !first.contains(['.', ':']),
    }
}

/// The registry keys of every minted Secret: what each managed Secret can authenticate.
#[derive(Debug, Clone, Default)]
pub(crate) struct ManagedSecrets {
    keys: BTreeMap<String, Arc<[RegistryKey]>>,
}

impl ManagedSecrets {
    /// Reads the keys of every minted Secret in `desired`. Content that does not parse (it always does:
    /// the binary renders it) covers nothing.
    pub(crate) fn from_desired(desired: &Desired) -> Self {
        let keys = desired
            .secrets()
            .map(|secret| {
                let keys: Vec<RegistryKey> = DockerConfig::parse(&secret.data)
                    .map(|config| {
                        config
                            .credentials()
                            .iter()
                            .map(|credential| RegistryKey::parse(credential.registry.as_str()))
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
    pub(crate) fn covering_key(&self, name: &str, image: &str) -> Option<&RegistryKey> {
        self.keys.get(name)?.iter().find(|key| key.covers(image))
    }

    #[cfg(test)]
    pub(crate) fn from_keys(entries: &[(&str, &[&str])]) -> Self {
        let keys = entries
            .iter()
            .map(|(name, keys)| {
                let keys: Vec<RegistryKey> = keys.iter().map(|k| RegistryKey::parse(k)).collect();
                (name.to_string(), Arc::from(keys))
            })
            .collect();
        Self { keys }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::DesiredSecret;

    fn covers(key: &str, image: &str) -> bool {
        RegistryKey::parse(key).covers(image)
    }

    #[test]
    fn a_host_and_port_key_covers_images_on_that_registry_only() {
        assert!(covers("10.254.77.1:5443", "10.254.77.1:5443/demo/hello:v1"));
        assert!(covers(
            "https://10.254.77.1:5443",
            "10.254.77.1:5443/demo/hello@sha256:ab"
        ));
        assert!(!covers("10.254.77.1:5443", "10.254.77.1:5444/demo/hello:v1"));
        assert!(!covers("10.254.77.1:5443", "10.254.77.1/demo/hello:v1"));
        assert!(!covers("10.254.77.1", "10.254.77.1:5443/demo/hello:v1"));
        assert!(!covers("registry.example.com", "other.example.com/app"));
        assert!(covers("Registry.Example.com", "registry.example.com/app"));
    }

    #[test]
    fn a_key_with_a_path_covers_only_repositories_under_it() {
        assert!(covers(
            "registry.example.com/team-a",
            "registry.example.com/team-a/app:1"
        ));
        assert!(!covers(
            "registry.example.com/team-a",
            "registry.example.com/team-b/app:1"
        ));
        assert!(covers(
            "https://registry.example.com/v2/",
            "registry.example.com/team-b/app:1"
        ));
    }

    #[test]
    fn glob_labels_match_one_label_each() {
        assert!(covers("*.azurecr.io", "myreg.azurecr.io/app:1"));
        assert!(!covers("*.azurecr.io", "a.b.azurecr.io/app:1"));
        assert!(covers(
            "*.dkr.ecr.*.amazonaws.com",
            "123456789012.dkr.ecr.eu-west-1.amazonaws.com/app"
        ));
    }

    #[test]
    fn docker_hub_keys_cover_images_without_a_registry() {
        for key in ["https://index.docker.io/v1/", "index.docker.io", "docker.io"] {
            for image in [
                "nginx",
                "nginx:1.27",
                "team/app:1",
                "docker.io/team/app",
                "index.docker.io/a/b",
            ] {
                assert!(covers(key, image), "{key} should cover {image}");
            }
            assert!(!covers(key, "ghcr.io/team/app"), "{key}");
            assert!(!covers(key, "localhost:5000/app"), "{key}");
        }
        assert!(!covers("ghcr.io", "nginx"));
    }

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
        assert_eq!(key.map(RegistryKey::as_str), Some("10.254.77.1:5443"));
        assert!(managed.covering_key("dpr-secret", "nginx").is_none());
    }
}
