//! Picking a value among the canonical variable and its compatible aliases, and reading list values.
//!
//! clap reads one environment variable per argument, so each compatible name (`DOCKER_PRIVATE_REGISTRY_SERVER`,
//! `CONFIG_DOCKERCONFIGJSON`, ...) is its own hidden argument; [`pick`] takes the first that is set and
//! remembers which one it was, so a problem names the variable the user actually wrote.

use crate::{ConfigProblems, Source};

/// A value that can be present but blank. Blank counts as unset, as it did in upmc registry-creds, whose
/// Secrets carry empty keys for providers nobody uses (and whose `secretKeyRef`s are not optional).
pub trait Blank {
    /// True for an empty or whitespace-only value.
    fn is_blank(&self) -> bool;
}

impl Blank for String {
    fn is_blank(&self) -> bool {
        self.trim().is_empty()
    }
}

impl Blank for regcreds_core::SecretString {
    fn is_blank(&self) -> bool {
        self.expose().trim().is_empty()
    }
}

impl Blank for std::path::PathBuf {
    fn is_blank(&self) -> bool {
        self.as_os_str().is_empty()
    }
}

/// True when `value` is present and not blank.
pub fn given<T: Blank>(value: &Option<T>) -> bool {
    value.as_ref().is_some_and(|v| !v.is_blank())
}

/// `value` unless it is blank.
pub fn non_blank<T: Blank + Clone>(value: &Option<T>) -> Option<T> {
    value.as_ref().filter(|v| !v.is_blank()).cloned()
}

/// The first candidate that has a value (canonical names first, compatible aliases after), with its source.
pub fn pick<T: Blank + Clone>(candidates: &[(Source, &Option<T>)]) -> Option<(T, Source)> {
    candidates
        .iter()
        .find_map(|(source, value)| non_blank(value).map(|value| (value, *source)))
}

/// Like [`pick`], recording "is required" when nothing is set, against the name [`unset_name`] gives.
pub fn require<T: Blank + Clone>(
    candidates: &[(Source, &Option<T>)],
    provider: &str,
    compat_in_use: bool,
    problems: &mut ConfigProblems,
) -> Option<(T, Source)> {
    let picked = pick(candidates);
    if picked.is_none() {
        let sources: Vec<Source> = candidates.iter().map(|(source, _)| *source).collect();
        problems.add(
            unset_name(&sources, compat_in_use),
            format!("is required when the {provider} provider is configured"),
        );
    }
    picked
}

/// How a problem names a setting that is not set: the canonical name first (`sources[0]`), followed by
/// its compatible names when the provider is configured through compatible names, so that a user of
/// upmc's or imagepullsecret-patcher's variables reads the name they know:
/// `REGCREDS_STATIC_USER (DOCKER_PRIVATE_REGISTRY_USER)`. Otherwise the canonical variable and flag.
pub fn unset_name(sources: &[Source], compat_in_use: bool) -> String {
    let Some(canonical) = sources.first() else {
        return String::new();
    };
    let compat: Vec<&str> = sources.iter().filter(|s| s.compat).map(|s| s.env).collect();
    if compat_in_use && !compat.is_empty() {
        format!("{} ({})", canonical.env, compat.join(", "))
    } else {
        canonical.to_string()
    }
}

/// Whether any compatible name among the settings that are set is in use.
pub fn uses_compat(set: &[(Source, bool)]) -> bool {
    set.iter().any(|(source, on)| *on && source.compat)
}

/// The environment name of the first candidate that is set: why a provider counts as configured.
pub fn first_set(candidates: &[(Source, bool)]) -> Option<&'static str> {
    candidates
        .iter()
        .find(|(_, set)| *set)
        .map(|(source, _)| source.env)
}

/// The entries of a comma-separated list (`eu-west-1, us-east-1`), trimmed; empty entries are dropped,
/// so a trailing comma or a blank value means fewer entries, not an empty name.
pub fn split_list(value: &str) -> Vec<String> {
    value
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(String::from)
        .collect()
}
