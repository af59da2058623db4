//! Settings of the `gcr` provider (Google Container Registry and Artifact Registry): an OAuth2 access
//! token as the password of user `oauth2accesstoken`. Compatible with upmc registry-creds'
//! `GCR_APPLICATION_DEFAULT_CREDENTIALS` (the key JSON itself) and `GCR_URL` / `gcrurl`.

use std::{path::PathBuf, sync::Arc};

use async_trait::async_trait;
use clap::Args;
use regcreds_core::SecretString;
use regcreds_settings::{
    ConfigProblems, ConfiguredProvider, Enablement, ProviderConfig, Schedule, SecretName, Source, first_set,
    given, non_blank, pick, split_list, timeout_seconds,
};

use crate::{DEFAULT_SECRET, Error, GcrCredentials, GcrProvider, GcrSettings};

const KEY: Source = Source::new("REGCREDS_GCR_KEY", "gcr-key");
const COMPAT_KEY: Source = Source::compat(
    "GCR_APPLICATION_DEFAULT_CREDENTIALS",
    "gcr-application-default-credentials",
);
const KEY_FILE: Source = Source::new("REGCREDS_GCR_KEY_FILE", "gcr-key-file");
const METADATA: Source = Source::new("REGCREDS_GCR_USE_METADATA", "gcr-use-metadata");
const HOSTS: Source = Source::new("REGCREDS_GCR_HOSTS", "gcr-hosts");
const COMPAT_URL: Source = Source::compat("GCR_URL", "gcr-url");
const COMPAT_URL_LOWER: Source = Source::compat("gcrurl", "gcrurl");
const METADATA_URL: Source = Source::new("REGCREDS_GCR_METADATA_URL", "gcr-metadata-url");
const COMPAT_METADATA_HOST: Source = Source::compat("GCE_METADATA_HOST", "gce-metadata-host");
/// Google's own variable for a key file, used when nothing else is configured.
const APPLICATION_CREDENTIALS: Source = Source::compat("GOOGLE_APPLICATION_CREDENTIALS", "");
const SCHEDULE: Source = Source::new("REGCREDS_GCR_SCHEDULE", "gcr-schedule");
const TIMEOUT: Source = Source::new("REGCREDS_GCR_TIMEOUT_SECONDS", "gcr-timeout-seconds");
const SECRET_NAME: Source = Source::new("REGCREDS_GCR_SECRET_NAME", "gcr-secret-name");

/// `gcr` provider: ~1-hour access tokens, refreshed halfway through their life.
#[derive(Args, Debug, Clone)]
#[command(
    next_help_heading = "Provider: gcr (Google; upmc GCR_APPLICATION_DEFAULT_CREDENTIALS / GCR_URL accepted)"
)]
pub struct GcrArgs {
    /// Service-account key JSON itself.
    #[arg(long = "gcr-key", env = "REGCREDS_GCR_KEY", hide_env_values = true)]
    gcr_key: Option<SecretString>,
    #[arg(
        long = "gcr-application-default-credentials",
        env = "GCR_APPLICATION_DEFAULT_CREDENTIALS",
        hide = true,
        hide_env_values = true
    )]
    gcr_compat_key: Option<SecretString>,
    /// Service-account key file (e.g. a mounted Secret), re-read on every mint.
    #[arg(long = "gcr-key-file", env = "REGCREDS_GCR_KEY_FILE")]
    gcr_key_file: Option<PathBuf>,
    /// Use the metadata server (GCE node identity or GKE workload identity) instead of a key.
    #[arg(long = "gcr-use-metadata", env = "REGCREDS_GCR_USE_METADATA")]
    gcr_use_metadata: bool,
    /// Registry hosts the token is written for, comma-separated [default: gcr.io].
    #[arg(long = "gcr-hosts", env = "REGCREDS_GCR_HOSTS")]
    gcr_hosts: Option<String>,
    #[arg(long = "gcr-url", env = "GCR_URL", hide = true)]
    gcr_compat_url: Option<String>,
    #[arg(long = "gcrurl", env = "gcrurl", hide = true)]
    gcr_compat_url_lower: Option<String>,
    /// Metadata server base URL [default: http://$GCE_METADATA_HOST or http://metadata.google.internal].
    #[arg(long = "gcr-metadata-url", env = "REGCREDS_GCR_METADATA_URL")]
    gcr_metadata_url: Option<String>,
    #[arg(long = "gce-metadata-host", env = "GCE_METADATA_HOST", hide = true)]
    gcr_compat_metadata_host: Option<String>,
    /// Name of the Secret written to every namespace.
    #[arg(long = "gcr-secret-name", env = "REGCREDS_GCR_SECRET_NAME", default_value = DEFAULT_SECRET)]
    gcr_secret_name: String,
    /// Refresh schedule (6-field cron); tokens are also refreshed halfway through their life.
    #[arg(
        long = "gcr-schedule",
        env = "REGCREDS_GCR_SCHEDULE",
        default_value = "0 */30 * * * *"
    )]
    gcr_schedule: String,
    /// Upper bound for one token request, in seconds.
    #[arg(
        long = "gcr-timeout-seconds",
        env = "REGCREDS_GCR_TIMEOUT_SECONDS",
        default_value_t = 30
    )]
    gcr_timeout_seconds: u64,
    /// Kubelet plugin, ServiceAccount token mode: the workload identity pool provider pods' tokens are
    /// federated with (`//iam.googleapis.com/projects/<number>/locations/global/workloadIdentityPools/<pool>/providers/<provider>`).
    #[arg(
        long = "gcr-workload-identity-provider",
        env = "REGCREDS_GCR_WORKLOAD_IDENTITY_PROVIDER"
    )]
    gcr_workload_identity_provider: Option<String>,
    /// Google's STS endpoint (tests) [default: https://sts.googleapis.com/v1/token].
    #[arg(long = "gcr-sts-url", env = "REGCREDS_GCR_STS_URL")]
    gcr_sts_url: Option<String>,
    /// Google's IAM Credentials API (tests) [default: https://iamcredentials.googleapis.com].
    #[arg(long = "gcr-iam-credentials-url", env = "REGCREDS_GCR_IAM_CREDENTIALS_URL")]
    gcr_iam_credentials_url: Option<String>,
}

