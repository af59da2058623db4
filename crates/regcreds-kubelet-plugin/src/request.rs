//! `CredentialProviderRequest`: what the kubelet writes on the plugin's stdin.

use std::collections::BTreeMap;

use regcreds_core::SecretString;
use serde::Deserialize;

use crate::Error;

/// The API group of the exec plugin protocol.
pub const API_GROUP: &str = "credentialprovider.kubelet.k8s.io";

/// The versions a v1.37 kubelet can be configured to speak (`pkg/apis/credentialprovider/{v1,v1beta1,
/// v1alpha1}` in `k8s.io/kubelet@v0.37.2`); only v1 carries a ServiceAccount token.
const VERSIONS: [&str; 3] = ["v1", "v1beta1", "v1alpha1"];

/// One request: the image the kubelet is about to pull, and in ServiceAccount token mode the pulling
/// pod's token and the annotations the config asked for.
#[derive(Debug, Clone)]
pub struct Request {
    /// `credentialprovider.kubelet.k8s.io/<version>`, echoed in the response.
    pub api_version: String,
    /// The image as the pod names it, e.g. `registry.example.com:5000/team/app:1.2`.
    pub image: String,
    /// The pod's ServiceAccount token (`tokenAttributes` configured), never logged.
    pub service_account_token: Option<SecretString>,
    /// The ServiceAccount's annotations the config listed (`tokenAttributes`).
    pub service_account_annotations: BTreeMap<String, String>,
}

/// The JSON as the kubelet encodes it (`types.go`: `image`, `serviceAccountToken,omitempty`,
/// `serviceAccountAnnotations,omitempty`, and TypeMeta).
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Wire {
    #[serde(default)]
    api_version: String,
    #[serde(default)]
    kind: String,
    #[serde(default)]
    image: String,
    #[serde(default)]
    service_account_token: Option<String>,
    #[serde(default)]
    service_account_annotations: BTreeMap<String, String>,
}

impl Request {
    /// Parses what the kubelet wrote on stdin.
    pub fn parse(json: &[u8]) -> Result<Self, Error> {
        let wire: Wire = serde_json::from_slice(json).map_err(|error| Error::NotJson {
            line: error.line(),
            column: error.column(),
            category: match error.classify() {
                serde_json::error::Category::Data => "data",
                serde_json::error::Category::Eof => "eof",
                _ => "syntax",
            },
        })?;
        let supported = wire
            .api_version
            .split_once('/')
            .is_some_and(|(group, version)| group == API_GROUP && VERSIONS.contains(&version));
        if !supported {
            return Err(Error::UnsupportedApiVersion(wire.api_version));
        }
        if wire.kind != "CredentialProviderRequest" {
            return Err(Error::WrongKind(wire.kind));
        }
        let image = wire.image.trim().to_string();
        if image.is_empty() {
            return Err(Error::NoImage);
        }
        Ok(Self {
            api_version: wire.api_version,
            image,
            service_account_token: wire
                .service_account_token
                .filter(|token| !token.is_empty())
                .map(SecretString::from),
            service_account_annotations: wire.service_account_annotations,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_kubelets_request_parses_with_and_without_a_token() {
        let plain = br#"{"kind":"CredentialProviderRequest","apiVersion":"credentialprovider.kubelet.k8s.io/v1","image":"registry.example.com:5000/team/app:1"}"#;
        let request = Request::parse(plain).expect("request");
        assert_eq!(request.image, "registry.example.com:5000/team/app:1");
        assert!(request.service_account_token.is_none());
        let token = br#"{"kind":"CredentialProviderRequest","apiVersion":"credentialprovider.kubelet.k8s.io/v1","image":"x.io/a","serviceAccountToken":"eyJ.secret.sig","serviceAccountAnnotations":{"eks.amazonaws.com/role-arn":"arn:aws:iam::123456789012:role/r"}}"#;
        let request = Request::parse(token).expect("request");
        assert_eq!(
            request
                .service_account_token
                .as_ref()
                .map(|t| t.expose().to_string()),
            Some("eyJ.secret.sig".to_string())
        );
        assert_eq!(request.service_account_annotations.len(), 1);
        let old = br#"{"kind":"CredentialProviderRequest","apiVersion":"credentialprovider.kubelet.k8s.io/v1beta1","image":"x.io/a"}"#;
        assert_eq!(
            Request::parse(old).expect("v1beta1").api_version,
            "credentialprovider.kubelet.k8s.io/v1beta1"
        );
    }

    #[test]
    fn malformed_requests_are_refused_without_echoing_their_content() {
        let cases: [(&[u8], &str); 5] = [
            (b"not json", "invalid JSON at line 1 column 2 (syntax)"),
            (
                br#"{"kind":"CredentialProviderRequest","apiVersion":"credentialprovider.kubelet.k8s.io/v1","image":"x.io/a","serviceAccountToken":["eyJ.secret.sig"]}"#,
                "(data)",
            ),
            (
                br#"{"kind":"CredentialProviderRequest","apiVersion":"v1","image":"x.io/a"}"#,
                "apiVersion \"v1\" is not supported",
            ),
            (
                br#"{"kind":"ExecCredential","apiVersion":"credentialprovider.kubelet.k8s.io/v1","image":"x.io/a"}"#,
                "kind \"ExecCredential\" is not CredentialProviderRequest",
            ),
            (
                br#"{"kind":"CredentialProviderRequest","apiVersion":"credentialprovider.kubelet.k8s.io/v1","image":" "}"#,
                "no image",
            ),
        ];
        for (json, expected) in cases {
            let error = Request::parse(json).expect_err("refused").to_string();
            assert!(error.contains(expected), "{error}");
            assert!(!error.contains("secret"), "{error}");
        }
    }
}
