//! The provider's HTTP client.

use std::{path::Path, time::Duration};

use crate::{Error, Result};

/// A client with connect and request timeouts, no redirects (the request carries a token and must not be
/// bounced elsewhere), and the system roots plus the certificates of `ca_file`.
pub(crate) async fn client(ca_file: Option<&Path>, timeout: Duration) -> Result<reqwest::Client> {
    let mut builder = reqwest::Client::builder()
        .connect_timeout(timeout.min(Duration::from_secs(10)))
        .timeout(timeout)
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("regcreds/", env!("CARGO_PKG_VERSION")));
    if let Some(path) = ca_file {
        let pem = regcreds_core::read_bounded_async(path)
            .await
            .map_err(|source| Error::UnreadableCaFile { source })?;
        let certificates = match reqwest::Certificate::from_pem_bundle(&pem) {
            Ok(certs) if !certs.is_empty() => certs,
            _ => return Err(Error::InvalidCaFile(path.to_path_buf())),
        };
        builder = builder.tls_certs_merge(certificates);
    }
    builder.build().map_err(|e| Error::HttpClient(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn an_endless_or_huge_ca_file_fails_fast() {
        let result = client(Some(Path::new("/dev/zero")), Duration::from_secs(1)).await;
        let Err(error @ Error::UnreadableCaFile { .. }) = result else {
            panic!("expected an unreadable CA file, got {result:?}");
        };
        assert!(error.to_string().contains("larger than 1 MiB"), "{error}");
    }
}
