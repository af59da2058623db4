//! Registry references: which registry an image or a `.dockerconfigjson` key names, and which key a
//! kubelet offers for which image. The one home of these rules, for healing, checking and the binary.
//!
//! Two questions look alike and have different answers, each from its own upstream:
//!
//! * **Where is an image pulled from?** docker's and containerd's rule (distribution's
//!   `reference/normalize.go`, `splitDockerDomain`): the first path component is a registry when it has
//!   a `.` or a `:`, or is `localhost`; otherwise the image is on Docker Hub. See [`split_registry`].
//! * **Which key does kubelet offer for an image?** kubelet's rule (`pkg/credentialprovider/keyring.go`,
//!   `URLsMatchStr` and `isDefaultRegistryMatch`): keys are schemeless URLs matched label by label with
//!   globs, and an image whose first component has no `.` or `:` — `localhost/app` included — gets the
//!   Docker Hub key. See [`KeyPattern`] and [`kubelet_uses_docker_hub_key`].
//!
//! Docker Hub answers to several names ([`DOCKER_HUB_ALIASES`]); [`canonical_authority`] folds them, so
//! two spellings of one registry compare equal.

use globset::{Glob, GlobMatcher};

/// Every host name that means Docker Hub: the v1 index docker login writes (`index.docker.io`), the
/// name users write (`docker.io`), the v2 API host (`registry-1.docker.io`) and the old web host.
pub const DOCKER_HUB_ALIASES: [&str; 4] = [
    "docker.io",
    "index.docker.io",
    "registry-1.docker.io",
    "registry.hub.docker.com",
];

/// The key host kubelet looks up for Docker Hub images (`defaultRegistryHost` in keyring.go).
const KUBELET_DOCKER_HUB_KEY: &str = "index.docker.io";

/// Whether `authority` (`host[:port]`) is Docker Hub under any of its names.
pub fn is_docker_hub(authority: &str) -> bool {
    DOCKER_HUB_ALIASES
        .iter()
        .any(|alias| alias.eq_ignore_ascii_case(authority))
}

/// `host[:port]` lower-cased, every Docker Hub alias folded into `docker.io`.
pub fn canonical_authority(authority: &str) -> String {
    if is_docker_hub(authority) {
        "docker.io".to_string()
    } else {
        authority.to_ascii_lowercase()
    }
}

/// docker's rule for an image reference: `(registry, rest)` when the first path component names a
/// registry (it has a `.` or a `:`, or is `localhost`), `None` when the image is on Docker Hub by
/// default (`nginx`, `team/app`).
pub fn split_registry(image: &str) -> Option<(&str, &str)> {
    image
        .split_once('/')
        .filter(|(first, _)| first.contains(['.', ':']) || *first == "localhost")
}

/// kubelet's rule for which images use the Docker Hub key: no registry part, `docker.io` or
/// `index.docker.io`, or a first component without `.` or `:` (so `localhost/app` too, unlike docker).
pub fn kubelet_uses_docker_hub_key(image: &str) -> bool {
    match image.split_once('/') {
        None => !image.is_empty(),
        Some((first, _)) => {
            first == "docker.io" || first == KUBELET_DOCKER_HUB_KEY || !first.contains(['.', ':'])
        }
    }
}

/// Whether the kubelet would offer a credential written under any of `registries` when pulling `image`.
pub fn any_covers<'a>(registries: impl IntoIterator<Item = &'a crate::RegistryHost>, image: &str) -> bool {
    registries
        .into_iter()
        .any(|registry| KeyPattern::parse(registry.as_str()).covers(image))
}

/// One `.dockerconfigjson` key, parsed for matching.
#[derive(Debug, Clone)]
pub struct KeyPattern {
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

impl KeyPattern {
    /// Parses an `auths` key such as `registry.example.com:5000`, `https://index.docker.io/v1/` or
    /// `*.azurecr.io`.
    pub fn parse(raw: &str) -> Self {
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
    pub fn as_str(&self) -> &str {
        &self.raw
    }

    /// Whether kubelet would offer this key's credential when pulling `image`.
    pub fn covers(&self, image: &str) -> bool {
        self.matches_location(image) || (kubelet_uses_docker_hub_key(image) && self.is_docker_hub())
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
            && matches!(host.join(".").as_str(), KUBELET_DOCKER_HUB_KEY | "docker.io")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn covers(key: &str, image: &str) -> bool {
        KeyPattern::parse(key).covers(image)
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
    fn docker_and_kubelet_disagree_on_localhost_and_each_is_followed_where_it_applies() {
        assert_eq!(split_registry("localhost/app:1"), Some(("localhost", "app:1")));
        assert!(kubelet_uses_docker_hub_key("localhost/app:1"));
        assert_eq!(
            split_registry("localhost:5000/app"),
            Some(("localhost:5000", "app"))
        );
        assert!(!kubelet_uses_docker_hub_key("localhost:5000/app"));
        assert_eq!(split_registry("team/app"), None);
        assert_eq!(split_registry("nginx"), None);
        assert_eq!(
            split_registry("ghcr.io/org/app:1"),
            Some(("ghcr.io", "org/app:1"))
        );
    }

    #[test]
    fn every_docker_hub_alias_folds_into_one_authority() {
        for alias in DOCKER_HUB_ALIASES {
            assert!(is_docker_hub(&alias.to_ascii_uppercase()));
            assert_eq!(canonical_authority(alias), "docker.io");
        }
        assert_eq!(canonical_authority("GHCR.io"), "ghcr.io");
        assert!(!is_docker_hub("docker.io:443"));
    }
}
