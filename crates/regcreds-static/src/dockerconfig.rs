//! A whole dockerconfigjson, inline or re-read from a file on every mint.

use std::path::PathBuf;

use async_trait::async_trait;
use regcreds_core::{CredentialSet, DockerConfig, Provider, ProviderName, SecretString};

use crate::{Error, Result};

/// Where the dockerconfigjson comes from.
#[derive(Debug, Clone)]
pub enum DockerConfigSource {
    /// The document itself (e.g. `CONFIG_DOCKERCONFIGJSON`).
    Inline(SecretString),
    /// A file, typically a mounted Secret (e.g. `CONFIG_DOCKERCONFIGJSONPATH`); re-read on every mint.
    File(PathBuf),
}

/// Provides the credentials of a user-supplied dockerconfigjson (provider name `dockerconfigjson`).
#[derive(Debug, Clone)]
pub struct DockerConfigProvider {
    secret_name: String,
    source: DockerConfigSource,
}

impl DockerConfigProvider {
    /// Checks the source once (the file must exist and hold a valid document) so that bad
    /// configuration fails at start-up instead of at the first mint.
    pub async fn new(secret_name: impl Into<String>, source: DockerConfigSource) -> Result<Self> {
        let provider = Self {
            secret_name: secret_name.into(),
            source,
        };
        provider.load().await?;
        Ok(provider)
    }

    /// The file this provider reads, if any: the binary watches it for changes.
    pub fn watched_file(&self) -> Option<&PathBuf> {
        match &self.source {
            DockerConfigSource::File(path) => Some(path),
            DockerConfigSource::Inline(_) => None,
        }
    }

    async fn load(&self) -> Result<CredentialSet> {
        let (origin, bytes) = match &self.source {
            DockerConfigSource::Inline(json) => ("inline".to_string(), json.expose().as_bytes().to_vec()),
            DockerConfigSource::File(path) => {
                let bytes = regcreds_core::read_bounded_async(path)
                    .await
                    .map_err(|source| Error::UnreadableFile { source })?;
                (path.display().to_string(), bytes)
            }
        };
        let config = DockerConfig::parse(&bytes).map_err(|source| Error::DockerConfig { origin, source })?;
        Ok(config.into_credentials())
    }
}

#[async_trait]
impl Provider for DockerConfigProvider {
    fn name(&self) -> ProviderName {
        "dockerconfigjson"
    }

    fn secret_name(&self) -> &str {
        &self.secret_name
    }

    async fn mint(&self) -> regcreds_core::Result<CredentialSet> {
        // A broken file is a configuration problem, yet it may be mid-update by kubelet: retrying is right.
        self.load()
            .await
            .map_err(|e| regcreds_core::Error::transient("dockerconfigjson", e.to_string()))
    }

    fn describe(&self) -> String {
        match &self.source {
            DockerConfigSource::Inline(_) => "inline dockerconfigjson".to_string(),
            DockerConfigSource::File(path) => {
                format!("dockerconfigjson file {} (re-read on change)", path.display())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOC_A: &str = r#"{"auths":{"a.example":{"username":"u","password":"first-pw"}}}"#;
    const DOC_B: &str = r#"{"auths":{"a.example":{"username":"u","password":"second-pw"}}}"#;

    #[tokio::test]
    async fn a_file_changed_on_disk_is_picked_up_by_the_next_mint() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join(".dockerconfigjson");
        std::fs::write(&path, DOC_A).expect("write");
        let provider = DockerConfigProvider::new("image-pull-secret", DockerConfigSource::File(path.clone()))
            .await
            .expect("ok");
        let first = provider.mint().await.expect("mint");
        std::fs::write(&path, DOC_B).expect("rewrite");
        let second = provider.mint().await.expect("mint");
        assert_ne!(first.render(), second.render());
        assert!(String::from_utf8_lossy(&second.render()).contains("second-pw"));
    }

    #[tokio::test]
    async fn a_file_broken_later_fails_the_mint_without_echoing_content() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("cfg.json");
        std::fs::write(&path, DOC_A).expect("write");
        let provider = DockerConfigProvider::new("s", DockerConfigSource::File(path.clone()))
            .await
            .expect("ok");
        std::fs::write(&path, r#"{"auths":{"a.example":{"password":"leaky-pw""#).expect("rewrite");
        let err = provider.mint().await.expect_err("broken file");
        assert!(err.is_transient());
        assert!(!err.to_string().contains("leaky-pw"), "{err}");
    }

    #[tokio::test]
    async fn a_missing_file_is_rejected_at_construction() {
        let result =
            DockerConfigProvider::new("s", DockerConfigSource::File("/nonexistent/x.json".into())).await;
        assert!(matches!(result, Err(Error::UnreadableFile { .. })));
    }

    #[tokio::test]
    async fn an_invalid_inline_document_is_rejected_at_construction() {
        let result =
            DockerConfigProvider::new("s", DockerConfigSource::Inline(r#"{"auths":{}}"#.into())).await;
        assert!(matches!(result, Err(Error::DockerConfig { .. })));
    }
}
