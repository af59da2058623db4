//! `QuayProvider` against the HTTPS fake of Quay's robot federation endpoint
//! (tests/fixtures/fake_github_quay.py): Basic auth with the robot name and the ServiceAccount JWT, a
//! robot token back. The fake's throwaway CA is trusted by the provider's own client only (`ca_file`).

#[path = "../../../tests/fixtures/process.rs"]
mod process;

#[path = "../../../tests/fixtures/fake_github_quay.rs"]
mod fake;

use std::{path::PathBuf, time::Duration};

use base64::{
    Engine,
    engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD},
};
use chrono::Utc;
use fake::FakeGithubQuay;
use regcreds_core::Provider;
use regcreds_quay::{Error, QuayProvider, QuaySettings};

const ROBOT: &str = "myorg+puller";
const HOST: &str = "quay.example.com";
const EXCHANGE: &str = "/oauth2/federation/robot/token";

/// A ServiceAccount-token-shaped JWT (unsigned: the fake compares it, Quay would verify it).
fn service_account_jwt(subject: &str) -> String {
    let claims = format!(
        r#"{{"iss":"https://kubernetes.default.svc.cluster.local","sub":"system:serviceaccount:regcreds:{subject}","aud":["{HOST}"]}}"#
    );
    format!(
        "{}.{}.c2lnbmF0dXJl",
        URL_SAFE_NO_PAD.encode(r#"{"alg":"RS256","kid":"k1"}"#),
        URL_SAFE_NO_PAD.encode(claims)
    )
}

/// The token file a projected volume would hold, in a temp dir.
struct TokenFile {
    _dir: tempfile::TempDir,
    path: PathBuf,
}

impl TokenFile {
    fn with(token: &str) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("token");
        std::fs::write(&path, token).expect("write token");
        Self { _dir: dir, path }
    }
}

fn settings(fake: &FakeGithubQuay, token_file: &TokenFile) -> QuaySettings {
    QuaySettings {
        registry: HOST.into(),
        token_file: token_file.path.clone(),
        federation_url: Some(fake.url.clone()),
        ca_file: Some(fake.ca_file()),
        timeout: Duration::from_secs(10),
        ..QuaySettings::new(ROBOT)
    }
}

fn basic_auth(request: &fake::Request) -> String {
    let encoded = request.headers["authorization"]
        .strip_prefix("Basic ")
        .expect("Basic auth");
    String::from_utf8(STANDARD.decode(encoded).expect("base64")).expect("utf8")
}

#[tokio::test]
async fn the_service_account_token_is_exchanged_for_a_robot_token_with_basic_auth() {
    let sa = service_account_jwt("regcreds");
    let fake = FakeGithubQuay::start(&[("FAKE_QUAY_SA_TOKEN", &sa), ("FAKE_TOKEN_TTL", "4500")]);
    let file = TokenFile::with(&format!("{sa}\n"));
    let set = QuayProvider::new(settings(&fake, &file))
        .await
        .expect("valid")
        .mint()
        .await
        .expect("mint");

    assert_eq!(set.registries(), vec![HOST]);
    let credential = set.iter().next().expect("one entry");
    assert_eq!(credential.username, ROBOT);
    let payload = credential.password.expose().split('.').nth(1).expect("a JWT");
    let claims: serde_json::Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).expect("base64url")).expect("claims");
    assert_eq!(claims["sub"], ROBOT);
    let left = (set.expires_at().expect("expiry") - Utc::now()).num_seconds();
    assert!(
        (4490..=4500).contains(&left),
        "expiry from the token's exp: {left} s"
    );

    let request = &fake.requests_to(EXCHANGE)[0];
    assert_eq!(request.method, "GET");
    assert_eq!(
        basic_auth(request),
        format!("{ROBOT}:{sa}"),
        "robot name and the JWT, trimmed"
    );
}

#[tokio::test]
async fn an_opaque_robot_token_is_assumed_to_live_quays_one_hour() {
    let fake = FakeGithubQuay::start(&[("FAKE_QUAY_TOKEN", "opaque-robot-token")]);
    let file = TokenFile::with(&service_account_jwt("regcreds"));
    let set = QuayProvider::new(settings(&fake, &file))
        .await
        .expect("valid")
        .mint()
        .await
        .expect("mint");
    assert_eq!(
        set.iter().next().expect("entry").password.expose(),
        "opaque-robot-token"
    );
    let left = (set.expires_at().expect("expiry") - Utc::now()).num_seconds();
    assert!((3590..=3600).contains(&left), "{left} s");
}

