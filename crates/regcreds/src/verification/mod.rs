//! Proving that credentials pull: shared by `regcreds check` and the controller.
//!
//! ```text
//!  REGCREDS_CHECK_* ──CheckArgs::build()──▶ Checker { Verifier (CA, plain-http hosts, timeout), probes }
//!
//!  regcreds check:  provider.mint() ──CredentialSet──▶ Checker::check ──▶ Vec<CheckResult> ──▶ stdout, exit code
//!  regcreds run:    mint ──▶ Gate (probed registries, before publishing) ──▶ watch<Desired>
//!                        ──▶ ControllerChecks' loop (after a change, every interval) ──▶ CheckMetrics, logs
//! ```
//!
//! * `mod.rs`: the settings, probe images and the [`Checker`];
//! * [`gate`]: verify before propagate; [`periodic`]: the controller's re-checks; [`metrics`]: their
//!   series.
//!
//! Registry hosts and outcomes are not secret and become metric labels; reasons name a step, an HTTP
//! status and the registry's error code, never a password or token.

mod gate;
mod metrics;
mod periodic;

use std::{collections::BTreeMap, path::PathBuf, time::Duration};

use clap::Args;
use regcreds_core::{CredentialSet, RegistryHost, reference};
use regcreds_verify::{CheckResult, ImageRef, Verifier, VerifierOptions};

use crate::config::{ConfigProblems, ConfiguredProvider};

pub use gate::{Gate, Refusal};
pub use metrics::CheckMetrics;
pub use periodic::{ControllerChecks, PeriodicCheckArgs};

/// How credentials are checked (`regcreds check` and `regcreds run`).
#[derive(Args, Debug, Clone)]
#[command(next_help_heading = "Credential checks")]
pub struct CheckArgs {
    /// Probe images, comma-separated `registry/repository:tag`. A registry with a probe must also
    /// allow reading that manifest (HEAD), which proves pull rights and not only a valid login.
    #[arg(long = "check-images", env = "REGCREDS_CHECK_IMAGES", value_delimiter = ',')]
    pub check_images: Vec<String>,
    /// PEM file of extra root CAs to trust when checking (registries with a private CA).
    #[arg(long = "check-ca-file", env = "REGCREDS_CHECK_CA_FILE")]
    pub check_ca_file: Option<PathBuf>,
    /// Registries (`host[:port]`, comma-separated) to check over plain http. The credential travels in
    /// clear text to these, so nothing is allowed by default.
    #[arg(
        long = "check-insecure-hosts",
        env = "REGCREDS_CHECK_INSECURE_HOSTS",
        value_delimiter = ','
    )]
    pub check_insecure_hosts: Vec<String>,
    /// Limit for each HTTP request of a check (a check makes at most five).
    #[arg(
        long = "check-timeout-seconds",
        env = "REGCREDS_CHECK_TIMEOUT_SECONDS",
        default_value_t = 10
    )]
    pub check_timeout_seconds: u64,
}

const IMAGES: &str = "REGCREDS_CHECK_IMAGES (--check-images)";
const CA_FILE: &str = "REGCREDS_CHECK_CA_FILE (--check-ca-file)";
const TIMEOUT: &str = "REGCREDS_CHECK_TIMEOUT_SECONDS (--check-timeout-seconds)";

impl CheckArgs {
    /// The checker, or `None` with every problem recorded.
    pub fn build(&self, problems: &mut ConfigProblems) -> Option<Checker> {
        let probes = parse_probes(&self.check_images, problems);
        if self.check_timeout_seconds == 0 {
            problems.add(TIMEOUT, "must be at least 1");
        }
        let extra_root_certs = match &self.check_ca_file {
            Some(path) => match regcreds_core::read_bounded(path) {
                Ok(pem) => vec![pem],
                Err(error) => {
                    problems.add(CA_FILE, error);
                    return None;
                }
            },
            None => Vec::new(),
        };
        let options = VerifierOptions {
            timeout: Duration::from_secs(self.check_timeout_seconds.max(1)),
            extra_root_certs,
            insecure_http_hosts: non_blank(&self.check_insecure_hosts),
        };
        let verifier = Verifier::new(options)
            .inspect_err(|error| problems.add(CA_FILE, error))
            .ok()?;
        Some(Checker {
            verifier,
            probes: probes?,
        })
    }
}

fn non_blank(values: &[String]) -> Vec<String> {
    values
        .iter()
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty())
        .collect()
}

/// Parses every `registry/repository:tag`; at most one per registry (the verifier takes one probe each).
fn parse_probes(raw: &[String], problems: &mut ConfigProblems) -> Option<Vec<Probe>> {
    let mut probes: Vec<Probe> = Vec::new();
    let mut valid = true;
    for image in non_blank(raw) {
        match Probe::parse(&image) {
            Ok(probe) if probes.iter().any(|p| p.same_registry(&probe.registry)) => {
                problems.add(IMAGES, format!("{image:?}: only one probe image per registry"));
                valid = false;
            }
            Ok(probe) => probes.push(probe),
            Err(problem) => {
                problems.add(IMAGES, problem);
                valid = false;
            }
        }
    }
    valid.then_some(probes)
}

