//! Private ECR: one GetAuthorizationToken call per region.

use aws_sdk_ecr::{Client, types::AuthorizationData};
use regcreds_core::Credential;

use crate::{failure, token::Entry};

/// An ECR client bound to one region, with the account IDs to ask for.
#[derive(Debug, Clone)]
pub(crate) struct RegionalClient {
    pub(crate) region: String,
    pub(crate) client: Client,
    /// Empty means "send no registryIds"; never `[""]` (upmc #88).
    pub(crate) registry_ids: Vec<String>,
    /// Shown in errors when the endpoint is overridden, since "region eu-west-1" alone would mislead.
    pub(crate) endpoint_url: Option<String>,
}

impl RegionalClient {
    /// One credential per returned `authorizationData` entry, keyed by its `proxyEndpoint`.
    pub(crate) async fn mint(&self) -> regcreds_core::Result<Vec<Credential>> {
        let registry_ids = (!self.registry_ids.is_empty()).then(|| self.registry_ids.clone());
        // NB: deprecated because the token's scope does not depend on it, but it is still the only way
        // to get one proxyEndpoint (and `auths` entry) per account, which upmc users rely on.
        #[allow(deprecated)]
        let request = self
            .client
            .get_authorization_token()
            .set_registry_ids(registry_ids);
        let output = request
            .send()
            .await
            .map_err(|err| failure::classify(&err).into_error(&self.context()))?;
        let entries = output.authorization_data();
        if entries.is_empty() {
            return Err(regcreds_core::Error::transient(
                crate::PROVIDER_NAME,
                format!(
                    "{}: GetAuthorizationToken returned no authorizationData",
                    self.context()
                ),
            ));
        }
        entries.iter().map(|data| self.credential(data)).collect()
    }

    fn credential(&self, data: &AuthorizationData) -> regcreds_core::Result<Credential> {
        let Some(endpoint) = data.proxy_endpoint() else {
            return Err(self.malformed("authorizationData without proxyEndpoint"));
        };
        let entry = Entry {
            token: data.authorization_token(),
            expires_at: data.expires_at(),
            registry: endpoint,
        };
        entry
            .into_credential()
            .map_err(|e| self.malformed(&e.to_string()))
    }

    /// A reply ECR would never send: likely a proxy or fake in the way, so worth retrying.
    fn malformed(&self, what: &str) -> regcreds_core::Error {
        regcreds_core::Error::transient(
            crate::PROVIDER_NAME,
            format!("{}: malformed reply: {what}", self.context()),
        )
    }

    fn context(&self) -> String {
        match &self.endpoint_url {
            Some(url) => format!("region {} (endpoint {url})", self.region),
            None => format!("region {}", self.region),
        }
    }
}
