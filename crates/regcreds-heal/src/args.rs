//! `REGCREDS_HEAL_*`: pod healing, off by default. Values are read as text and checked here, so a bad
//! one is reported with the others (exit 2, naming the variable) instead of by clap alone.

use clap::Args;
use regcreds_settings::{ConfigProblems, Source, non_blank};

use crate::{HealSettings, RateLimit};

const HEAL_PODS: Source = Source::new("REGCREDS_HEAL_PODS", "heal-pods");
const AFTER_CHANGE: Source = Source::new(
    "REGCREDS_HEAL_AFTER_CREDENTIAL_CHANGE",
    "heal-after-credential-change",
);
const RATE: Source = Source::new("REGCREDS_HEAL_RATE", "heal-rate");
const BURST: Source = Source::new("REGCREDS_HEAL_BURST", "heal-burst");
const NAMESPACE_RATE: Source = Source::new("REGCREDS_HEAL_NAMESPACE_RATE", "heal-namespace-rate");
const NAMESPACE_BURST: Source = Source::new("REGCREDS_HEAL_NAMESPACE_BURST", "heal-namespace-burst");

/// Pod healing settings.
#[derive(Args, Debug, Clone)]
#[command(next_help_heading = "Pod healing")]
pub struct HealArgs {
    /// Delete pods that cannot pull because they were created before their ServiceAccount listed a
    /// managed Secret, so that their controller recreates them with it (true/false; default false).
    /// Needs list, watch and delete on pods.
    #[arg(long = "heal-pods", env = "REGCREDS_HEAL_PODS")]
    pub heal_pods: Option<String>,
    /// With healing on: also recreate pods in pull back-off at once when a Secret they list changes
    /// (true/false; default true).
    #[arg(
        long = "heal-after-credential-change",
        env = "REGCREDS_HEAL_AFTER_CREDENTIAL_CHANGE"
    )]
    pub after_credential_change: Option<String>,
    /// Pod deletions per second, cluster-wide [default: 5].
    #[arg(long = "heal-rate", env = "REGCREDS_HEAL_RATE")]
    pub rate: Option<String>,
    /// Pod deletions at once, cluster-wide [default: 20].
    #[arg(long = "heal-burst", env = "REGCREDS_HEAL_BURST")]
    pub burst: Option<String>,
    /// Pod deletions per second in one namespace [default: 1].
    #[arg(long = "heal-namespace-rate", env = "REGCREDS_HEAL_NAMESPACE_RATE")]
    pub namespace_rate: Option<String>,
    /// Pod deletions at once in one namespace [default: 10].
    #[arg(long = "heal-namespace-burst", env = "REGCREDS_HEAL_NAMESPACE_BURST")]
    pub namespace_burst: Option<String>,
}

impl HealArgs {
    /// `Some(settings)` when healing is turned on; every problem is recorded, even with healing off.
    pub fn build(&self, problems: &mut ConfigProblems) -> Option<HealSettings> {
        let enabled = parse_bool(&self.heal_pods, HEAL_PODS, problems).unwrap_or(false);
        let defaults = HealSettings::default();
        let settings = HealSettings {
            cluster_rate: RateLimit {
                per_second: parse_rate(&self.rate, RATE, problems)
                    .unwrap_or(defaults.cluster_rate.per_second),
                burst: parse_burst(&self.burst, BURST, problems).unwrap_or(defaults.cluster_rate.burst),
            },
            namespace_rate: RateLimit {
                per_second: parse_rate(&self.namespace_rate, NAMESPACE_RATE, problems)
                    .unwrap_or(defaults.namespace_rate.per_second),
                burst: parse_burst(&self.namespace_burst, NAMESPACE_BURST, problems)
                    .unwrap_or(defaults.namespace_rate.burst),
            },
            after_credential_change: parse_bool(&self.after_credential_change, AFTER_CHANGE, problems)
                .unwrap_or(defaults.after_credential_change),
        };
        enabled.then_some(settings)
    }
}

