//! What a check found out, for logs, metrics and `config check` output.

use std::{fmt, time::Duration};

use regcreds_core::RegistryHost;

use crate::ImageRef;

/// The verdict on one credential. Reasons name the step and the HTTP status; they never contain the
/// password, a token, or any response body (a body may echo what was sent).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The registry accepted the credential (and allowed pulling the probe image, if one was given).
    Ok,
    /// The registry or its token endpoint refused the credential.
    Unauthorized {
        /// Which step refused it, with status code.
        reason: String,
        /// The registry's own error code (`UNAUTHORIZED`, `DENIED`, ...) when its answer carried one.
        code: Option<String>,
    },
    /// The registry or its token endpoint could not be reached (DNS, connect, TLS, timeout).
    Unreachable {
        /// What failed where.
        reason: String,
    },
    /// Anything else: an unexpected status, a malformed challenge or token response, an unusable key.
    Error {
        /// What went wrong where.
        reason: String,
    },
}

impl Outcome {
    /// Every [`Outcome::label`], e.g. to give a metric one series per outcome.
    pub const LABELS: [&'static str; 4] = ["ok", "unauthorized", "unreachable", "error"];

    /// True for [`Outcome::Ok`].
    pub fn is_ok(&self) -> bool {
        matches!(self, Self::Ok)
    }

    /// A short stable label for metrics: `ok`, `unauthorized`, `unreachable` or `error`.
    pub fn label(&self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::Unauthorized { .. } => "unauthorized",
            Self::Unreachable { .. } => "unreachable",
            Self::Error { .. } => "error",
        }
    }

    /// The reason, if the outcome is a failure.
    pub fn reason(&self) -> Option<&str> {
        match self {
            Self::Ok => None,
            Self::Unauthorized { reason, .. } | Self::Unreachable { reason } | Self::Error { reason } => {
                Some(reason)
            }
        }
    }

    /// The registry's error code of a refusal, if it sent one.
    pub fn registry_code(&self) -> Option<&str> {
        match self {
            Self::Unauthorized { code, .. } => code.as_deref(),
            _ => None,
        }
    }

    pub(crate) fn unauthorized(reason: impl Into<String>, code: Option<String>) -> Self {
        Self::Unauthorized {
            reason: reason.into(),
            code,
        }
    }

    pub(crate) fn unreachable(reason: impl Into<String>) -> Self {
        Self::Unreachable {
            reason: reason.into(),
        }
    }

    pub(crate) fn error(reason: impl Into<String>) -> Self {
        Self::Error {
            reason: reason.into(),
        }
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.reason() {
            None => f.write_str(self.label())?,
            Some(reason) => write!(f, "{}: {reason}", self.label())?,
        }
        match self.registry_code() {
            Some(code) => write!(f, " (registry error {code})"),
            None => Ok(()),
        }
    }
}

/// How the registry wanted to be authenticated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthScheme {
    /// `user:password` sent to the registry itself.
    Basic,
    /// `user:password` exchanged for a token at the registry's token endpoint.
    Bearer,
}

impl fmt::Display for AuthScheme {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Basic => "Basic auth",
            Self::Bearer => "Bearer token",
        })
    }
}

/// The result of checking one credential.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckResult {
    /// The registry key that was checked.
    pub registry: RegistryHost,
    /// The verdict.
    pub outcome: Outcome,
    /// How the registry authenticated the credential; `None` if it never asked (anonymous access) or
    /// the check failed before authenticating.
    pub auth: Option<AuthScheme>,
    /// The probe image that was checked, if any.
    pub probe: Option<ImageRef>,
    /// Wall time of the whole check.
    pub elapsed: Duration,
}

impl fmt::Display for CheckResult {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.registry, self.outcome)?;
        if self.outcome.is_ok() {
            match self.auth {
                Some(scheme) => write!(f, " via {scheme}")?,
                None => f.write_str(" (registry allows anonymous access; the credential was not needed)")?,
            }
            if let Some(probe) = &self.probe {
                write!(f, ", may pull {probe}")?;
            }
        }
        write!(f, " ({} ms)", self.elapsed.as_millis())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_names_the_verdict_the_scheme_and_the_probe() {
        let result = CheckResult {
            registry: RegistryHost::parse("127.0.0.1:5000").expect("valid"),
            outcome: Outcome::Ok,
            auth: Some(AuthScheme::Bearer),
            probe: Some(ImageRef::parse("demo/hello:v1").expect("valid")),
            elapsed: Duration::from_millis(42),
        };
        assert_eq!(
            result.to_string(),
            "127.0.0.1:5000: ok via Bearer token, may pull demo/hello:v1 (42 ms)"
        );
    }

    #[test]
    fn failures_show_their_reason_and_label() {
        let outcome = Outcome::unauthorized("GET /v2/ with Basic auth answered 401", None);
        assert_eq!(
            outcome.to_string(),
            "unauthorized: GET /v2/ with Basic auth answered 401"
        );
        let denied = Outcome::unauthorized("HEAD manifest answered 403", Some("DENIED".into()));
        assert_eq!(
            denied.to_string(),
            "unauthorized: HEAD manifest answered 403 (registry error DENIED)"
        );
        assert_eq!(denied.registry_code(), Some("DENIED"));
        assert_eq!(outcome.label(), "unauthorized");
        assert!(Outcome::LABELS.contains(&outcome.label()));
        assert!(!outcome.is_ok());
    }
}
