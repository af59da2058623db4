//! What the binary configures, and the checks run on it before any network call.

use std::{path::PathBuf, time::Duration};

use regcreds_core::{BareHostError, RegistryHost};

use crate::{DEFAULT_REGISTRY, DEFAULT_SECRET, DEFAULT_TOKEN_FILE, Error, Result};

/// Everything a [`QuayProvider`](crate::QuayProvider) needs.
#[derive(Debug, Clone)]
pub struct QuaySettings {
    /// Secret written in every namespace (default `quay-secret`); callers check it is a valid Secret name
    /// (`regcreds_settings::SecretName` does, in the binary).
    pub secret_name: String,
    /// The Quay host: the `auths` key and, unless `federation_url` is set, where the exchange goes
    /// (`quay.io`, or a self-hosted `quay.example.com[:port]`).
    pub registry: String,
    /// The federated robot account, `<organization or user>+<robot shortname>`.
    pub robot: String,
    /// The projected ServiceAccount token, re-read on every mint.
    pub token_file: PathBuf,
    /// Base URL of the exchange instead of `https://<registry>` (a separate API host, tests).
    pub federation_url: Option<String>,
    /// PEM file of CA certificates trusted in addition to the system roots (self-hosted Quay).
    pub ca_file: Option<PathBuf>,
    /// Upper bound for the exchange (default 30 s). Must not be zero.
    pub timeout: Duration,
    /// In the kubelet plugin's ServiceAccount token mode: the ServiceAccount annotation naming the robot a
    /// pod's token is exchanged for (without it, or on a ServiceAccount without it, [`Self::robot`]). Quay
    /// decides whether that ServiceAccount may act as that robot (the robot's federation entries).
    pub robot_annotation: Option<String>,
}

/// The settings after validation.
#[derive(Debug, Clone)]
pub(crate) struct Validated {
    pub(crate) registry: RegistryHost,
    /// `…/oauth2/federation/robot/token`.
    pub(crate) exchange_url: String,
}

impl QuaySettings {
    /// Settings with defaults for everything but the robot account.
    pub fn new(robot: impl Into<String>) -> Self {
        Self {
            secret_name: DEFAULT_SECRET.to_string(),
            registry: DEFAULT_REGISTRY.to_string(),
            robot: robot.into(),
            token_file: PathBuf::from(DEFAULT_TOKEN_FILE),
            federation_url: None,
            ca_file: None,
            timeout: Duration::from_secs(30),
            robot_annotation: None,
        }
    }

    /// Checks every setting but the token file (read by the provider).
    pub(crate) fn validated(&self) -> Result<Validated> {
        validate_robot(self.robot.trim())?;
        let registry = registry_host(&self.registry)?;
        let base = match &self.federation_url {
            Some(url) => validate_url(url)?,
            None => format!("https://{}", registry.authority()),
        };
        Ok(Validated {
            registry,
            exchange_url: format!("{base}/oauth2/federation/robot/token"),
        })
    }
}

/// `<namespace>+<shortname>`, as Quay names robots (`util/names.py`: `parse_robot_username` splits on
/// the `+`). The name becomes the registry user name, so it must not contain ':' either.
pub(crate) fn validate_robot(robot: &str) -> Result<()> {
    let invalid = |reason| {
        Err(Error::InvalidRobot {
            robot: robot.to_string(),
            reason,
        })
    };
    let Some((namespace, shortname)) = robot.split_once('+') else {
        return invalid("must be the full robot name, <organization>+<robot> (e.g. myorg+puller)");
    };
    let part_ok = |part: &str| {
        !part.is_empty()
            && part
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '_' | '.' | '-'))
    };
    if !part_ok(namespace) || !part_ok(shortname) {
        return invalid("both parts must be non-empty lowercase letters, digits, '_', '.' or '-'");
    }
    Ok(())
}

/// A bare `host[:port]` (a leading `https://` is accepted and dropped).
fn registry_host(raw: &str) -> Result<RegistryHost> {
    RegistryHost::parse_bare_host(raw).map_err(|e| Error::InvalidRegistry {
        registry: regcreds_core::redact_registry(raw),
        reason: match e {
            BareHostError::Invalid(e) => e.to_string(),
            BareHostError::Scheme | BareHostError::Path => {
                "must be a Quay host such as quay.io, without a scheme or path".into()
            }
        },
    })
}

/// The base URL without a trailing slash.
fn validate_url(url: &str) -> Result<String> {
    let url = url.trim().trim_end_matches('/');
    if regcreds_core::is_http_url(url) {
        Ok(url.to_string())
    } else {
        Err(Error::InvalidUrl(regcreds_core::redact_registry(url)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_exchange_goes_to_the_quay_host_unless_redirected() {
        let valid = QuaySettings::new("myorg+puller").validated().expect("valid");
        assert_eq!(valid.registry.as_str(), "quay.io");
        assert_eq!(
            valid.exchange_url,
            "https://quay.io/oauth2/federation/robot/token"
        );
        let self_hosted = QuaySettings {
            registry: "https://quay.example.com:8443/".into(),
            ..QuaySettings::new("myorg+puller")
        };
        let valid = self_hosted.validated().expect("valid");
        assert_eq!(valid.registry.as_str(), "quay.example.com:8443");
        assert_eq!(
            valid.exchange_url,
            "https://quay.example.com:8443/oauth2/federation/robot/token"
        );
        let redirected = QuaySettings {
            federation_url: Some("https://127.0.0.1:9443/".into()),
            ..QuaySettings::new("myorg+puller")
        };
        assert_eq!(
            redirected.validated().expect("valid").exchange_url,
            "https://127.0.0.1:9443/oauth2/federation/robot/token"
        );
    }

    #[test]
    fn a_robot_must_be_the_full_name() {
        for good in ["myorg+puller", "user_1+ci.bot", "a+b"] {
            assert!(QuaySettings::new(good).validated().is_ok(), "{good}");
        }
        for bad in [
            "puller",
            "+puller",
            "myorg+",
            "MyOrg+Puller",
            "org+pu:ller",
            "org+a b",
        ] {
            let err = QuaySettings::new(bad).validated().expect_err(bad);
            assert!(matches!(err, Error::InvalidRobot { .. }), "{bad}: {err}");
        }
    }

    #[test]
    fn bad_hosts_and_urls_are_rejected() {
        let base = || QuaySettings::new("myorg+puller");
        for bad in ["quay.io/myorg", "http://quay.io", " "] {
            let s = QuaySettings {
                registry: bad.into(),
                ..base()
            };
            assert!(
                matches!(s.validated(), Err(Error::InvalidRegistry { .. })),
                "{bad}"
            );
        }
        let s = QuaySettings {
            federation_url: Some("quay.io".into()),
            ..base()
        };
        assert!(matches!(s.validated(), Err(Error::InvalidUrl(_))));
    }
}