/// One probe image: the registry it lives in and the repository and tag inside it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Probe {
    registry: RegistryHost,
    image: ImageRef,
}

impl Probe {
    /// `127.0.0.1:5000/demo/hello:v1`, `ghcr.io/org/app:1.0`, `docker.io/library/alpine:3`.
    fn parse(raw: &str) -> Result<Self, String> {
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

    /// Whether the probe is in the registry of `key`, however either is written (`https://…`, `/v1/`
    /// suffixes, Docker Hub's aliases): a probe written `docker.io/...` applies to the
    /// `https://index.docker.io/v1/` key.
    fn same_registry(&self, key: &RegistryHost) -> bool {
        reference::canonical_authority(self.registry.authority())
            == reference::canonical_authority(key.authority())
    }
}

/// Checks credential sets with one HTTP client and the configured probes. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Checker {
    verifier: Verifier,
    probes: Vec<Probe>,
}

impl Checker {
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
            .map(|probe| format!("{}/{}", probe.registry, probe.image))
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
                Some((credential.registry.clone(), probe.image.clone()))
            })
            .collect()
    }
}

/// Providers whose tokens a registry may accept at login and still refuse to pull with (see
/// [`ConfiguredProvider::requires_probe`]) must have a probe image for that registry, so that the
/// [`Gate`] stops such a token before it reaches a namespace.
pub fn require_probes(providers: &[ConfiguredProvider], checker: &Checker, problems: &mut ConfigProblems) {
    for configured in providers {
        let Some(requirement) = configured.requires_probe() else {
            continue;
        };
        if !checker.has_probe_for(&requirement.registry) {
            problems.add(
                IMAGES,
                format!(
                    "the {} provider needs a probe image on {registry}, e.g. {registry}/OWNER/PRIVATE-IMAGE:TAG: {why}",
                    configured.provider.name(),
                    registry = requirement.registry,
                    why = requirement.why,
                ),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(images: &[&str]) -> CheckArgs {
        CheckArgs {
            check_images: images.iter().map(|s| s.to_string()).collect(),
            check_ca_file: None,
            check_insecure_hosts: Vec::new(),
            check_timeout_seconds: 5,
        }
    }

    fn key(raw: &str) -> RegistryHost {
        RegistryHost::parse(raw).expect("valid key")
    }

    #[test]
    fn probes_need_a_registry_host_and_a_valid_image() {
        let mut problems = ConfigProblems::default();
        assert!(args(&["demo/hello:v1"]).build(&mut problems).is_none());
        assert!(
            problems.to_string().contains("must start with its registry host"),
            "{problems}"
        );
        let mut problems = ConfigProblems::default();
        assert!(args(&["https://ghcr.io/a/b:1"]).build(&mut problems).is_none());
        assert!(problems.to_string().contains("without a scheme"), "{problems}");
        let mut problems = ConfigProblems::default();
        assert!(args(&["ghcr.io/A:1"]).build(&mut problems).is_none());
        assert!(
            problems.to_string().contains("REGCREDS_CHECK_IMAGES"),
            "{problems}"
        );
    }

    #[test]
    fn one_probe_per_registry_however_it_is_spelled() {
        let mut problems = ConfigProblems::default();
        assert!(
            args(&["docker.io/library/alpine:3", "index.docker.io/org/app:1"])
                .build(&mut problems)
                .is_none()
        );
        assert!(
            problems.to_string().contains("only one probe image per registry"),
            "{problems}"
        );
    }

    #[test]
    fn a_probe_applies_to_its_registry_whatever_the_key_form() {
        let mut problems = ConfigProblems::default();
        let checker = args(&["127.0.0.1:5443/demo/hello:v1", "docker.io/library/alpine:3", " "])
            .build(&mut problems)
            .expect("valid");
        let set: CredentialSet = [
            regcreds_core::Credential::new(key("https://127.0.0.1:5443"), "AWS", "pw"),
            regcreds_core::Credential::new(key("https://index.docker.io/v1/"), "me", "pw"),
            regcreds_core::Credential::new(key("ghcr.io"), "me", "pw"),
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
    fn unreadable_ca_file_and_zero_timeout_are_config_problems() {
        let mut bad = args(&[]);
        bad.check_ca_file = Some(PathBuf::from("/nonexistent/ca.pem"));
        bad.check_timeout_seconds = 0;
        let mut problems = ConfigProblems::default();
        assert!(bad.build(&mut problems).is_none());
        let text = problems.to_string();
        assert!(
            text.contains("REGCREDS_CHECK_CA_FILE") && text.contains("/nonexistent/ca.pem"),
            "{text}"
        );
        assert!(text.contains("REGCREDS_CHECK_TIMEOUT_SECONDS"), "{text}");
    }
}
