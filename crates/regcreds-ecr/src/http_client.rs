//! The AWS SDK's HTTP client, with the system's root store loaded at the first https request, not before.
//!
//! ```text
//!  SDK operation ──http_connector()──▶ ByScheme ──http://, no proxy set──▶ plain connector (no TLS)
//!                                               └─anything else─────────▶ the SDK's default connector,
//!                                                  built at the first request that needs it (rustls +
//!                                                  aws-lc, the system's roots, proxies from the environment)
//! ```
//!
//! Why: aws-smithy-http-client 1.5.2 builds its TLS connector, and with it parses every certificate of
//! the system's root store (`rustls_native_certs::load_native_certs()`: on Debian the bundle and the hash
//! files of `/etc/ssl/certs`, ~290 certificates), when the client is validated, before the first request
//! and whatever its scheme (`HyperClient::validate_base_client_config`). `regcreds run` pays that once.
//! `regcreds credential-provider` is a new process for every answer the kubelet asks for, and an http
//! endpoint (moto, LocalStack, an instance-metadata credential call) never needs the store: there it was a
//! third of the answer's time (`cargo xtask bench --sections plugin`). Go's crypto/x509, under the clouds'
//! own plugins, likewise loads the store at the first TLS handshake.
//!
//! The https path is the SDK's own default client (aws-smithy-runtime 1.16.2 `default_https_client`),
//! unchanged; only its start is deferred. An http URI goes to a connector without TLS unless a proxy
//! variable could route it (through a proxy that may itself speak TLS): then the default client takes
//! every request, exactly as without this module.

use std::sync::OnceLock;

use aws_smithy_http_client::{ConnectorBuilder, proxy::ProxyConfig, tls};
use aws_smithy_runtime_api::client::{
    connector_metadata::ConnectorMetadata,
    http::{
        HttpClient, HttpConnector, HttpConnectorFuture, HttpConnectorSettings, SharedHttpClient,
        SharedHttpConnector,
    },
    orchestrator::HttpRequest,
    runtime_components::RuntimeComponents,
};

/// The variables through which hyper-util's proxy matcher (what the SDK's default client uses) may route an
/// http:// request. `HTTPS_PROXY` only applies to https.
const HTTP_PROXY_VARIABLES: [&str; 4] = ["HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"];

/// The SDK's default HTTPS client, started lazily; plain http without TLS when nothing can need it.
pub(crate) fn lazy_tls_client() -> SharedHttpClient {
    SharedHttpClient::new(ByScheme {
        default: default_https_client(),
        plain: plain_allowed(|name| std::env::var_os(name))
            .then(|| aws_smithy_http_client::Builder::new().build_http()),
    })
}

/// Whether no proxy variable (read by `var`) could route an http request.
fn plain_allowed(var: impl Fn(&str) -> Option<std::ffi::OsString>) -> bool {
    !HTTP_PROXY_VARIABLES
        .iter()
        .any(|name| var(name).is_some_and(|value| !value.is_empty()))
}

/// What `aws-smithy-runtime` 1.16.2 builds when no client is set (`default_https_client` with the latest
/// behavior version): rustls on aws-lc, the system's roots, proxies from the environment.
fn default_https_client() -> SharedHttpClient {
    aws_smithy_http_client::Builder::new().build_with_connector_fn(|settings, components| {
        let mut builder = ConnectorBuilder::default()
            .tls_provider(tls::Provider::Rustls(tls::rustls_provider::CryptoMode::AwsLc));
        builder.set_connector_settings(settings.cloned());
        if let Some(components) = components {
            builder.set_sleep_impl(components.sleep_impl());
        }
        builder.set_proxy_config(Some(ProxyConfig::from_env()));
        builder.build()
    })
}

/// Chooses a connector by the request's scheme.
#[derive(Debug)]
struct ByScheme {
    default: SharedHttpClient,
    /// `None` when a proxy variable is set: every request takes `default`.
    plain: Option<SharedHttpClient>,
}

impl HttpClient for ByScheme {
    fn http_connector(
        &self,
        settings: &HttpConnectorSettings,
        components: &RuntimeComponents,
    ) -> SharedHttpConnector {
        // NB: `default.http_connector` is what loads the root store, so it waits for the first request
        // that needs it. Both clients cache their connectors per settings (and with them the pools).
        SharedHttpConnector::new(SchemeConnector {
            plain: self
                .plain
                .as_ref()
                .map(|plain| plain.http_connector(settings, components)),
            default: Deferred {
                client: self.default.clone(),
                settings: settings.clone(),
                components: components.clone(),
                connector: OnceLock::new(),
            },
        })
    }

    fn connector_metadata(&self) -> Option<ConnectorMetadata> {
        self.default.connector_metadata()
    }
}

/// The default client's connector for one set of settings, asked for at its first use.
#[derive(Debug)]
struct Deferred {
    client: SharedHttpClient,
    settings: HttpConnectorSettings,
    components: RuntimeComponents,
    connector: OnceLock<SharedHttpConnector>,
}

impl Deferred {
    fn connector(&self) -> &SharedHttpConnector {
        self.connector
            .get_or_init(|| self.client.http_connector(&self.settings, &self.components))
    }
}

/// One operation's connector: `plain` for http URIs when allowed, else the default client's.
#[derive(Debug)]
struct SchemeConnector {
    plain: Option<SharedHttpConnector>,
    default: Deferred,
}

impl HttpConnector for SchemeConnector {
    fn call(&self, request: HttpRequest) -> HttpConnectorFuture {
        match &self.plain {
            Some(plain) if is_plain_http(request.uri()) => plain.call(request),
            _ => self.default.connector().call(request),
        }
    }
}

/// `http://…`, compared as the SDK's connector would (the scheme is case-insensitive).
fn is_plain_http(uri: &str) -> bool {
    uri.get(..7)
        .is_some_and(|scheme| scheme.eq_ignore_ascii_case("http://"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_http_uris_are_plain() {
        assert!(is_plain_http("http://127.0.0.1:5000/"));
        assert!(is_plain_http("HTTP://localstack:4566"));
        assert!(!is_plain_http("https://api.ecr.us-east-1.amazonaws.com/"));
        assert!(!is_plain_http("http"));
        assert!(!is_plain_http(""));
    }

    #[test]
    fn a_proxy_variable_sends_everything_through_the_default_client() {
        assert!(plain_allowed(|_| None));
        assert!(plain_allowed(
            |name| (name == "HTTPS_PROXY").then(|| "http://proxy:3128".into())
        ));
        assert!(plain_allowed(|name| (name == "http_proxy").then(|| "".into())));
        for set in HTTP_PROXY_VARIABLES {
            assert!(
                !plain_allowed(|name| (name == set).then(|| "http://proxy:3128".into())),
                "{set}"
            );
        }
    }
}
