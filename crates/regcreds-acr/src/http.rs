//! The one HTTP client of a provider, shared by azure_identity's pipeline and the exchange call.

use std::{path::Path, time::Duration};

use crate::{Error, Result};

/// A client with connect and request timeouts, no redirects (the exchange posts a token and must not
/// be bounced elsewhere), and the system roots plus the certificates of `ca_file`.
pub(crate) async fn client(ca_file: Option<&Path>, timeout: Duration) -> Result<reqwest::Client> {
    let mut builder = reqwest::Client::builder()
        .connect_timeout(timeout.min(Duration::from_secs(10)))
        .timeout(timeout)
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("regcreds/", env!("CARGO_PKG_VERSION")));
    if let Some(path) = ca_file {
        builder = builder.tls_certs_merge(certificates(path).await?);
    }
    builder.build().map_err(|e| Error::HttpClient(e.to_string()))
}

async fn certificates(path: &Path) -> Result<Vec<reqwest::Certificate>> {
    let pem = regcreds_core::read_bounded_async(path)
        .await
        .map_err(|source| Error::UnreadableCaFile { source })?;
    match reqwest::Certificate::from_pem_bundle(&pem) {
        Ok(certs) if !certs.is_empty() => Ok(certs),
        _ => Err(Error::InvalidCaFile(path.to_path_buf())),
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
        assert!(matches!(
            client(Some(&path), Duration::from_secs(1)).await,
            Err(Error::InvalidCaFile(_))
        ));
        let missing = dir.path().join("missing.pem");
        assert!(matches!(
            client(Some(&missing), Duration::from_secs(1)).await,
            Err(Error::UnreadableCaFile { .. })
        ));
    }

    #[tokio::test]
    async fn an_endless_or_huge_ca_file_fails_fast() {
        let result = client(Some(Path::new("/dev/zero")), Duration::from_secs(1)).await;
        let Err(error @ Error::UnreadableCaFile { .. }) = result else {
            panic!("expected an unreadable CA file, got {result:?}");
        };
        assert!(error.to_string().contains("larger than 1 MiB"), "{error}");
    }
}
