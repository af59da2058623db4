//! `GcrProvider` against a fake Google token endpoint and metadata server
//! (tests/fixtures/fake_cloud.py), with service-account keys generated per test.

mod support;

use chrono::Utc;
use regcreds_core::{CredentialSet, Provider};
use regcreds_gcr::{DEFAULT_SCOPE, Error, GcrCredentials, GcrProvider, GcrSettings, KeyError, TOKEN_USER};
use support::{FakeGoogle, KeyPair, key_json};

const EMAIL: &str = "puller@regcreds-test.iam.gserviceaccount.com";

async fn mint(settings: GcrSettings) -> regcreds_core::Result<CredentialSet> {
    GcrProvider::new(settings)
        .await
        .expect("valid settings")
        .mint()
        .await
}

fn key_file(json: &str) -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("key.json");
    std::fs::write(&path, json).expect("key file");
    (dir, path)
}

#[tokio::test]
async fn a_key_file_yields_one_access_token_for_every_registry() {
    let key = KeyPair::generate();
    let fake = FakeGoogle::start(Some(&key.public_pem), &[]);
    let (_dir, path) = key_file(&key_json(&key.pkcs8, EMAIL, &fake.token_uri()));
    let settings = GcrSettings {
        registries: vec!["gcr.io".into(), "europe-docker.pkg.dev".into()],
        ..GcrSettings::new(GcrCredentials::KeyFile(path))
    };
    let set = mint(settings).await.expect("mint");

    assert_eq!(set.registries(), vec!["europe-docker.pkg.dev", "gcr.io"]);
    for credential in set.iter() {
        assert_eq!(credential.username, TOKEN_USER);
        assert!(
            credential.password.expose().starts_with("ya29.sa."),
            "token from the fake"
        );
    }
    let left = set.expires_at().expect("expiry") - Utc::now();
    assert!((3590..=3599).contains(&left.num_seconds()), "{left}");
    // The fake checked the RS256 signature against the public key; these are the claims it saw.
    let request = &fake.requests_to("/token")[0];
    assert_eq!(
        request.form["grant_type"],
        "urn:ietf:params:oauth:grant-type:jwt-bearer"
    );
    let claims = request.claims.as_ref().expect("claims");
    assert_eq!(claims["iss"], EMAIL);
    assert_eq!(claims["aud"], fake.token_uri());
    assert_eq!(claims["scope"], DEFAULT_SCOPE);
}

#[tokio::test]
async fn the_expiry_follows_expires_in() {
    let key = KeyPair::generate();
    let fake = FakeGoogle::start(None, &[("FAKE_ACCESS_TTL", "900")]);
    let json = key_json(&key.pkcs8, EMAIL, &fake.token_uri());
    let set = mint(GcrSettings::new(GcrCredentials::KeyJson(json.into())))
        .await
        .expect("mint");

    let left = set.expires_at().expect("expiry") - Utc::now();
    assert!((890..=900).contains(&left.num_seconds()), "{left}");
    assert_eq!(set.registries(), vec!["gcr.io"], "the default registry");
}

#[tokio::test]
async fn a_key_file_is_re_read_on_every_mint() {
    let key = KeyPair::generate();
    let fake = FakeGoogle::start(Some(&key.public_pem), &[]);
    let (_dir, path) = key_file(&key_json(&key.pkcs8, EMAIL, &fake.token_uri()));
    let provider = GcrProvider::new(GcrSettings::new(GcrCredentials::KeyFile(path.clone())))
        .await
        .expect("valid");
    provider.mint().await.expect("first mint");
    std::fs::write(
        &path,
        key_json(
            &key.pkcs8,
            "rotated@regcreds-test.iam.gserviceaccount.com",
            &fake.token_uri(),
        ),
    )
    .expect("rotate");
    provider.mint().await.expect("second mint");

    let issuers: Vec<_> = fake
        .requests_to("/token")
        .iter()
        .map(|r| r.claims.clone().expect("claims")["iss"].clone())
        .collect();
    assert_eq!(
        issuers,
        vec![EMAIL, "rotated@regcreds-test.iam.gserviceaccount.com"]
    );
}

