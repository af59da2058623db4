//! regcreds as the kubelet's image credential provider: the exec plugin protocol
//! (`credentialprovider.kubelet.k8s.io`, v1 and the older v1beta1/v1alpha1 the v1.37 kubelet still
//! speaks), with no Secret anywhere.
//!
//! ```text
//!  kubelet ──stdin: CredentialProviderRequest {image, serviceAccountToken?, …}──▶ Request::parse
//!                                                                                   │
//!      the binary: every enabled provider that may serve the image ──mint()──▶ CredentialSet
//!                                                                                   │
//!  kubelet ◀──stdout: CredentialProviderResponse {cacheKeyType, cacheDuration, auth}── Response::answer
//! ```
//!
//! The types follow the kubelet's own, read from the Go modules the test kit builds:
//! `k8s.io/kubelet@v0.37.2/pkg/apis/credentialprovider/v1/types.go` (fields and JSON names) and
//! `k8s.io/kubernetes@v1.37.2/pkg/credentialprovider/plugin/plugin.go` (what the kubelet checks: the
//! response's apiVersion must equal the request's, decoding is strict (`serializer.EnableStrict`), and
//! `cacheKeyType` must be `Image`, `Registry` or `Global`).
//!
//! On the node's side, [`env_list_yaml`] writes the provider's `env` list into the kubelet's
//! `CredentialProviderConfig` (`regcreds kubelet-plugin install`, run by the chart's DaemonSet).

mod config;
mod error;
mod request;
mod response;

pub use config::env_list_yaml;
pub use error::Error;
pub use request::{API_GROUP, Request};
pub use response::{AuthConfig, CacheKeyType, Response};