fn parse_bool(value: &Option<String>, source: Source, problems: &mut ConfigProblems) -> Option<bool> {
    let value = non_blank(value)?;
    match value.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Some(true),
        "false" | "0" | "no" | "off" => Some(false),
        _ => {
            problems.add(source, format!("{value:?} is not a boolean (true or false)"));
            None
        }
    }
}

fn parse_rate(value: &Option<String>, source: Source, problems: &mut ConfigProblems) -> Option<f64> {
    let value = non_blank(value)?;
    match value.trim().parse::<f64>() {
        Ok(rate) if rate.is_finite() && rate > 0.0 => Some(rate),
        _ => {
            problems.add(
                source,
                format!("{value:?} is not a positive number of deletions per second (e.g. 0.5 or 5)"),
            );
            None
        }
    }
}

fn parse_burst(value: &Option<String>, source: Source, problems: &mut ConfigProblems) -> Option<u32> {
    let value = non_blank(value)?;
    match value.trim().parse::<u32>() {
        Ok(burst) if burst >= 1 => Some(burst),
        _ => {
            problems.add(source, format!("{value:?} is not a whole number of at least 1"));
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(pairs: &[(&str, &str)]) -> HealArgs {
        let get = |name: &str| pairs.iter().find(|(k, _)| *k == name).map(|(_, v)| v.to_string());
        HealArgs {
            heal_pods: get("pods"),
            after_credential_change: get("after"),
            rate: get("rate"),
            burst: get("burst"),
            namespace_rate: get("ns_rate"),
            namespace_burst: get("ns_burst"),
        }
    }

    #[test]
    fn healing_is_off_by_default_and_blank_counts_as_unset() {
        let mut problems = ConfigProblems::default();
        assert_eq!(args(&[]).build(&mut problems), None);
        assert_eq!(args(&[("pods", " ")]).build(&mut problems), None);
        assert_eq!(args(&[("pods", "false")]).build(&mut problems), None);
        assert!(problems.is_empty());
    }

    #[test]
    fn turned_on_it_uses_the_defaults_or_the_given_limits() {
        let mut problems = ConfigProblems::default();
        assert_eq!(
            args(&[("pods", "true")]).build(&mut problems),
            Some(HealSettings::default())
        );
        let custom = args(&[
            ("pods", "TRUE"),
            ("after", "false"),
            ("rate", "0.5"),
            ("burst", "3"),
            ("ns_rate", "2"),
            ("ns_burst", "1"),
        ])
        .build(&mut problems)
        .expect("on");
        assert!(problems.is_empty());
        assert_eq!(
            custom.cluster_rate,
            RateLimit {
                per_second: 0.5,
                burst: 3
            }
        );
        assert_eq!(
            custom.namespace_rate,
            RateLimit {
                per_second: 2.0,
                burst: 1
            }
        );
        assert!(!custom.after_credential_change);
    }

    #[test]
    fn every_bad_value_is_named() {
        let mut problems = ConfigProblems::default();
        args(&[
            ("pods", "sometimes"),
            ("after", "maybe"),
            ("rate", "0"),
            ("burst", "0"),
            ("ns_rate", "fast"),
            ("ns_burst", "-1"),
        ])
        .build(&mut problems);
        let text = problems.to_string();
        for name in [
            "REGCREDS_HEAL_PODS",
            "REGCREDS_HEAL_AFTER_CREDENTIAL_CHANGE",
            "REGCREDS_HEAL_RATE",
            "REGCREDS_HEAL_BURST",
            "REGCREDS_HEAL_NAMESPACE_RATE",
            "REGCREDS_HEAL_NAMESPACE_BURST",
        ] {
            assert_eq!(
                text.lines().filter(|l| l.contains(&format!("{name} ("))).count(),
                1,
                "{name} in:\n{text}"
            );
        }
        let mut problems = ConfigProblems::default();
        args(&[("pods", "true"), ("rate", "NaN")]).build(&mut problems);
        assert!(problems.to_string().contains("REGCREDS_HEAL_RATE"));
    }
}