#[tokio::test]
async fn a_key_broken_after_start_fails_the_mint_without_echoing_it() {
    let key = KeyPair::generate();
    let fake = FakeGoogle::start(None, &[]);
    let (_dir, path) = key_file(&key_json(&key.pkcs8, EMAIL, &fake.token_uri()));
    let provider = GcrProvider::new(GcrSettings::new(GcrCredentials::KeyFile(path.clone())))
        .await
        .expect("valid");
    std::fs::write(&path, key_json(&key.pkcs1, EMAIL, &fake.token_uri())).expect("break");
    let err = provider.mint().await.expect_err("PKCS#1 now");

    assert!(err.is_transient(), "the file may be mid-update: {err}");
    assert!(err.to_string().contains("PKCS#1"), "{err}");
    let key_body = key.pkcs1.lines().nth(1).expect("PEM body line");
    assert!(!err.to_string().contains(key_body), "{err}");
    assert!(fake.requests_to("/token").is_empty());
}

#[tokio::test]
async fn an_assertion_signed_by_another_key_is_refused_permanently() {
    let (key, other) = (KeyPair::generate(), KeyPair::generate());
    let fake = FakeGoogle::start(Some(&other.public_pem), &[]);
    let json = key_json(&key.pkcs8, EMAIL, &fake.token_uri());
    let err = mint(GcrSettings::new(GcrCredentials::KeyJson(json.into())))
        .await
        .expect_err("bad signature");

    assert!(
        !err.is_transient(),
        "a revoked or wrong key needs a new key: {err}"
    );
    assert_eq!(
        err.to_string(),
        format!(
            "provider gcr: token endpoint {}: HTTP 400 invalid_grant \"Invalid JWT Signature.\": the key is \
             not (or no longer) a key of this service account: create a new key",
            fake.token_uri()
        )
    );
    assert_eq!(fake.requests_to("/token").len(), 1, "no blind retries of a 4xx");
}

/// Google refuses an assertion whose `exp` is more than an hour after its `iat` (the fake does too):
/// regcreds' assertions ask for exactly the hour.
#[tokio::test]
async fn assertions_live_the_hour_google_allows_and_no_longer() {
    let key = KeyPair::generate();
    let fake = FakeGoogle::start(Some(&key.public_pem), &[]);
    let json = key_json(&key.pkcs8, EMAIL, &fake.token_uri());
    mint(GcrSettings::new(GcrCredentials::KeyJson(json.into())))
        .await
        .expect("accepted");

    let claims = fake.requests_to("/token")[0].claims.clone().expect("claims");
    let (iat, exp) = (
        claims["iat"].as_i64().expect("iat"),
        claims["exp"].as_i64().expect("exp"),
    );
    assert_eq!(exp - iat, 3600);
    assert!((iat - Utc::now().timestamp()).abs() <= 5, "iat is now: {iat}");
}

/// Google's refusal of a long-lived assertion is shown with its reason and a hint, never the assertion.
/// (The fake is told to allow ten minutes only, so that regcreds' real one-hour assertion is refused.)
#[tokio::test]
async fn a_refused_assertion_lifetime_is_reported_with_googles_reason() {
    let key = KeyPair::generate();
    let fake = FakeGoogle::start(Some(&key.public_pem), &[("FAKE_GOOGLE_MAX_LIFETIME", "600")]);
    let json = key_json(&key.pkcs8, EMAIL, &fake.token_uri());
    let err = mint(GcrSettings::new(GcrCredentials::KeyJson(json.into())))
        .await
        .expect_err("too long-lived for this fake");

    assert!(!err.is_transient(), "{err}");
    let message = err.to_string();
    assert_eq!(
        message,
        format!(
            "provider gcr: token endpoint {}: HTTP 400 invalid_grant \"Invalid JWT: Token must be a short-lived \
             token (60 minutes) and in a reasonable timeframe. Check your iat and exp values in the JWT \
             claim.\": regcreds signs assertions valid for 60 minutes from now, so this machine's clock is \
             probably off (check its time synchronisation)",
            fake.token_uri()
        )
    );
    let assertion = &fake.requests_to("/token")[0].form["assertion"];
    assert!(!message.contains(&assertion[assertion.len() - 20..]), "{message}");
}

