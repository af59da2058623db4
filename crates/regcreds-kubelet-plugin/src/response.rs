//! `CredentialProviderResponse`: what the plugin writes on stdout.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use regcreds_core::{CredentialSet, reference::KeyPattern};
use serde::Serialize;

use crate::Request;

/// How the kubelet caches an answer (`PluginCacheKeyType` in `types.go`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum CacheKeyType {
    /// For this image only.
    Image,
    /// For every image of the image's registry (`parseRegistry`: the part before the first `/`).
    Registry,
    /// For every image.
    Global,
}

/// One credential, under a key the kubelet matches like a dockerconfigjson key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AuthConfig {
    /// User name.
    pub username: String,
    /// Password or token.
    pub password: String,
}

/// The answer. Written with exactly the kubelet's field names: it decodes strictly.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Response {
    api_version: String,
    kind: &'static str,
    /// How the kubelet keys its cache of this answer.
    pub cache_key_type: CacheKeyType,
    /// How long the kubelet may reuse it: Go duration syntax (`"3600s"`); absent means the config's
    /// `defaultCacheDuration`, `"0s"` means not at all.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cache_duration: Option<String>,
    /// The credentials, by registry key.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub auth: BTreeMap<String, AuthConfig>,
}

impl Response {
    /// The credentials of `minted` the kubelet would use for the requested image, cached per registry
    /// for half their remaining life (so a pull never starts with a credential about to expire, the
    /// same margin regcreds' controller refreshes at), or for the config's `defaultCacheDuration` when
    /// none of them expires. No credential for the image gives an empty answer, not cached, so that
    /// the kubelet goes on to its other keyrings.
    pub fn answer(request: &Request, minted: &CredentialSet, now: DateTime<Utc>) -> Self {
        let covering: Vec<_> = minted
            .iter()
            .filter(|credential| KeyPattern::parse(credential.registry.as_str()).covers(&request.image))
            .collect();
        if covering.is_empty() {
            return Self::empty(request);
        }
        let expiry = covering
            .iter()
            .filter_map(|credential| credential.expires_at)
            .min();
        let cache_duration = expiry.map(|expires_at| {
            let half_life = (expires_at - now).num_seconds().max(0) / 2;
            format!("{half_life}s")
        });
        let auth = covering
            .into_iter()
            .map(|credential| {
                let auth = AuthConfig {
                    username: credential.username.clone(),
                    password: credential.password.expose().to_string(),
                };
                (credential.registry.as_str().to_string(), auth)
            })
            .collect();
        Self {
            api_version: request.api_version.clone(),
            kind: "CredentialProviderResponse",
            cache_key_type: CacheKeyType::Registry,
            cache_duration,
            auth,
        }
    }

    /// No credential for this image, and not cached: the kubelet tries its other keyrings.
    pub fn empty(request: &Request) -> Self {
        Self {
            api_version: request.api_version.clone(),
            kind: "CredentialProviderResponse",
            cache_key_type: CacheKeyType::Registry,
            cache_duration: Some("0s".to_string()),
            auth: BTreeMap::new(),
        }
    }

    /// The JSON for stdout.
    pub fn to_json(&self) -> String {
        // NB: a struct of strings and maps of strings always serializes.
        serde_json::to_string(self).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeDelta;
    use regcreds_core::{Credential, RegistryHost};

    use super::*;

    fn request(image: &str) -> Request {
        let json = format!(
            r#"{{"kind":"CredentialProviderRequest","apiVersion":"credentialprovider.kubelet.k8s.io/v1","image":"{image}"}}"#
        );
        Request::parse(json.as_bytes()).expect("request")
    }

    fn credential(host: &str, password: &str) -> Credential {
        Credential::new(RegistryHost::parse(host).expect("host"), "user", password)
    }

    #[test]
    fn only_the_credentials_for_the_image_are_answered_with_the_kubelets_field_names() {
        let minted = CredentialSet::new()
            .with(credential("registry.example.com:5000", "pw-a"))
            .with(credential("other.example.com", "pw-b"));
        let response = Response::answer(
            &request("registry.example.com:5000/team/app:1"),
            &minted,
            Utc::now(),
        );
        assert_eq!(
            response.to_json(),
            r#"{"apiVersion":"credentialprovider.kubelet.k8s.io/v1","kind":"CredentialProviderResponse","cacheKeyType":"Registry","auth":{"registry.example.com:5000":{"username":"user","password":"pw-a"}}}"#
        );
    }

    #[test]
    fn expiring_credentials_are_cached_for_half_their_remaining_life() {
        let now = Utc::now();
        let minted = CredentialSet::new()
            .with(credential("a.example.com", "pw").expiring_at(now + TimeDelta::hours(12)));
        let response = Response::answer(&request("a.example.com/app"), &minted, now);
        assert_eq!(response.cache_duration.as_deref(), Some("21600s"));
        let expired = CredentialSet::new()
            .with(credential("a.example.com", "pw").expiring_at(now - TimeDelta::seconds(5)));
        let response = Response::answer(&request("a.example.com/app"), &expired, now);
        assert_eq!(
            response.cache_duration.as_deref(),
            Some("0s"),
            "never cached past expiry"
        );
    }

    #[test]
    fn an_image_of_another_registry_gets_an_empty_uncached_answer_in_the_requests_version() {
        let minted = CredentialSet::new().with(credential("a.example.com", "pw"));
        let mut request = request("b.example.com/app");
        request.api_version = "credentialprovider.kubelet.k8s.io/v1beta1".into();
        assert_eq!(
            Response::answer(&request, &minted, Utc::now()).to_json(),
            r#"{"apiVersion":"credentialprovider.kubelet.k8s.io/v1beta1","kind":"CredentialProviderResponse","cacheKeyType":"Registry","cacheDuration":"0s"}"#
        );
    }

    #[test]
    fn docker_hub_credentials_answer_for_images_without_a_registry() {
        let minted = CredentialSet::new().with(credential("https://index.docker.io/v1/", "pw"));
        let response = Response::answer(&request("library/busybox:1"), &minted, Utc::now());
        assert_eq!(
            response.auth.keys().collect::<Vec<_>>(),
            ["https://index.docker.io/v1/"]
        );
    }
}
