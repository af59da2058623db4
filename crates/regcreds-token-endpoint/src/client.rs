//! The one HTTP client of a provider, for its token endpoint (and, for ACR, azure_identity's pipeline).

use std::{path::Path, time::Duration};

use crate::ClientError;

/// A client with connect and request timeouts, no redirects (requests carry a JWT or a token and must
/// not be bounced elsewhere), and the system roots plus the certificates of `ca_file`.
pub async fn client(ca_file: Option<&Path>, timeout: Duration) -> Result<reqwest::Client, ClientError> {
    let mut builder = reqwest::Client::builder()
        .connect_timeout(timeout.min(Duration::from_secs(10)))
        .timeout(timeout)
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("regcreds/", env!("CARGO_PKG_VERSION")));
    if let Some(path) = ca_file {
        builder = builder.tls_certs_merge(certificates(path).await?);
    }
    builder.build().map_err(|e| ClientError::Build(e.to_string()))
}

async fn certificates(path: &Path) -> Result<Vec<reqwest::Certificate>, ClientError> {
    let pem = regcreds_core::read_bounded_async(path)
        .await
        .map_err(|source| ClientError::UnreadableCaFile { source })?;
    match reqwest::Certificate::from_pem_bundle(&pem) {
        Ok(certs) if !certs.is_empty() => Ok(certs),
        _ => Err(ClientError::InvalidCaFile(path.to_path_buf())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_ca_file_without_certificates_is_rejected() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("ca.pem");
        std::fs::write(&path, "not a certificate").expect("write");
        let err = client(Some(&path), Duration::from_secs(1))
            .await
            .expect_err("no certificate");
        assert!(matches!(err, ClientError::InvalidCaFile(_)), "{err:?}");
        assert!(err.is_ca_file());
        assert_eq!(
            err.to_string(),
            format!("CA file {} holds no PEM certificate", path.display())
        );
        let missing = dir.path().join("missing.pem");
        assert!(matches!(
            client(Some(&missing), Duration::from_secs(1)).await,
            Err(ClientError::UnreadableCaFile { .. })
        ));
    }

    #[tokio::test]
    async fn an_endless_or_huge_ca_file_fails_fast() {
        let result = client(Some(Path::new("/dev/zero")), Duration::from_secs(1)).await;
        let Err(error @ ClientError::UnreadableCaFile { .. }) = result else {
            panic!("expected an unreadable CA file, got {result:?}");
        };
        assert!(
            error.to_string().starts_with("CA file: cannot read /dev/zero"),
            "{error}"
        );
        assert!(error.to_string().contains("larger than 1 MiB"), "{error}");
    }

    #[tokio::test]
    async fn without_a_ca_file_the_system_roots_are_enough() {
        client(None, Duration::from_secs(1)).await.expect("client");
    }
}