#[tokio::test]
async fn a_token_endpoint_outage_is_transient() {
    let key = KeyPair::generate();
    let fake = FakeGoogle::start(None, &[("FAKE_FAIL", "/token=503")]);
    let json = key_json(&key.pkcs8, EMAIL, &fake.token_uri());
    let err = mint(GcrSettings::new(GcrCredentials::KeyJson(json.into())))
        .await
        .expect_err("outage");

    assert!(err.is_transient(), "{err}");
    assert!(err.to_string().contains("HTTP 503"), "{err}");
}

#[tokio::test]
async fn a_pkcs1_key_file_is_rejected_at_construction() {
    let key = KeyPair::generate();
    let (_dir, path) = key_file(&key_json(
        &key.pkcs1,
        EMAIL,
        "https://oauth2.googleapis.com/token",
    ));
    let err = GcrProvider::new(GcrSettings::new(GcrCredentials::KeyFile(path)))
        .await
        .expect_err("PKCS#1");

    assert!(
        matches!(
            err,
            Error::Key {
                source: KeyError::Pkcs1Key,
                ..
            }
        ),
        "{err}"
    );
}

#[tokio::test]
async fn the_metadata_server_is_asked_with_the_google_flavor_header_and_scopes() {
    let fake = FakeGoogle::start(None, &[]);
    let settings = GcrSettings {
        metadata_url: Some(fake.url.clone()),
        registries: vec!["us-docker.pkg.dev".into()],
        ..GcrSettings::new(GcrCredentials::Metadata)
    };
    let set = mint(settings).await.expect("mint");

    let credential = set.iter().next().expect("entry");
    assert!(credential.password.expose().starts_with("ya29.metadata."));
    let request = &fake.requests_to("/computeMetadata/v1/instance/service-accounts/default/token")[0];
    assert_eq!(request.headers["metadata-flavor"], "Google");
    assert_eq!(request.query["scopes"], DEFAULT_SCOPE);
}

