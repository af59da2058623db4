//! The name of the Secret a provider's credential is written to, checked with Kubernetes' own rule.

use std::fmt;

use crate::ConfigProblems;

/// A valid Secret name: a DNS subdomain (RFC 1123), as the apiserver requires. An invalid name would make
/// every write fail with 422, in every namespace, forever; so it is refused before anything starts.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SecretName(String);

impl SecretName {
    /// `name` if it is a valid Secret name.
    pub fn new(name: impl Into<String>) -> Option<Self> {
        let name = name.into();
        is_dns_subdomain(&name).then_some(Self(name))
    }

    /// Reads a Secret name set through `setting`, recording a problem if it is invalid.
    pub fn read(name: &str, setting: impl fmt::Display, problems: &mut ConfigProblems) -> Option<Self> {
        let valid = Self::new(name);
        if valid.is_none() {
            problems.add(
                setting,
                format!(
                    "{name:?} is not a valid Secret name (lowercase letters, digits, '-' and '.', \
                     starting and ending with a letter or digit, at most 253 characters)"
                ),
            );
        }
        valid
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl From<SecretName> for String {
    fn from(name: SecretName) -> Self {
        name.0
    }
}

impl fmt::Display for SecretName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Kubernetes' `IsDNS1123Subdomain`: the rule for the names of Secrets, ServiceAccounts and Leases.
/// Dot-separated labels of lowercase letters, digits and '-', each starting and ending with a letter or
/// digit, at most 63 characters each and 253 in all.
pub fn is_dns_subdomain(name: &str) -> bool {
    name.len() <= 253
        && !name.is_empty()
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_names_follow_the_dns_subdomain_rules() {
        for good in ["awsecr-cred", "a", "regcreds.pull-1", "0abc"] {
            assert!(is_dns_subdomain(good), "{good}");
        }
        for bad in ["", "Bad_Name", "-x", "x-", "a..b", "a b", &"x".repeat(254)] {
            assert!(!is_dns_subdomain(bad), "{bad}");
        }
    }

    #[test]
    fn an_invalid_name_is_reported_against_the_setting_the_user_wrote() {
        let mut problems = ConfigProblems::default();
        assert!(SecretName::read("Pull_Secret", "REGCREDS_STATIC_SECRET_NAME", &mut problems).is_none());
        assert!(
            problems
                .to_string()
                .contains("REGCREDS_STATIC_SECRET_NAME: \"Pull_Secret\" is not a valid Secret name"),
            "{problems}"
        );
    }
}
