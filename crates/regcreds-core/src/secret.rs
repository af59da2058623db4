//! A string that never shows itself in logs, `Debug` output or error messages.

use std::fmt;

/// A secret value (password, token, private key). `Debug` and `Display` print `***`; the value is only
/// reachable through [`SecretString::expose`], which makes every use of it greppable.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct SecretString(String);

impl SecretString {
    /// Wraps a secret value.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The secret value itself. Call only where the value must leave the process (HTTP request, Secret).
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// True when the secret is the empty string.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// A masked rendering that tells a person whether a value is set and how long it is, nothing more.
    pub fn masked(&self) -> String {
        if self.0.is_empty() {
            "(empty)".to_string()
        } else {
            format!("*** ({} chars)", self.0.chars().count())
        }
    }
}

impl fmt::Debug for SecretString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretString(***)")
    }
}

impl fmt::Display for SecretString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl From<String> for SecretString {
    fn from(value: String) -> Self {
        Self(value)
    }
}

impl From<&str> for SecretString {
    fn from(value: &str) -> Self {
        Self(value.to_string())
    }
}

impl std::str::FromStr for SecretString {
    type Err = std::convert::Infallible;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(Self(s.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_and_display_never_show_the_value() {
        let secret = SecretString::new("hunter2-very-secret");
        assert!(!format!("{secret:?}").contains("hunter2"));
        assert!(!format!("{secret}").contains("hunter2"));
        assert!(!secret.masked().contains("hunter2"));
        assert_eq!(secret.expose(), "hunter2-very-secret");
    }

    #[test]
    fn a_struct_holding_a_secret_does_not_leak_it_through_derive_debug() {
        #[derive(Debug)]
        #[allow(dead_code)]
        struct Holder {
            user: String,
            password: SecretString,
        }
        let holder = Holder {
            user: "alice".into(),
            password: "s3cr3t-pw".into(),
        };
        let printed = format!("{holder:?} {holder:#?}");
        assert!(printed.contains("alice"));
        assert!(!printed.contains("s3cr3t-pw"));
    }
}