#[async_trait]
impl ProviderConfig for GcrArgs {
    fn name(&self) -> &'static str {
        "gcr"
    }

    /// Builds the provider if a key, key file, metadata use or host list is configured.
    async fn build(&self, problems: &mut ConfigProblems) -> Enablement {
        let key = pick(&[(KEY, &self.gcr_key), (COMPAT_KEY, &self.gcr_compat_key)]);
        let hosts = pick(&[
            (HOSTS, &self.gcr_hosts),
            (COMPAT_URL, &self.gcr_compat_url),
            (COMPAT_URL_LOWER, &self.gcr_compat_url_lower),
        ]);
        let set = [
            (key.as_ref().map_or(KEY, |k| k.1), key.is_some()),
            (KEY_FILE, given(&self.gcr_key_file)),
            (METADATA, self.gcr_use_metadata),
            (hosts.as_ref().map_or(HOSTS, |h| h.1), hosts.is_some()),
        ];
        let Some(configured_by) = first_set(&set) else {
            return Enablement::Disabled(format!("set {}, {} or {}", KEY_FILE.env, KEY.env, METADATA.env));
        };
        let credentials = match (key.clone(), non_blank(&self.gcr_key_file), self.gcr_use_metadata) {
            (Some((json, _)), None, false) => GcrCredentials::KeyJson(json),
            (None, Some(path), false) => GcrCredentials::KeyFile(path),
            (None, None, true) => GcrCredentials::Metadata,
            (None, None, false) => GcrCredentials::ApplicationDefault,
            _ => {
                let chosen: Vec<&str> = set[..3]
                    .iter()
                    .filter(|(_, on)| *on)
                    .map(|(s, _)| s.env)
                    .collect();
                problems.add(
                    chosen.join(" and "),
                    format!(
                        "set only one of {} (or {}), {} and {}",
                        KEY.env, COMPAT_KEY.env, KEY_FILE.env, METADATA.env
                    ),
                );
                return Enablement::Invalid;
            }
        };
        let schedule = Schedule::parse(&self.gcr_schedule, SCHEDULE, problems);
        let timeout = timeout_seconds(self.gcr_timeout_seconds, TIMEOUT, problems);
        let secret_name = SecretName::read(&self.gcr_secret_name, SECRET_NAME.env, problems);
        let metadata_url = pick(&[(METADATA_URL, &self.gcr_metadata_url)]).or_else(|| {
            non_blank(&self.gcr_compat_metadata_host)
                .map(|host| (format!("http://{}", host.trim()), COMPAT_METADATA_HOST))
        });
        let (Some(schedule), Some(timeout), Some(secret_name)) = (schedule, timeout, secret_name) else {
            return Enablement::Invalid;
        };
        let mut settings = GcrSettings::new(credentials.clone());
        settings.secret_name = secret_name.into();
        settings.registries = hosts.as_ref().map(|(h, _)| split_list(h)).unwrap_or_default();
        settings.metadata_url = metadata_url.as_ref().map(|(url, _)| url.clone());
        settings.timeout = timeout;
        settings.workload_identity_provider = non_blank(&self.gcr_workload_identity_provider);
        settings.sts_url = non_blank(&self.gcr_sts_url);
        settings.iam_credentials_url = non_blank(&self.gcr_iam_credentials_url);
        match GcrProvider::new(settings).await {
            Ok(provider) => Enablement::Enabled(ConfiguredProvider::new(
                Arc::new(provider),
                schedule,
                format!("{configured_by} is set"),
            )),
            Err(error) => {
                let blamed = match &error {
                    Error::Registry(_) => hosts.map_or(HOSTS, |h| h.1),
                    Error::InvalidMetadataUrl(_) => metadata_url.map_or(METADATA_URL, |m| m.1),
                    Error::InvalidStsUrl(_) => Source::new("REGCREDS_GCR_STS_URL", "gcr-sts-url"),
                    Error::InvalidIamCredentialsUrl(_) => {
                        Source::new("REGCREDS_GCR_IAM_CREDENTIALS_URL", "gcr-iam-credentials-url")
                    }
                    Error::UnreadableKeyFile { .. } | Error::Key { .. } => match credentials {
                        GcrCredentials::KeyJson(_) => key.map_or(KEY, |k| k.1),
                        GcrCredentials::ApplicationDefault => APPLICATION_CREDENTIALS,
                        _ => KEY_FILE,
                    },
                    _ => configured_source(&set),
                };
                problems.add(blamed, error);
                Enablement::Invalid
            }
        }
    }
}

fn configured_source(set: &[(Source, bool)]) -> Source {
    set.iter().find(|(_, on)| *on).map_or(KEY, |(s, _)| *s)
}
