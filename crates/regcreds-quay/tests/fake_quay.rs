//! `QuayProvider` against the HTTPS fake of Quay's robot federation endpoint
//! (tests/fixtures/fake_github_quay.py): Basic auth with the robot name and the ServiceAccount JWT, a
//! robot token back. The fake's throwaway CA is trusted by the provider's own client only (`ca_file`).

use regcreds_fakes::github_quay as fake;
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

const ISSUER: &str = "https://kubernetes.default.svc.cluster.local";

/// A JWT with `header` and `claims` (unsigned: the fake compares tokens, Quay would verify them).
fn jwt(header: &str, claims: &serde_json::Value) -> String {
    format!(
        "{}.{}.c2lnbmF0dXJl",
        URL_SAFE_NO_PAD.encode(header),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    )
}

/// The claims of a projected ServiceAccount token for `subject` in namespace `regcreds`.
fn sa_claims(subject: &str) -> serde_json::Value {
    let now = Utc::now().timestamp();
    serde_json::json!({
        "iss": ISSUER,
        "sub": format!("system:serviceaccount:regcreds:{subject}"),
        "aud": [HOST],
        "iat": now - 60,
        "exp": now + 3600,
    })
}

/// A ServiceAccount-token-shaped JWT as the API server issues it: RS256 with a `kid`.
fn service_account_jwt(subject: &str) -> String {
    jwt(r#"{"alg":"RS256","kid":"k1"}"#, &sa_claims(subject))
}

/// The robot's federation in Quay: one entry per subject, for [`ISSUER`].
fn federation(subjects: &[&str], audiences: Option<&[&str]>) -> String {
    let entries: Vec<serde_json::Value> = subjects
        .iter()
        .map(|s| {
            let mut entry = serde_json::json!({
                "issuer": ISSUER,
                "subject": format!("system:serviceaccount:regcreds:{s}"),
            });
            if let Some(audiences) = audiences {
                entry["audiences"] = serde_json::json!(audiences);
            }
            entry
        })
        .collect();
    serde_json::Value::Array(entries).to_string()
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

/// Mints once with `token` in the file against a fake started with `env`; the refusal's text.
async fn refusal(env: &[(&str, &str)], token: &str) -> regcreds_core::Error {
    let fake = FakeGithubQuay::start(env);
    let file = TokenFile::with(token);
    let err = QuayProvider::new(settings(&fake, &file))
        .await
        .expect("valid")
        .mint()
        .await
        .expect_err("refused");
    assert!(
        !err.to_string().contains(&token[token.len() - 30..]),
        "never the token: {err}"
    );
    err
}

#[tokio::test]
async fn another_subject_is_a_permanent_400_with_quays_reason_a_hint_and_no_token() {
    let wrong = service_account_jwt("someone-else");
    let fake = FakeGithubQuay::start(&[]);
    let file = TokenFile::with(&wrong);
    let err = QuayProvider::new(settings(&fake, &file))
        .await
        .expect("valid")
        .mint()
        .await
        .expect_err("400");

    assert!(!err.is_transient(), "{err}");
    let message = err.to_string();
    assert_eq!(
        message,
        format!(
            "provider quay: robot federation for {ROBOT} at {}{EXCHANGE}: HTTP 400 \"Token does not match robot\": \
             Quay refused the ServiceAccount token for {ROBOT}: the token's subject is not the one federated: the \
             robot's federation entry must name system:serviceaccount:<namespace>:<ServiceAccount> of the pod whose \
             token this is (regcreds' own; in plugin token mode, the pulling pod's)",
            fake.url
        )
    );
    assert!(!message.contains(&wrong[..30]), "{message}");
}

#[tokio::test]
async fn a_token_without_kid_is_refused_as_quay_does() {
    let token = jwt(r#"{"alg":"RS256"}"#, &sa_claims("regcreds"));
    let err = refusal(&[], &token).await;
    assert!(!err.is_transient(), "{err}");
    assert!(
        err.to_string().contains(
            "HTTP 400 \"Invalid token: Missing `kid` header\": Quay refused the ServiceAccount token for \
             myorg+puller: Quay needs a kid in the token's header"
        ),
        "{err}"
    );
}

#[tokio::test]
async fn only_rs256_and_rs384_are_accepted() {
    for alg in ["ES256", "HS256", "PS256"] {
        let token = jwt(
            &format!(r#"{{"alg":"{alg}","kid":"k1"}}"#),
            &sa_claims("regcreds"),
        );
        let err = refusal(&[], &token).await;
        assert!(
            err.to_string().contains(
                "HTTP 400 \"Invalid token: The specified alg value is not allowed\": Quay refused the \
                 ServiceAccount token for myorg+puller: Quay accepts RS256 or RS384 signatures only"
            ),
            "{alg}: {err}"
        );
    }
    let fake = FakeGithubQuay::start(&[]);
    let file = TokenFile::with(&jwt(r#"{"alg":"RS384","kid":"k1"}"#, &sa_claims("regcreds")));
    QuayProvider::new(settings(&fake, &file))
        .await
        .expect("valid")
        .mint()
        .await
        .expect("RS384 is accepted");
}

#[tokio::test]
async fn the_audience_is_checked_when_the_federation_lists_audiences() {
    let listed = federation(&["regcreds"], Some(&["sts.quay.example"]));
    let err = refusal(
        &[("FAKE_QUAY_FEDERATION", &listed)],
        &service_account_jwt("regcreds"),
    )
    .await;
    assert!(
        err.to_string().contains(
            "HTTP 400 \"Invalid token: Audience doesn't match\": Quay refused the ServiceAccount token for \
             myorg+puller: the robot's federation entry lists audiences and the token's aud is none of them: \
             set the projected token's audience (chart value providers.quay.audience; in plugin token mode \
             kubeletPlugin.tokenAttributes.serviceAccountTokenAudience) to one of them"
        ),
        "{err}"
    );

    let mut claims = sa_claims("regcreds");
    claims["aud"] = serde_json::json!(["other", "sts.quay.example"]);
    let fake = FakeGithubQuay::start(&[("FAKE_QUAY_FEDERATION", &listed)]);
    let file = TokenFile::with(&jwt(r#"{"alg":"RS256","kid":"k1"}"#, &claims));
    QuayProvider::new(settings(&fake, &file))
        .await
        .expect("valid")
        .mint()
        .await
        .expect("one listed audience is enough");

    let unlisted = federation(&["regcreds"], None);
    claims["aud"] = serde_json::json!(["anything"]);
    let fake = FakeGithubQuay::start(&[("FAKE_QUAY_FEDERATION", &unlisted)]);
    let file = TokenFile::with(&jwt(r#"{"alg":"RS256","kid":"k1"}"#, &claims));
    QuayProvider::new(settings(&fake, &file))
        .await
        .expect("valid")
        .mint()
        .await
        .expect("no audiences listed: aud is not checked");
}

/// The fake's extra environment, the token sent, and the expected part of the refusal.
type Case<'a> = (Vec<(&'a str, &'a str)>, String, &'a str);

#[tokio::test]
async fn issuer_federation_expiry_and_signature_refusals_each_get_their_hint() {
    let mut expired = sa_claims("regcreds");
    expired["exp"] = serde_json::json!(Utc::now().timestamp() - 120);
    let mut foreign = sa_claims("regcreds");
    foreign["iss"] = serde_json::json!("https://oidc.other.example");
    let header = r#"{"alg":"RS256","kid":"k1"}"#;
    let good = service_account_jwt("regcreds");
    let cases: [Case; 4] = [
        (
            vec![],
            jwt(header, &expired),
            "HTTP 400 \"Invalid token: Signature has expired\": Quay refused the ServiceAccount token for \
             myorg+puller: the token has expired",
        ),
        (
            vec![],
            jwt(header, &foreign),
            "HTTP 400 \"issuer https://oidc.other.example not configured for this robot\": Quay refused the \
             ServiceAccount token for myorg+puller: the robot's federation has no entry for the token's issuer",
        ),
        (
            vec![("FAKE_QUAY_FEDERATION", "[]")],
            good.clone(),
            "HTTP 400 \"Robot does not have federated login configured\": Quay refused the ServiceAccount token \
             for myorg+puller: the robot has no federation",
        ),
        (
            vec![("FAKE_QUAY_SA_TOKEN", "eyJ.another.token")],
            good,
            "HTTP 400 \"Invalid token: Signature verification failed\": Quay refused the ServiceAccount token \
             for myorg+puller: the signature does not match the issuer's keys",
        ),
    ];
    for (env, token, expected) in cases {
        let err = refusal(&env, &token).await;
        assert!(!err.is_transient(), "{err}");
        assert!(err.to_string().contains(expected), "{expected}\n{err}");
    }
}

#[tokio::test]
async fn quays_500_on_an_undecodable_token_is_transient_with_a_hint() {
    // A JSON header (regcreds checks that much) over claims that are not JSON: PyJWT DecodeError.
    let err = refusal(
        &[],
        "eyJhbGciOiJSUzI1NiIsImtpZCI6ImsxIn0.bm90IGpzb24gYXQgYWxs.c2lnbmF0dXJl",
    )
    .await;
    assert!(err.is_transient(), "{err}");
    assert!(
        err.to_string().contains(
            "HTTP 500: Quay failed while checking the ServiceAccount token for myorg+puller; a frequent cause \
             is an issuer whose OIDC discovery document"
        ),
        "{err}"
    );
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
        .expect_err("400");
    assert!(!err.is_transient(), "{err}");
    assert!(
        err.to_string().contains(
            "HTTP 400 \"Could not find robot with specified username\": Quay refused the ServiceAccount token \
             for myorg+nobody: no such robot on this Quay"
        ),
        "{err}"
    );
}

#[tokio::test]
async fn the_token_file_is_re_read_on_every_mint_as_kubelet_rotates_it() {
    let both = federation(&["first", "rotated"], None);
    let fake = FakeGithubQuay::start(&[("FAKE_QUAY_FEDERATION", &both)]);
    let (first, rotated) = (service_account_jwt("first"), service_account_jwt("rotated"));
    let file = TokenFile::with(&first);
    let provider = QuayProvider::new(settings(&fake, &file)).await.expect("valid");
    provider.mint().await.expect("first mint");
    std::fs::write(&file.path, &rotated).expect("rotate");
    provider.mint().await.expect("second mint");
    std::fs::write(&file.path, "").expect("truncate");
    let err = provider.mint().await.expect_err("an empty file");
    assert!(err.is_transient(), "worth a retry: {err}");
    assert!(err.to_string().contains("is empty"), "{err}");

    let sent: Vec<String> = fake.requests_to(EXCHANGE).iter().map(basic_auth).collect();
    assert_eq!(
        sent,
        vec![format!("{ROBOT}:{first}"), format!("{ROBOT}:{rotated}"),]
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
