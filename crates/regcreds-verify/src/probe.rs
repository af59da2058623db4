//! Probe images: one image per registry whose manifest a credential must be allowed to read.

use std::fmt;

use regcreds_core::{RegistryHost, reference};

use crate::ImageRef;

/// One probe image: the registry it lives in and the repository and tag inside it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Probe {
    registry: RegistryHost,
    image: ImageRef,
}

impl Probe {
    /// `127.0.0.1:5000/demo/hello:v1`, `ghcr.io/org/app:1.0`, `docker.io/library/alpine:3`.
    pub fn parse(raw: &str) -> Result<Self, String> {
        if raw.contains("://") {
            return Err(format!("{raw:?}: write registry/repository:tag without a scheme"));
        }
        let Some((host, image)) = reference::split_registry(raw) else {
            return Err(format!(
                "{raw:?} must start with its registry host, e.g. registry.example.com:5000/team/app:v1"
            ));
        };
        let registry = RegistryHost::parse(host).map_err(|e| format!("{raw:?}: {e}"))?;
        let image = ImageRef::parse(image).map_err(|e| e.to_string())?;
        Ok(Self { registry, image })
    }

    /// Parses every `registry/repository:tag`; at most one per registry (the verifier takes one probe
    /// each). `Err` carries one line per invalid entry.
    pub fn parse_all<'a>(raw: impl IntoIterator<Item = &'a str>) -> Result<Vec<Self>, Vec<String>> {
        let mut probes: Vec<Self> = Vec::new();
        let mut problems = Vec::new();
        for image in raw {
            match Self::parse(image) {
                Ok(probe) if probes.iter().any(|p| p.same_registry(&probe.registry)) => {
                    problems.push(format!("{image:?}: only one probe image per registry"));
                }
                Ok(probe) => probes.push(probe),
                Err(problem) => problems.push(problem),
            }
        }
        if problems.is_empty() {
            Ok(probes)
        } else {
            Err(problems)
        }
    }

    /// The repository and tag inside the registry.
    pub fn image(&self) -> &ImageRef {
        &self.image
    }

    /// Whether the probe is in the registry of `key`, however either is written (`https://…`, `/v1/`
    /// suffixes, Docker Hub's aliases): a probe written `docker.io/...` applies to the
    /// `https://index.docker.io/v1/` key.
    pub fn same_registry(&self, key: &RegistryHost) -> bool {
        reference::canonical_authority(self.registry.authority())
            == reference::canonical_authority(key.authority())
    }
}

/// `registry/repository:tag`, as it was configured (the registry as written).
impl fmt::Display for Probe {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.registry, self.image)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probes_need_a_registry_host_and_no_scheme() {
        let problems = Probe::parse_all(["demo/hello:v1", "https://ghcr.io/a/b:1"]).expect_err("invalid");
        assert_eq!(problems.len(), 2, "{problems:?}");
        assert!(
            problems[0].contains("must start with its registry host"),
            "{problems:?}"
        );
        assert!(problems[1].contains("without a scheme"), "{problems:?}");
    }

    #[test]
    fn a_probe_shows_as_configured() {
        let probe = Probe::parse("docker.io/library/alpine:3").expect("valid");
        assert_eq!(probe.to_string(), "docker.io/library/alpine:3");
        assert_eq!(probe.image().to_string(), "library/alpine:3");
    }
}
