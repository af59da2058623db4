//! Settings of the `dockerconfigjson` provider: a whole dockerconfigjson, inline or from a file.
//! Compatible with imagepullsecret-patcher's `CONFIG_DOCKERCONFIGJSON`, `CONFIG_DOCKERCONFIGJSONPATH` and
//! `CONFIG_SECRETNAME`.

use std::{path::PathBuf, sync::Arc};

use async_trait::async_trait;
use clap::Args;
use regcreds_core::SecretString;
use regcreds_settings::{
    ConfigProblems, ConfiguredProvider, Enablement, ProviderConfig, Schedule, SecretName, Source, first_set,
    pick,
};

use crate::{DEFAULT_DOCKERCONFIG_SECRET, DockerConfigProvider, DockerConfigSource, Error};

const JSON: Source = Source::new("REGCREDS_DOCKERCONFIGJSON", "dockerconfigjson");
const COMPAT_JSON: Source = Source::compat("CONFIG_DOCKERCONFIGJSON", "config-dockerconfigjson");
const PATH: Source = Source::new("REGCREDS_DOCKERCONFIGJSON_PATH", "dockerconfigjson-path");
const COMPAT_PATH: Source = Source::compat("CONFIG_DOCKERCONFIGJSONPATH", "config-dockerconfigjsonpath");
const SCHEDULE: Source = Source::new("REGCREDS_DOCKERCONFIGJSON_SCHEDULE", "dockerconfigjson-schedule");
const SECRET_NAME: Source = Source::new(
    "REGCREDS_DOCKERCONFIGJSON_SECRET_NAME",
    "dockerconfigjson-secret-name",
);
const COMPAT_SECRET_NAME: Source = Source::compat("CONFIG_SECRETNAME", "secretname");

/// `dockerconfigjson` provider: credentials for any registries from a dockerconfigjson document.
#[derive(Args, Debug, Clone)]
#[command(next_help_heading = "Provider: dockerconfigjson (imagepullsecret-patcher CONFIG_* accepted)")]
pub struct DockerConfigArgs {
    /// The dockerconfigjson document itself (`{"auths":{...}}`).
    #[arg(
        long = "dockerconfigjson",
        env = "REGCREDS_DOCKERCONFIGJSON",
        hide_env_values = true
    )]
    dcj_json: Option<SecretString>,
    #[arg(
        long = "config-dockerconfigjson",
        env = "CONFIG_DOCKERCONFIGJSON",
        hide = true,
        hide_env_values = true
    )]
    dcj_compat_json: Option<SecretString>,
    /// A file holding the dockerconfigjson, e.g. a mounted Secret; changes are picked up without restart.
    #[arg(long = "dockerconfigjson-path", env = "REGCREDS_DOCKERCONFIGJSON_PATH")]
    dcj_path: Option<PathBuf>,
    #[arg(
        long = "config-dockerconfigjsonpath",
        env = "CONFIG_DOCKERCONFIGJSONPATH",
        hide = true
    )]
    dcj_compat_path: Option<PathBuf>,
    /// Name of the Secret written to every namespace [default: image-pull-secret].
    #[arg(
        long = "dockerconfigjson-secret-name",
        env = "REGCREDS_DOCKERCONFIGJSON_SECRET_NAME"
    )]
    dcj_secret_name: Option<String>,
    #[arg(long = "secretname", env = "CONFIG_SECRETNAME", hide = true)]
    dcj_compat_secret_name: Option<String>,
    /// How often the source is re-read (6-field cron). Only a changed document causes writes.
    #[arg(
        long = "dockerconfigjson-schedule",
        env = "REGCREDS_DOCKERCONFIGJSON_SCHEDULE",
        default_value = "*/10 * * * * *"
    )]
    dcj_schedule: String,
}

#[async_trait]
impl ProviderConfig for DockerConfigArgs {
    fn name(&self) -> &'static str {
        "dockerconfigjson"
    }

    /// Builds the provider if an inline document or a path is given (not both).
    async fn build(&self, problems: &mut ConfigProblems) -> Enablement {
        let inline = pick(&[(JSON, &self.dcj_json), (COMPAT_JSON, &self.dcj_compat_json)]);
        let path = pick(&[(PATH, &self.dcj_path), (COMPAT_PATH, &self.dcj_compat_path)]);
        let set = [(JSON, inline.is_some()), (PATH, path.is_some())];
        let Some(_) = first_set(&set) else {
            return Enablement::Disabled(format!("set {} or {}", PATH.env, JSON.env));
        };
        let schedule = Schedule::parse(&self.dcj_schedule, SCHEDULE, problems);
        let (source, origin) = match (inline, path) {
            (Some((_, json_source)), Some((_, path_source))) => {
                problems.add(
                    json_source,
                    format!("cannot be combined with {path_source}: set only one"),
                );
                return Enablement::Invalid;
            }
            (Some((json, source)), None) => (DockerConfigSource::Inline(json), source),
            (None, Some((path, source))) => (DockerConfigSource::File(path), source),
            (None, None) => return Enablement::Invalid,
        };
        let (secret_name, name_source) = pick(&[
            (SECRET_NAME, &self.dcj_secret_name),
            (COMPAT_SECRET_NAME, &self.dcj_compat_secret_name),
        ])
        .unwrap_or_else(|| (DEFAULT_DOCKERCONFIG_SECRET.to_string(), SECRET_NAME));
        let Some(secret_name) = SecretName::read(&secret_name, name_source, problems) else {
            return Enablement::Invalid;
        };
        let provider = match DockerConfigProvider::new(String::from(secret_name), source).await {
            Ok(provider) => provider,
            Err(error) => {
                problems.add(origin, describe(&error));
                return Enablement::Invalid;
            }
        };
        let Some(schedule) = schedule else {
            return Enablement::Invalid;
        };
        let reason = format!("{} is set", origin.env);
        Enablement::Enabled(ConfiguredProvider::new(Arc::new(provider), schedule, reason))
    }
}

/// The provider's message already names the file; for inline documents "inline" adds nothing.
fn describe(error: &Error) -> String {
    match error {
        Error::DockerConfig { origin, source } if origin == "inline" => format!("dockerconfigjson {source}"),
        other => other.to_string(),
    }
}
