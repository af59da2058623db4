//! ECR Public: one GetAuthorizationToken call in us-east-1, one `public.ecr.aws` entry.
//!
//! Unlike private ECR the reply holds a single object without `proxyEndpoint`, and the principal needs
//! `sts:GetServiceBearerToken` besides `ecr-public:GetAuthorizationToken`.

use aws_sdk_ecrpublic::Client;
use regcreds_core::Credential;

use crate::{PROVIDER_NAME, PUBLIC_REGISTRY, failure, token::Entry};

/// The ECR Public client.
#[derive(Debug, Clone)]
pub(crate) struct PublicClient {
    pub(crate) client: Client,
    pub(crate) endpoint_url: Option<String>,
}

impl PublicClient {
    /// The `public.ecr.aws` credential.
    pub(crate) async fn mint(&self) -> regcreds_core::Result<Credential> {
        let output = self
            .client
            .get_authorization_token()
            .send()
            .await
            .map_err(|err| failure::classify(&err).into_error(&self.context()))?;
        let Some(data) = output.authorization_data() else {
            return Err(self.malformed("no authorizationData"));
        };
        let entry = Entry {
            token: data.authorization_token(),
            expires_at: data.expires_at(),
            registry: PUBLIC_REGISTRY,
        };
        entry
            .into_credential()
            .map_err(|e| self.malformed(&e.to_string()))
    }

    fn malformed(&self, what: &str) -> regcreds_core::Error {
        regcreds_core::Error::transient(
            PROVIDER_NAME,
            format!("{}: malformed reply: {what}", self.context()),
        )
    }

    fn context(&self) -> String {
        match &self.endpoint_url {
            Some(url) => format!("ECR Public (endpoint {url})"),
            None => "ECR Public".to_string(),
        }
    }
}
