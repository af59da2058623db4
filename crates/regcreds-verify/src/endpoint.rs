//! From a dockerconfigjson key to the URL a client actually dials.
//!
//! Keys are written for kubelet's matcher, not as URLs: `quay.io/org`, `https://index.docker.io/v1/`,
//! `*.gcr.io`. The registry API lives at `<scheme>://<host[:port]>/v2/`, so the path is dropped, the
//! scheme is the key's own if it has one, else https unless plain http is explicitly allowed for that
//! host, and globs cannot be dialled.

use regcreds_core::{RegistryHost, reference::is_docker_hub};
use url::Url;

/// Where Docker Hub's v2 API really is.
///
/// Docker Hub credentials are keyed `https://index.docker.io/v1/` because that is the key `docker
/// login` has always written and the one kubelet matches for `docker.io/...` images. That host is
/// the legacy v1 index; docker and containerd talk v2 to `registry-1.docker.io` (moby's
/// `DefaultV2Registry`, containerd's docker.io host mapping). Verifying against the host that pulls
/// use is the point of verifying, so every Hub alias maps here.
pub const DOCKER_HUB_V2: &str = "https://registry-1.docker.io";

/// Why a registry key cannot be turned into a URL.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EndpointError {
    /// The key is a kubelet glob such as `*.gcr.io`: it matches many registries and names none.
    #[error("registry key is a wildcard; there is no single registry to check")]
    Wildcard,
    /// The key says `http://` but the host is not allowed plain http.
    #[error("registry key asks for plain http but {0} is not in the insecure-http hosts")]
    HttpNotAllowed(String),
    /// The authority is not a valid URL host.
    #[error("registry host {0} is not a valid URL host")]
    InvalidHost(String),
}

/// Which hosts may be reached over plain http. Credentials are sent to these in clear text, so the
/// list is explicit and matched on the exact `host[:port]`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HttpPolicy {
    hosts: Vec<String>,
}

impl HttpPolicy {
    /// Allows plain http for exactly these `host[:port]` authorities.
    pub fn new(hosts: impl IntoIterator<Item = impl Into<String>>) -> Self {
        Self {
            hosts: hosts.into_iter().map(Into::into).collect(),
        }
    }

    /// Whether `authority` (`host[:port]`) may be dialled without TLS.
    pub fn allows(&self, authority: &str) -> bool {
        self.hosts.iter().any(|h| h.eq_ignore_ascii_case(authority))
    }

    /// Whether credentials may be sent to `url`: always over https, over http only to allowed hosts.
    pub fn permits(&self, url: &Url) -> bool {
        match url.scheme() {
            "https" => true,
            "http" => self.allows(&authority_of(url)),
            _ => false,
        }
    }
}

/// `host[:port]` of a URL, as written in registry keys.
pub(crate) fn authority_of(url: &Url) -> String {
    let host = url.host_str().unwrap_or_default();
    match url.port() {
        Some(port) => format!("{host}:{port}"),
        None => host.to_string(),
    }
}

/// The base URL (`scheme://host[:port]`, no path) of the registry behind `key`.
pub fn base_url(key: &RegistryHost, http: &HttpPolicy) -> Result<Url, EndpointError> {
    let authority = key.authority();
    if authority.contains('*') {
        return Err(EndpointError::Wildcard);
    }
    if is_docker_hub(authority) {
        return Url::parse(DOCKER_HUB_V2).map_err(|_| EndpointError::InvalidHost(authority.to_string()));
    }
    let scheme = match key.scheme() {
        // An explicit scheme is kept, but http still has to be allowed: it sends the password in clear.
        Some("http") if !http.allows(authority) => {
            return Err(EndpointError::HttpNotAllowed(authority.to_string()));
        }
        Some(scheme) => scheme,
        // No scheme: https, as docker and containerd do unless the host is configured insecure.
        None if http.allows(authority) => "http",
        None => "https",
    };
    Url::parse(&format!("{scheme}://{authority}"))
        .map_err(|_| EndpointError::InvalidHost(authority.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(key: &str, http: &HttpPolicy) -> Result<String, EndpointError> {
        let key = RegistryHost::parse(key).expect("valid key");
        base_url(&key, http).map(|u| u.as_str().trim_end_matches('/').to_string())
    }

    #[test]
    fn every_docker_hub_key_maps_to_the_v2_registry_host() {
        let none = HttpPolicy::default();
        for key in [
            "https://index.docker.io/v1/",
            "index.docker.io",
            "docker.io",
            "https://registry-1.docker.io",
        ] {
            assert_eq!(url(key, &none), Ok(DOCKER_HUB_V2.to_string()), "{key}");
        }
    }

    #[test]
    fn https_is_the_default_and_an_explicit_https_scheme_is_kept() {
        let none = HttpPolicy::default();
        assert_eq!(url("ghcr.io", &none), Ok("https://ghcr.io".into()));
        assert_eq!(url("127.0.0.1:5443", &none), Ok("https://127.0.0.1:5443".into()));
        assert_eq!(
            url("https://123456789012.dkr.ecr.eu-west-1.amazonaws.com", &none),
            Ok("https://123456789012.dkr.ecr.eu-west-1.amazonaws.com".into())
        );
    }

    #[test]
    fn paths_in_keys_are_dropped_because_the_api_lives_at_the_root() {
        assert_eq!(
            url("quay.io/org/team", &HttpPolicy::default()),
            Ok("https://quay.io".into())
        );
    }

    #[test]
    fn plain_http_is_used_only_for_allowed_hosts() {
        let allowed = HttpPolicy::new(["127.0.0.1:5000"]);
        assert_eq!(
            url("127.0.0.1:5000", &allowed),
            Ok("http://127.0.0.1:5000".into())
        );
        assert_eq!(
            url("http://127.0.0.1:5000", &allowed),
            Ok("http://127.0.0.1:5000".into())
        );
        assert_eq!(
            url("127.0.0.1:5001", &allowed),
            Ok("https://127.0.0.1:5001".into()),
            "port must match"
        );
        assert_eq!(
            url("http://registry.example", &allowed),
            Err(EndpointError::HttpNotAllowed("registry.example".into()))
        );
    }

    #[test]
    fn an_explicit_https_key_stays_https_even_for_a_host_allowed_http() {
        let allowed = HttpPolicy::new(["reg.local:5000"]);
        assert_eq!(
            url("https://reg.local:5000", &allowed),
            Ok("https://reg.local:5000".into())
        );
    }

    #[test]
    fn wildcard_keys_cannot_be_checked() {
        assert_eq!(
            url("*.gcr.io", &HttpPolicy::default()),
            Err(EndpointError::Wildcard)
        );
    }

    #[test]
    fn credentials_may_travel_over_http_only_to_allowed_hosts() {
        let allowed = HttpPolicy::new(["127.0.0.1:8080"]);
        let parse = |u: &str| Url::parse(u).expect("url");
        assert!(allowed.permits(&parse("https://auth.example/token")));
        assert!(allowed.permits(&parse("http://127.0.0.1:8080/token")));
        assert!(!allowed.permits(&parse("http://127.0.0.1:8081/token")));
        assert!(!allowed.permits(&parse("ftp://127.0.0.1:8080/token")));
    }
}
