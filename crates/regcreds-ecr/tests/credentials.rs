//! How credential failures surface, without any server.

use aws_config::{BehaviorVersion, Region};
use aws_credential_types::provider::{ProvideCredentials, error::CredentialsError, future};
use regcreds_core::Provider;
use regcreds_ecr::{EcrProvider, EcrSettings};

/// What the default chain reports when no source has credentials.
#[derive(Debug)]
struct NoCredentials;

impl ProvideCredentials for NoCredentials {
    fn provide_credentials<'a>(&'a self) -> future::ProvideCredentials<'a>
    where
        Self: 'a,
    {
        future::ProvideCredentials::ready(Err(CredentialsError::not_loaded("no source had credentials")))
    }
}

#[tokio::test]
async fn missing_credentials_are_a_permanent_error_that_says_so() {
    let base = aws_config::defaults(BehaviorVersion::latest())
        .region(Region::new("eu-west-1"))
        .credentials_provider(NoCredentials)
        .load()
        .await;
    let settings = EcrSettings {
        regions: vec!["eu-west-1".into()],
        // Nothing listens here; the call must fail before sending anyway.
        endpoint_url: Some("http://127.0.0.1:9".into()),
        ..EcrSettings::default()
    };
    let provider = EcrProvider::with_sdk_config(settings, &base)
        .await
        .expect("valid settings");
    let err = provider.mint().await.expect_err("no credentials");

    assert!(!err.is_transient(), "only a configuration change helps: {err}");
    let message = err.to_string();
    assert!(message.contains("region eu-west-1"), "{message}");
    assert!(message.contains("no AWS credentials found"), "{message}");
}

#[tokio::test]
async fn invalid_settings_are_rejected_before_any_aws_call() {
    let settings = EcrSettings {
        regions: vec!["eu-west".into()],
        ..EcrSettings::default()
    };
    assert_eq!(
        EcrProvider::new(settings).await.err(),
        Some(regcreds_ecr::Error::InvalidRegion("eu-west".into()))
    );
}
