//! Picking a value among the canonical variable and its compatible aliases.
//!
//! clap reads one environment variable per argument, so each compatible name (`DOCKER_PRIVATE_REGISTRY_SERVER`,
//! `CONFIG_DOCKERCONFIGJSON`, ...) is its own hidden argument; [`pick`] takes the first that is set and
//! remembers which one it was, so a problem names the variable the user actually wrote.

use std::fmt;

use super::ConfigProblems;

/// The variable and flag a value can come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Source {
    /// Environment variable name.
    pub env: &'static str,
    /// Long flag name without dashes.
    pub flag: &'static str,
}

impl Source {
    /// A setting readable from `env` or `--flag`.
    pub const fn new(env: &'static str, flag: &'static str) -> Self {
        Self { env, flag }
    }
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (--{})", self.env, self.flag)
    }
}

/// The first candidate that has a value (canonical names first, compatible aliases after), with its source.
pub fn pick<T: Clone>(candidates: &[(Source, &Option<T>)]) -> Option<(T, Source)> {
    candidates
        .iter()
        .find_map(|(source, value)| value.as_ref().map(|value| (value.clone(), *source)))
}

/// Like [`pick`], recording "is required" against the canonical (first) name when nothing is set.
pub fn require<T: Clone>(
    candidates: &[(Source, &Option<T>)],
    provider: &str,
    problems: &mut ConfigProblems,
) -> Option<(T, Source)> {
    let picked = pick(candidates);
    if picked.is_none()
        && let Some((canonical, _)) = candidates.first()
    {
        problems.add(
            canonical,
            format!("is required when the {provider} provider is configured"),
        );
    }
    picked
}

/// The environment name of the first candidate that is set: why a provider counts as configured.
pub fn first_set(candidates: &[(Source, bool)]) -> Option<&'static str> {
    candidates
        .iter()
        .find(|(_, set)| *set)
        .map(|(source, _)| source.env)
}
