//! Kubernetes ServiceAccount tokens as the kubelet passes them to a credential provider plugin in its
//! ServiceAccount token mode: a JWT with `kid`, RS256, `iss`, `sub`, `aud`, `iat` and `exp`. The fakes
//! check claims the way the real services do and do not verify signatures (unless a test names the one
//! token to accept), so the signature here is a placeholder.

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};

/// The issuer of a cluster's ServiceAccount tokens by default (kube-apiserver `--service-account-issuer`).
pub const CLUSTER_ISSUER: &str = "https://kubernetes.default.svc.cluster.local";

/// A token of `subject` (`system:serviceaccount:<namespace>:<name>`) from `issuer` for `audience`,
/// valid for ten minutes from now.
pub fn service_account_token(issuer: &str, subject: &str, audience: &str) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default();
    let claims = serde_json::json!({
        "iss": issuer,
        "sub": subject,
        "aud": [audience],
        "iat": now,
        "exp": now + 600,
    });
    format!(
        "{}.{}.c2ln",
        URL_SAFE_NO_PAD.encode(r#"{"alg":"RS256","kid":"k1"}"#),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    )
}
