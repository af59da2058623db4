//! What the binary configures, and the checks run on it before any network call.

use std::{path::PathBuf, time::Duration};

use regcreds_core::{RegistryHost, SecretString};

use crate::{DEFAULT_REGISTRY, DEFAULT_SCOPE, DEFAULT_SECRET, Error, Result};

/// Everything a [`GcrProvider`](crate::GcrProvider) needs.
#[derive(Debug, Clone)]
pub struct GcrSettings {
    /// Secret written in every namespace (default `gcr-secret`); callers check it is a valid Secret name
    /// (`regcreds_settings::SecretName` does, in the binary).
    pub secret_name: String,
    /// Registry keys the token is written for, e.g. `gcr.io`, `us.gcr.io`, `europe-docker.pkg.dev`,
    /// or upmc's `https://gcr.io` (kept as written). Empty means `gcr.io` alone.
    pub registries: Vec<String>,
    /// Where the access token comes from.
    pub credentials: GcrCredentials,
    /// OAuth2 scopes (default `https://www.googleapis.com/auth/cloud-platform`).
    pub scopes: Vec<String>,
    /// Metadata server base URL, e.g. `http://169.254.169.254`. Default: `http://$GCE_METADATA_HOST`,
    /// else `http://metadata.google.internal`.
    pub metadata_url: Option<String>,
    /// Upper bound for one token request (default 30 s). Must not be zero.
    pub timeout: Duration,
    /// Kubelet plugin, ServiceAccount token mode: the workload identity pool provider pods' tokens are
    /// federated with (`//iam.googleapis.com/projects/<number>/locations/global/workloadIdentityPools/
    /// <pool>/providers/<provider>`). Without it, every pod gets the provider's own token.
    pub workload_identity_provider: Option<String>,
    /// Google's STS token endpoint (tests; default `https://sts.googleapis.com/v1/token`).
    pub sts_url: Option<String>,
    /// Google's IAM Credentials API base (tests; default `https://iamcredentials.googleapis.com`).
    pub iam_credentials_url: Option<String>,
}

/// The source of the access token.
#[derive(Debug, Clone)]
pub enum GcrCredentials {
    /// A service-account key JSON document itself (upmc's `GCR_APPLICATION_DEFAULT_CREDENTIALS`).
    KeyJson(SecretString),
    /// A service-account key file, re-read on every mint so a rotated, mounted Secret is picked up.
    KeyFile(PathBuf),
    /// The metadata server: the node's service account on GCE, the pod's with GKE workload identity.
    Metadata,
    /// `GOOGLE_APPLICATION_CREDENTIALS` (a key file) when set, else the metadata server.
    ApplicationDefault,
}

impl GcrSettings {
    /// Settings with defaults for everything but the credentials.
    pub fn new(credentials: GcrCredentials) -> Self {
        Self {
            secret_name: DEFAULT_SECRET.to_string(),
            registries: Vec::new(),
            credentials,
            scopes: vec![DEFAULT_SCOPE.to_string()],
            metadata_url: None,
            timeout: Duration::from_secs(30),
            workload_identity_provider: None,
            sts_url: None,
            iam_credentials_url: None,
        }
    }

    /// Checks the settings (not the key: that needs I/O) and returns the registry keys.
    pub(crate) fn validated_registries(&self) -> Result<Vec<RegistryHost>> {
        if self.scopes().is_empty() {
            return Err(Error::NoScope);
        }
        if let Some(url) = &self.metadata_url {
            let rest = url
                .strip_prefix("http://")
                .or_else(|| url.strip_prefix("https://"));
            if !matches!(rest, Some(host) if !host.is_empty() && !host.starts_with('/')) {
                return Err(Error::InvalidMetadataUrl(regcreds_core::redact_registry(url)));
            }
        }
        let mut registries: Vec<RegistryHost> = Vec::new();
        let configured = self.registries.iter().map(|r| r.trim()).filter(|r| !r.is_empty());
        for raw in configured {
            let host = RegistryHost::parse(raw).map_err(Error::Registry)?;
            if !registries.contains(&host) {
                registries.push(host);
            }
        }
        if registries.is_empty() {
            registries.push(RegistryHost::parse(DEFAULT_REGISTRY).map_err(Error::Registry)?);
        }
        Ok(registries)
    }

    /// The non-blank scopes.
    pub(crate) fn scopes(&self) -> Vec<String> {
        self.scopes
            .iter()
            .map(|s| s.trim())
            .filter(|s| !s.is_empty())
            .map(String::from)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> GcrSettings {
        GcrSettings::new(GcrCredentials::Metadata)
    }

    fn registries(settings: GcrSettings) -> Result<Vec<String>> {
        settings
            .validated_registries()
            .map(|r| r.iter().map(ToString::to_string).collect())
    }

    #[test]
    fn no_registry_means_gcr_io() {
        assert_eq!(registries(settings()).expect("valid"), vec!["gcr.io"]);
    }

    #[test]
    fn configured_registries_replace_the_default_and_keep_their_form() {
        let settings = GcrSettings {
            registries: vec![
                "https://gcr.io".into(),
                "europe-docker.pkg.dev".into(),
                " ".into(),
                "https://gcr.io".into(),
            ],
            ..settings()
        };
        assert_eq!(
            registries(settings).expect("valid"),
            vec!["https://gcr.io", "europe-docker.pkg.dev"]
        );
    }

    #[test]
    fn invalid_settings_are_named() {
        assert!(matches!(
            registries(GcrSettings {
                registries: vec!["a b".into()],
                ..settings()
            }),
            Err(Error::Registry(_))
        ));
        assert!(matches!(
            registries(GcrSettings {
                scopes: vec![" ".into()],
                ..settings()
            }),
            Err(Error::NoScope)
        ));
        let bad_url = GcrSettings {
            metadata_url: Some("169.254.169.254".into()),
            ..settings()
        };
        assert!(matches!(registries(bad_url), Err(Error::InvalidMetadataUrl(_))));
    }
}
