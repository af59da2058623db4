//! The GCE / GKE metadata server: the node's service account, or the pod's with GKE workload identity.

use regcreds_token_endpoint::MintStep;

use crate::{
    PROVIDER_NAME,
    token::{self, AccessToken},
};

/// Default metadata server, as in Google's client libraries.
const DEFAULT_HOST: &str = "metadata.google.internal";
const TOKEN_PATH: &str = "/computeMetadata/v1/instance/service-accounts/default/token";

/// The metadata base URL: the configured one, else `http://$GCE_METADATA_HOST`, else the default host.
pub(crate) fn base_url(configured: Option<&str>) -> String {
    let from_env = || {
        std::env::var("GCE_METADATA_HOST")
            .ok()
            .filter(|h| !h.trim().is_empty())
    };
    match configured {
        Some(url) => url.trim_end_matches('/').to_string(),
        None => format!(
            "http://{}",
            from_env().unwrap_or_else(|| DEFAULT_HOST.to_string()).trim()
        ),
    }
}

/// An access token for `scopes` (GKE's metadata server honours them; GCE's uses the instance scopes).
pub(crate) async fn token(
    http: &reqwest::Client,
    base_url: &str,
    scopes: &[String],
) -> regcreds_core::Result<AccessToken> {
    let url = format!("{base_url}{TOKEN_PATH}");
    let step = MintStep::new(PROVIDER_NAME, format!("metadata server {url}"));
    let mut full =
        reqwest::Url::parse(&url).map_err(|_| step.failed(false, "invalid metadata server URL"))?;
    full.query_pairs_mut().append_pair("scopes", &scopes.join(","));
    token::fetch(http.get(full).header("Metadata-Flavor", "Google"), "", &step).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_configured_url_wins_and_loses_its_trailing_slash() {
        assert_eq!(base_url(Some("http://127.0.0.1:8080/")), "http://127.0.0.1:8080");
    }
}
