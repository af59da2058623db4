//! The [`Checker`]: one [`Verifier`] and the configured probe images, shared by `regcreds check`, the
//! [`Gate`](crate::Gate) and the controller's re-checks ([`ControllerChecks`](crate::ControllerChecks)).

use std::collections::BTreeMap;

use regcreds_core::{CredentialSet, RegistryHost};

use crate::{CheckResult, ImageRef, Probe, Verifier};

/// Checks credential sets with one HTTP client and the configured probes. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Checker {
    verifier: Verifier,
    probes: Vec<Probe>,
}

impl Checker {
    /// A checker asking `verifier`, with at most one probe per registry (see [`Probe::parse_all`]).
    pub fn new(verifier: Verifier, probes: Vec<Probe>) -> Self {
        Self { verifier, probes }
    }

    /// Checks every credential of `credentials` concurrently, with its registry's probe if any.
    pub async fn check(&self, credentials: &CredentialSet) -> Vec<CheckResult> {
        let probes = self.probes_for(credentials);
        self.verifier.check_all(credentials, &probes).await
    }

    /// Checks only the credentials whose registry has a probe image.
    pub async fn check_probed(&self, credentials: &CredentialSet) -> Vec<CheckResult> {
        self.check(&self.those_with_probe(credentials, true)).await
    }

    /// Checks only the credentials whose registry has no probe image.
    pub async fn check_unprobed(&self, credentials: &CredentialSet) -> Vec<CheckResult> {
        self.check(&self.those_with_probe(credentials, false)).await
    }

    fn those_with_probe(&self, credentials: &CredentialSet, with_probe: bool) -> CredentialSet {
        credentials
            .iter()
            .filter(|c| self.has_probe_for(&c.registry) == with_probe)
            .cloned()
            .collect()
    }

    /// Whether any probe image is configured.
    pub fn has_probes(&self) -> bool {
        !self.probes.is_empty()
    }

    /// Whether `registry` (however its key is written) has a probe image.
    pub fn has_probe_for(&self, registry: &RegistryHost) -> bool {
        self.probes.iter().any(|p| p.same_registry(registry))
    }

    /// Probe images whose registry none of `checked` has a credential for (most likely a typo).
    pub fn unmatched_probes<'a>(&self, checked: impl IntoIterator<Item = &'a RegistryHost>) -> Vec<String> {
        let checked: Vec<&RegistryHost> = checked.into_iter().collect();
        self.probes
            .iter()
            .filter(|probe| !checked.iter().any(|key| probe.same_registry(key)))
            .map(ToString::to_string)
            .collect()
    }

    /// The verifier wants probes keyed by the credential's exact `auths` key.
    fn probes_for(&self, credentials: &CredentialSet) -> BTreeMap<RegistryHost, ImageRef> {
        credentials
            .iter()
            .filter_map(|credential| {
                let probe = self
                    .probes
                    .iter()
                    .find(|p| p.same_registry(&credential.registry))?;
                Some((credential.registry.clone(), probe.image().clone()))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use regcreds_core::Credential;

    use super::*;
    use crate::VerifierOptions;

    fn checker(images: &[&str]) -> Checker {
        let probes = Probe::parse_all(images.iter().copied()).expect("valid probes");
        Checker::new(
            Verifier::new(VerifierOptions::default()).expect("verifier"),
            probes,
        )
    }

    fn key(raw: &str) -> RegistryHost {
        RegistryHost::parse(raw).expect("valid key")
    }

    #[test]
    fn a_probe_applies_to_its_registry_whatever_the_key_form() {
        let checker = checker(&["127.0.0.1:5443/demo/hello:v1", "docker.io/library/alpine:3"]);
        let set: CredentialSet = [
            Credential::new(key("https://127.0.0.1:5443"), "AWS", "pw"),
            Credential::new(key("https://index.docker.io/v1/"), "me", "pw"),
            Credential::new(key("ghcr.io"), "me", "pw"),
        ]
        .into_iter()
        .collect();
        let probes = checker.probes_for(&set);
        assert_eq!(
            probes[&key("https://127.0.0.1:5443")].to_string(),
            "demo/hello:v1"
        );
        assert_eq!(
            probes[&key("https://index.docker.io/v1/")].to_string(),
            "library/alpine:3"
        );
        assert!(!probes.contains_key(&key("ghcr.io")));
        assert!(
            checker
                .unmatched_probes(set.iter().map(|c| &c.registry))
                .is_empty()
        );
        assert_eq!(
            checker.unmatched_probes([&key("ghcr.io")]),
            vec!["127.0.0.1:5443/demo/hello:v1", "docker.io/library/alpine:3"]
        );
    }

    #[test]
    fn probed_and_unprobed_registries_are_told_apart() {
        let checker = checker(&["ghcr.io/org/app:1"]);
        assert!(checker.has_probes());
        assert!(checker.has_probe_for(&key("https://ghcr.io")));
        assert!(!checker.has_probe_for(&key("quay.io")));
        assert!(!self::checker(&[]).has_probes());
    }
}