#[tokio::test]
async fn a_refused_service_account_token_is_a_permanent_401_with_quays_reason_and_no_token() {
    let fake = FakeGithubQuay::start(&[("FAKE_QUAY_SA_TOKEN", &service_account_jwt("regcreds"))]);
    let wrong = service_account_jwt("someone-else");
    let file = TokenFile::with(&wrong);
    let err = QuayProvider::new(settings(&fake, &file))
        .await
        .expect("valid")
        .mint()
        .await
        .expect_err("401");

    assert!(!err.is_transient(), "{err}");
    let message = err.to_string();
    assert!(
        message.starts_with(&format!(
            "provider quay: robot federation for {ROBOT} at {}{EXCHANGE}: HTTP 401 \"Token does not match robot\": \
             Quay refused the ServiceAccount token for {ROBOT}",
            fake.url
        )),
        "{message}"
    );
    assert!(!message.contains(&wrong[..30]), "{message}");
}

#[tokio::test]
async fn an_unknown_robot_is_refused_too() {
    let fake = FakeGithubQuay::start(&[]);
    let file = TokenFile::with(&service_account_jwt("regcreds"));
    let settings = QuaySettings {
        robot: "myorg+nobody".into(),
        ..settings(&fake, &file)
    };
    let err = QuayProvider::new(settings)
        .await
        .expect("valid")
        .mint()
        .await
        .expect_err("401");
    assert!(
        err.to_string()
            .contains("\"Could not find robot with specified username\""),
        "{err}"
    );
}

#[tokio::test]
async fn the_token_file_is_re_read_on_every_mint_as_kubelet_rotates_it() {
    let fake = FakeGithubQuay::start(&[]);
    let file = TokenFile::with(&service_account_jwt("first"));
    let provider = QuayProvider::new(settings(&fake, &file)).await.expect("valid");
    provider.mint().await.expect("first mint");
    std::fs::write(&file.path, service_account_jwt("rotated")).expect("rotate");
    provider.mint().await.expect("second mint");
    std::fs::write(&file.path, "").expect("truncate");
    let err = provider.mint().await.expect_err("an empty file");
    assert!(err.is_transient(), "worth a retry: {err}");
    assert!(err.to_string().contains("is empty"), "{err}");

    let sent: Vec<String> = fake.requests_to(EXCHANGE).iter().map(basic_auth).collect();
    assert_eq!(
        sent,
        vec![
            format!("{ROBOT}:{}", service_account_jwt("first")),
            format!("{ROBOT}:{}", service_account_jwt("rotated")),
        ]
    );
}

#[tokio::test]
async fn an_outage_is_transient() {
    let fail = format!("{EXCHANGE}=502");
    let fake = FakeGithubQuay::start(&[("FAKE_FAIL", &fail)]);
    let file = TokenFile::with(&service_account_jwt("regcreds"));
    let err = QuayProvider::new(settings(&fake, &file))
        .await
        .expect("valid")
        .mint()
        .await
        .expect_err("502");
    assert!(err.is_transient(), "{err}");
    assert!(err.to_string().contains("HTTP 502"), "{err}");
}

#[tokio::test]
async fn a_missing_empty_or_non_jwt_token_file_fails_at_start_up() {
    let dir = tempfile::tempdir().expect("tempdir");
    let missing = QuaySettings {
        token_file: dir.path().join("missing"),
        ..QuaySettings::new(ROBOT)
    };
    let err = QuayProvider::new(missing).await.expect_err("missing");
    assert!(matches!(err, Error::UnreadableTokenFile { .. }), "{err:?}");
    assert!(
        err.to_string().contains("projected serviceAccountToken volume"),
        "{err}"
    );

    let empty = TokenFile::with("\n");
    let err = QuayProvider::new(QuaySettings {
        token_file: empty.path.clone(),
        ..QuaySettings::new(ROBOT)
    })
    .await
    .expect_err("empty");
    assert!(matches!(err, Error::EmptyTokenFile(_)), "{err:?}");

    let certificate = TokenFile::with("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----");
    let err = QuayProvider::new(QuaySettings {
        token_file: certificate.path.clone(),
        ..QuaySettings::new(ROBOT)
    })
    .await
    .expect_err("not a JWT");
    assert!(matches!(err, Error::TokenNotJwt(_)), "{err:?}");
    assert!(!err.to_string().contains("MIIB"), "{err}");
}

#[tokio::test]
async fn the_fake_is_untrusted_without_the_test_ca() {
    let fake = FakeGithubQuay::start(&[]);
    let file = TokenFile::with(&service_account_jwt("regcreds"));
    let settings = QuaySettings {
        ca_file: None,
        ..settings(&fake, &file)
    };
    let err = QuayProvider::new(settings)
        .await
        .expect("valid")
        .mint()
        .await
        .expect_err("untrusted");
    assert!(err.is_transient(), "{err}");
    assert!(fake.requests().is_empty());
}
