//! The trait every credential source implements.

use std::collections::BTreeMap;

use async_trait::async_trait;

use crate::{CredentialSet, Result, SecretString};

/// A provider's stable name (`static`, `dockerhub`, `ecr`, ...), used in flags, logs and metrics.
pub type ProviderName = &'static str;

/// A source of registry credentials. Providers know nothing of Kubernetes: they produce a
/// [`CredentialSet`] and the binary hands its rendered bytes to the propagator.
///
/// `mint` must either return a complete, non-empty set or an error; callers keep the last good set on
/// error, so a provider must never paper over a failure with an empty or partial result.
#[async_trait]
pub trait Provider: Send + Sync {
    /// Stable provider name.
    fn name(&self) -> ProviderName;

    /// Name of the Secret the credentials are written to in every namespace.
    fn secret_name(&self) -> &str;

    /// Obtains fresh credentials (calling the cloud, reading a file, ...).
    async fn mint(&self) -> Result<CredentialSet>;

    /// A one-line description of the configured source for `config check` (no secrets).
    fn describe(&self) -> String;

    /// Whether the credentials this provider mints are for `image`'s registry, when it knows without
    /// minting (`None`: only a mint can tell). The kubelet plugin answers other registries' images at once
    /// instead of calling a cloud for a credential it would not use.
    fn serves(&self, image: &str) -> Option<bool> {
        let _ = image;
        None
    }

    /// Mints with the pulling pod's own identity: the kubelet's ServiceAccount token mode, for providers
    /// whose service exchanges a Kubernetes ServiceAccount token for a registry credential (ECR through
    /// STS web identity, Quay robot federation). `None`: this provider's credential is the same for
    /// every pod, so [`Provider::mint`] answers.
    async fn mint_for_pod(&self, pod: &PodIdentity) -> Option<Result<CredentialSet>> {
        let _ = pod;
        None
    }
}

/// The pod a kubelet pulls for, in its ServiceAccount token mode (`tokenAttributes` in the
/// CredentialProviderConfig): the pod's ServiceAccount token for the configured audience, and the
/// ServiceAccount annotations the config lists.
#[derive(Debug, Clone)]
pub struct PodIdentity {
    /// The ServiceAccount token; never logged.
    pub token: SecretString,
    /// The ServiceAccount's annotations the kubelet passed on.
    pub annotations: BTreeMap<String, String>,
}
