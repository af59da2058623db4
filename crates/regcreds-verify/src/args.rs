//! The checks' command-line and environment surface (`REGCREDS_CHECK_*`), for `regcreds check`,
//! `regcreds config check` and `regcreds run`. Problems are recorded naming the variable and flag.
//!
//! ```text
//!  REGCREDS_CHECK_* ──CheckArgs::build()──▶ Checker { Verifier (CA, plain-http hosts, timeout), probes }
//!  + REGCREDS_CHECK_INTERVAL_SECONDS ──PeriodicCheckArgs::build()──▶ ControllerChecks
//! ```

use std::{path::PathBuf, time::Duration};

use clap::Args;
use regcreds_settings::{ConfigProblems, ConfiguredProvider, Source, timeout_seconds};

use crate::{Checker, ControllerChecks, Probe, Verifier, VerifierOptions};

const IMAGES: Source = Source::new("REGCREDS_CHECK_IMAGES", "check-images");
const CA_FILE: Source = Source::new("REGCREDS_CHECK_CA_FILE", "check-ca-file");
const TIMEOUT: Source = Source::new("REGCREDS_CHECK_TIMEOUT_SECONDS", "check-timeout-seconds");

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

impl CheckArgs {
    /// The checker, or `None` with every problem recorded.
    pub fn build(&self, problems: &mut ConfigProblems) -> Option<Checker> {
        let probes = Probe::parse_all(non_blank(&self.check_images).iter().map(String::as_str))
            .inspect_err(|invalid| invalid.iter().for_each(|problem| problems.add(IMAGES, problem)))
            .ok();
        // NB: a zero timeout is recorded, and the checker still built (with 1 s) so that the problems
        // that depend on it (`require_probes`) are reported in the same run.
        let timeout =
            timeout_seconds(self.check_timeout_seconds, TIMEOUT, problems).unwrap_or(Duration::from_secs(1));
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
            timeout,
            extra_root_certs,
            insecure_http_hosts: non_blank(&self.check_insecure_hosts),
        };
        let verifier = Verifier::new(options)
            .inspect_err(|error| problems.add(CA_FILE, error))
            .ok()?;
        Some(Checker::new(verifier, probes?))
    }
}

fn non_blank(values: &[String]) -> Vec<String> {
    values
        .iter()
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty())
        .collect()
}

/// `regcreds run`'s checks: [`CheckArgs`] plus how often to repeat them.
#[derive(Args, Debug, Clone)]
pub struct PeriodicCheckArgs {
    /// Seconds between re-checks of every propagated credential. Credentials are also checked right
    /// after each mint that changed them. 0 turns the re-checks off; a credential whose registry has a
    /// probe image is still verified before it is propagated.
    #[arg(
        long = "check-interval-seconds",
        env = "REGCREDS_CHECK_INTERVAL_SECONDS",
        default_value_t = 3600,
        help_heading = "Credential checks"
    )]
    pub check_interval_seconds: u64,
    /// How to check.
    #[command(flatten)]
    pub check: CheckArgs,
}

impl PeriodicCheckArgs {
    /// The controller's checks; `None` when a setting is invalid (then recorded).
    pub fn build(&self, problems: &mut ConfigProblems) -> Option<ControllerChecks> {
        let checker = self.check.build(problems)?;
        let interval =
            (self.check_interval_seconds > 0).then(|| Duration::from_secs(self.check_interval_seconds));
        Some(ControllerChecks::new(checker, interval))
    }
}

/// Providers whose tokens a registry may accept at login and still refuse to pull with (see
/// [`ConfiguredProvider::requires_probe`]) must have a probe image for that registry, so that the
/// [`Gate`](crate::Gate) stops such a token before it reaches a namespace.
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

    fn periodic(seconds: u64, images: &[&str]) -> PeriodicCheckArgs {
        PeriodicCheckArgs {
            check_interval_seconds: seconds,
            check: args(images),
        }
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
        assert_eq!(
            problems.to_string(),
            "invalid configuration: REGCREDS_CHECK_IMAGES (--check-images): \"index.docker.io/org/app:1\": \
             only one probe image per registry\n"
        );
    }

    #[test]
    fn blank_entries_are_skipped() {
        let mut problems = ConfigProblems::default();
        let checker = args(&["ghcr.io/org/app:1", " ", ""])
            .build(&mut problems)
            .expect("valid");
        assert!(problems.is_empty(), "{problems}");
        assert_eq!(checker.unmatched_probes([]), vec!["ghcr.io/org/app:1"]);
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

    #[test]
    fn a_zero_timeout_still_builds_the_checker_so_that_every_problem_shows() {
        let mut zero = args(&[]);
        zero.check_timeout_seconds = 0;
        let mut problems = ConfigProblems::default();
        assert!(zero.build(&mut problems).is_some());
        assert_eq!(
            problems.to_string(),
            "invalid configuration: REGCREDS_CHECK_TIMEOUT_SECONDS (--check-timeout-seconds): must be at least 1\n"
        );
    }

    #[test]
    fn interval_zero_turns_the_rechecks_off_but_not_the_gate() {
        let mut problems = ConfigProblems::default();
        let off = periodic(0, &["ghcr.io/org/app:1"])
            .build(&mut problems)
            .expect("valid");
        assert!(off.interval().is_none());
        assert!(off.gate().is_some(), "a probe image gates publishing");
        let on = periodic(60, &[]).build(&mut problems).expect("valid");
        assert_eq!(on.interval(), Some(Duration::from_secs(60)));
        assert!(on.gate().is_none(), "nothing to prove pull rights with");
        assert!(problems.is_empty());
    }
}
