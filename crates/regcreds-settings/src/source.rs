//! Where a setting's value comes from: an environment variable and a flag, canonical or compatible.

use std::fmt;

/// The variable and flag a value can come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Source {
    /// Environment variable name.
    pub env: &'static str,
    /// Long flag name without dashes.
    pub flag: &'static str,
    /// A name of upmc registry-creds or imagepullsecret-patcher, accepted for drop-in compatibility.
    pub compat: bool,
}

impl Source {
    /// A setting readable from `env` or `--flag`.
    pub const fn new(env: &'static str, flag: &'static str) -> Self {
        Self {
            env,
            flag,
            compat: false,
        }
    }

    /// A compatible name (upmc registry-creds, imagepullsecret-patcher) of a setting.
    pub const fn compat(env: &'static str, flag: &'static str) -> Self {
        Self {
            env,
            flag,
            compat: true,
        }
    }
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.flag.is_empty() {
            f.write_str(self.env)
        } else {
            write!(f, "{} (--{})", self.env, self.flag)
        }
    }
}