/// `GCE_METADATA_HOST` is process environment, so the mint runs in a child process: this test binary
/// again, filtered to [`metadata_host_child`].
#[test]
fn gce_metadata_host_redirects_the_application_default_chain() {
    let fake = FakeGoogle::start(None, &[]);
    let output = std::process::Command::new(std::env::current_exe().expect("test binary"))
        .args([
            "--exact",
            "metadata_host_child",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("GCE_METADATA_HOST", fake.url.trim_start_matches("http://"))
        .env_remove("GOOGLE_APPLICATION_CREDENTIALS")
        .env("REGCREDS_GCR_METADATA_CHILD", "1")
        .output()
        .expect("run child");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "child failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.contains("minted gcr.io as oauth2accesstoken"), "{stdout}");
    assert_eq!(
        fake.requests_to("/computeMetadata/v1/instance/service-accounts/default/token")
            .len(),
        1
    );
}

/// Runs only as the child of [`gce_metadata_host_redirects_the_application_default_chain`].
#[tokio::test]
#[ignore = "child process of gce_metadata_host_redirects_the_application_default_chain"]
async fn metadata_host_child() {
    if std::env::var_os("REGCREDS_GCR_METADATA_CHILD").is_none() {
        // NB: `--include-ignored` runs reach here; the assertions are in the parent.
        println!("only meaningful as the child of gce_metadata_host_redirects_the_application_default_chain");
        return;
    }
    let set = mint(GcrSettings::new(GcrCredentials::ApplicationDefault))
        .await
        .expect("mint");
    let credential = set.iter().next().expect("entry");
    println!("minted {} as {}", credential.registry, credential.username);
}

const POOL: &str =
    "//iam.googleapis.com/projects/123456789/locations/global/workloadIdentityPools/k8s/providers/cluster";
const ISSUER: &str = regcreds_fakes::tokens::CLUSTER_ISSUER;

fn pod_token(issuer: &str, subject: &str) -> String {
    regcreds_fakes::tokens::service_account_token(issuer, subject, POOL)
}

fn pod(token: &str, service_account: Option<&str>) -> regcreds_core::PodIdentity {
    regcreds_core::PodIdentity {
        token: token.into(),
        annotations: service_account
            .map(|sa| {
                [(
                    regcreds_gcr::SERVICE_ACCOUNT_ANNOTATION.to_string(),
                    sa.to_string(),
                )]
                .into()
            })
            .unwrap_or_default(),
    }
}

/// The kubelet plugin's token mode on Google: the pod's token federated at STS with the pool provider,
/// then the Google service account its ServiceAccount names, if IAM binds it; the provider's own
/// identity (here the metadata server) plays no part.
#[tokio::test]
async fn in_token_mode_each_pod_federates_its_own_token_and_google_decides() {
    let team_a = "system:serviceaccount:team-a:puller";
    let fake = FakeGoogle::start(
        None,
        &[
            ("FAKE_WIF_AUDIENCE", POOL),
            ("FAKE_WIF_ISSUER", ISSUER),
            ("FAKE_WIF_BINDINGS", &format!(r#"{{"{EMAIL}": ["{team_a}"]}}"#)),
        ],
    );
    let settings = GcrSettings {
        registries: vec!["europe-docker.pkg.dev".into()],
        metadata_url: Some(fake.url.clone()),
        workload_identity_provider: Some(POOL.into()),
        sts_url: Some(format!("{}/v1/token", fake.url)),
        iam_credentials_url: Some(fake.url.clone()),
        ..GcrSettings::new(GcrCredentials::Metadata)
    };
    let provider = GcrProvider::new(settings).await.expect("valid settings");

    let impersonated = provider
        .mint_for_pod(&pod(&pod_token(ISSUER, team_a), Some(EMAIL)))
        .await
        .expect("pod mode")
        .expect("team a may act as the service account");
    let credential = impersonated.iter().next().expect("entry");
    assert_eq!(credential.username, TOKEN_USER);
    assert!(
        credential
            .password
            .expose()
            .starts_with(&format!("ya29.sa.{EMAIL}."))
    );
    let sts = &fake.requests_to("/v1/token")[0];
    assert_eq!(sts.form["audience"], POOL);
    assert_eq!(
        sts.form["subject_token_type"],
        "urn:ietf:params:oauth:token-type:jwt"
    );
    assert_eq!(sts.form["scope"], DEFAULT_SCOPE);

    let direct = provider
        .mint_for_pod(&pod(&pod_token(ISSUER, "system:serviceaccount:team-b:app"), None))
        .await
        .expect("pod mode")
        .expect("no service account named: the federated principal itself");
    let token = direct.iter().next().expect("entry").password.expose().to_string();
    assert!(token.starts_with("ya29.federated."), "{token}");

    let other = pod_token(ISSUER, "system:serviceaccount:team-b:app");
    let refused = provider
        .mint_for_pod(&pod(&other, Some(EMAIL)))
        .await
        .expect("pod mode")
        .expect_err("team b is not bound to the service account");
    assert!(!refused.is_transient(), "{refused}");
    assert!(refused.to_string().contains("403 PERMISSION_DENIED"), "{refused}");
    assert!(!refused.to_string().contains(&other), "{refused}");

    let foreign = provider
        .mint_for_pod(&pod(
            &pod_token("https://other.cluster.example", team_a),
            Some(EMAIL),
        ))
        .await
        .expect("pod mode")
        .expect_err("another cluster's token");
    assert!(foreign.to_string().contains("invalid_grant"), "{foreign}");
    assert!(
        fake.requests_to("/computeMetadata/v1/instance/service-accounts/default/token")
            .is_empty(),
        "regcreds' own identity is never used for a pod"
    );
}

#[tokio::test]
async fn without_a_pool_provider_there_is_no_pod_mode() {
    let provider = GcrProvider::new(GcrSettings::new(GcrCredentials::Metadata))
        .await
        .expect("valid settings");
    assert!(provider.mint_for_pod(&pod("t", None)).await.is_none());
}
