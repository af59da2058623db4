//! `GhcrProvider` against the HTTPS fake of GitHub's installation-token endpoint
//! (tests/fixtures/fake_github_quay.py), which checks the app JWT's RS256 signature with the App's public
//! key, its claims and headers the way GitHub documents them. The fake's throwaway CA is trusted by the
//! provider's own client only (`ca_file`).

use regcreds_fakes::github_quay as fake;
use std::{path::Path, time::Duration};

use chrono::Utc;
use fake::{FakeGithubQuay, generate_app_key};
use regcreds_core::Provider;
use regcreds_ghcr::{Error, GhcrProvider, GhcrSettings, KeyError, PrivateKey, TOKEN_USER};

const APP_ID: &str = "123456";
const INSTALLATION: &str = "987654";
const TOKEN_PATH: &str = "/app/installations/987654/access_tokens";
const TOKEN: &str = "ghs_16C7e42F292c6912E7710c838347Ae178B4a";

/// A key pair in a temp dir and a fake that trusts its public half.
struct World {
    keys: tempfile::TempDir,
    fake: FakeGithubQuay,
}

impl World {
    fn start(env: &[(&str, &str)]) -> Self {
        let keys = tempfile::tempdir().expect("tempdir");
        generate_app_key(keys.path());
        let public = keys.path().join("public.pem");
        let mut all = vec![
            ("FAKE_GITHUB_PUBLIC_KEY", public.to_str().expect("utf8")),
            ("FAKE_GITHUB_APP_ID", APP_ID),
            ("FAKE_GITHUB_INSTALLATION_ID", INSTALLATION),
        ];
        all.extend_from_slice(env);
        let fake = FakeGithubQuay::start(&all);
        Self { keys, fake }
    }

    fn key(&self, name: &str) -> std::path::PathBuf {
        self.keys.path().join(name)
    }

    /// Settings aimed at the fake, with the PKCS#1 key file GitHub would have handed out.
    fn settings(&self) -> GhcrSettings {
        GhcrSettings {
            api_url: self.fake.url.clone(),
            ca_file: Some(self.fake.ca_file()),
            timeout: Duration::from_secs(10),
            ..GhcrSettings::new(APP_ID, INSTALLATION, PrivateKey::File(self.key("pkcs1.pem")))
        }
    }
}

async fn provider(settings: GhcrSettings) -> GhcrProvider {
    GhcrProvider::new(settings).await.expect("valid settings")
}

#[tokio::test]
async fn a_pkcs1_app_key_is_exchanged_for_an_installation_token_written_for_ghcr_io() {
    let world = World::start(&[("FAKE_GITHUB_TOKEN", TOKEN)]);
    let set = provider(world.settings()).await.mint().await.expect("mint");

    assert_eq!(set.registries(), vec!["ghcr.io"]);
    let credential = set.iter().next().expect("one entry");
    assert_eq!(credential.username, TOKEN_USER);
    assert_eq!(credential.password.expose(), TOKEN);
    let request = &world.fake.requests_to(TOKEN_PATH)[0];
    assert_eq!(request.method, "POST");
    assert_eq!(request.headers["accept"], "application/vnd.github+json");
    assert_eq!(request.headers["x-github-api-version"], "2022-11-28");
    assert!(request.headers["authorization"].starts_with("Bearer eyJ"));
    let claims = request.claims.as_ref().expect("the fake decoded the JWT");
    assert_eq!(claims["iss"], 123_456);
    let (iat, exp) = (
        claims["iat"].as_i64().expect("iat"),
        claims["exp"].as_i64().expect("exp"),
    );
    let now = Utc::now().timestamp();
    assert!(
        (now - 65..=now - 55).contains(&iat),
        "iat {iat} is 60 s in the past of {now}"
    );
    assert!(
        exp - now <= 600 && exp > now,
        "exp {exp} within 10 minutes of {now}"
    );
    assert_eq!(
        request.json,
        Some(serde_json::json!({"permissions": {"packages": "read"}})),
        "narrowed to packages:read by default"
    );
}

#[tokio::test]
async fn an_inline_pkcs8_key_works_as_well() {
    let world = World::start(&[]);
    let pem = std::fs::read_to_string(world.key("pkcs8.pem")).expect("pkcs8");
    let settings = GhcrSettings {
        private_key: PrivateKey::Pem(pem.into()),
        ..world.settings()
    };
    let set = provider(settings).await.mint().await.expect("mint");
    let password = set.iter().next().expect("entry").password.expose().to_string();
    assert!(password.starts_with("ghs_"), "a generated installation token");
}

#[tokio::test]
async fn the_expiry_is_expires_at_of_the_reply() {
    let world = World::start(&[("FAKE_TOKEN_TTL", "120")]);
    let set = provider(world.settings()).await.mint().await.expect("mint");
    let left = (set.expires_at().expect("expiry") - Utc::now()).num_seconds();
    assert!(
        (110..=120).contains(&left),
        "token lives {left} s, not the fake's 120 s"
    );
}

#[tokio::test]
async fn repositories_ids_and_permissions_narrow_the_token() {
    let world = World::start(&[]);
    let settings = GhcrSettings {
        repositories: vec!["app".into()],
        repository_ids: vec!["1296269".into()],
        permissions: Some(
            [
                ("packages".to_string(), "read".to_string()),
                ("metadata".into(), "read".into()),
            ]
            .into(),
        ),
        ..world.settings()
    };
    provider(settings).await.mint().await.expect("mint");
    assert_eq!(
        world.fake.requests_to(TOKEN_PATH)[0].json,
        Some(serde_json::json!({
            "repositories": ["app"],
            "repository_ids": [1_296_269],
            "permissions": {"metadata": "read", "packages": "read"},
        }))
    );

    let inherit = GhcrSettings {
        permissions: None,
        ..world.settings()
    };
    provider(inherit).await.mint().await.expect("mint");
    let second = &world.fake.requests_to(TOKEN_PATH)[1];
    assert_eq!(
        (second.body.as_str(), second.json.clone()),
        ("", None),
        "no body at all"
    );
}

#[tokio::test]
async fn narrowing_beyond_the_installation_is_a_permanent_422_with_a_hint() {
    let world = World::start(&[]);
    let settings = GhcrSettings {
        repositories: vec!["secret-project".into()],
        ..world.settings()
    };
    let err = provider(settings).await.mint().await.expect_err("422");
    assert!(!err.is_transient(), "{err}");
    let message = err.to_string();
    assert!(
        message.contains("HTTP 422 \"There is at least one repository"),
        "{message}"
    );
    assert!(message.contains("does the App have Packages: read"), "{message}");
}

#[tokio::test]
async fn a_key_github_does_not_know_is_a_permanent_401_and_nothing_secret_is_echoed() {
    let world = World::start(&[]);
    let other = tempfile::tempdir().expect("tempdir");
    generate_app_key(other.path());
    let settings = GhcrSettings {
        private_key: PrivateKey::File(other.path().join("pkcs1.pem")),
        ..world.settings()
    };
    let err = provider(settings).await.mint().await.expect_err("wrong key");
    assert!(!err.is_transient(), "{err}");
    let message = err.to_string();
    assert!(
        message.starts_with(&format!(
            "provider ghcr: installation token for installation {INSTALLATION} at {}{TOKEN_PATH}: HTTP 401 \
             \"A JSON web token could not be decoded\": GitHub refused the app JWT",
            world.fake.url
        )),
        "{message}"
    );
    let jwt = world.fake.requests_to(TOKEN_PATH)[0].headers["authorization"].replace("Bearer ", "");
    assert!(!message.contains(&jwt[..40]), "{message}");
}

#[tokio::test]
async fn a_wrong_app_id_or_installation_is_refused_with_its_own_message() {
    let world = World::start(&[]);
    let wrong_app = GhcrSettings {
        app_id: "654321".into(),
        ..world.settings()
    };
    let err = provider(wrong_app).await.mint().await.expect_err("wrong app");
    assert!(
        err.to_string().contains("HTTP 401 \"Integration not found\""),
        "{err}"
    );

    let wrong_installation = GhcrSettings {
        installation_id: "111".into(),
        ..world.settings()
    };
    let err = provider(wrong_installation).await.mint().await.expect_err("404");
    assert!(!err.is_transient(), "{err}");
    assert!(
        err.to_string()
            .contains("HTTP 404 \"Not Found\": no installation 111 of this App"),
        "{err}"
    );
}

#[tokio::test]
async fn an_outage_is_transient() {
    let fail = format!("{TOKEN_PATH}=503");
    let world = World::start(&[("FAKE_FAIL", &fail)]);
    let err = provider(world.settings()).await.mint().await.expect_err("503");
    assert!(err.is_transient(), "{err}");
    assert!(err.to_string().contains("HTTP 503"), "{err}");
}

#[tokio::test]
async fn enterprise_server_uses_its_api_v3_base_and_its_own_registry_host() {
    let world = World::start(&[("FAKE_GITHUB_ENTERPRISE", "1")]);
    let settings = GhcrSettings {
        api_url: format!("{}/api/v3", world.fake.url),
        registry: "containers.github.example.com".into(),
        ..world.settings()
    };
    let set = provider(settings).await.mint().await.expect("mint");
    assert_eq!(set.registries(), vec!["containers.github.example.com"]);
    assert_eq!(world.fake.requests_to(&format!("/api/v3{TOKEN_PATH}")).len(), 1);
}

/// GitHub Enterprise Server answers the REST API only under `/api/v3`: a base URL without it gets the
/// web front end's 404, and the error suggests the URL with `/api/v3`.
#[tokio::test]
async fn an_enterprise_server_base_url_without_api_v3_is_a_404_that_suggests_it() {
    let world = World::start(&[("FAKE_GITHUB_ENTERPRISE", "1")]);
    let err = provider(world.settings()).await.mint().await.expect_err("404");
    assert!(!err.is_transient(), "{err}");
    assert_eq!(world.fake.requests_to(TOKEN_PATH)[0].status, Some(404));
    let message = err.to_string();
    assert!(
        message.ends_with(&format!(
            ": HTTP 404: no installation {INSTALLATION} of this App: check the installation ID and that the App \
             is still installed; GitHub Enterprise Server answers only under /api/v3: should the API URL \
             (REGCREDS_GHCR_API_URL) be {}/api/v3?",
            world.fake.url
        )),
        "{message}"
    );
}

/// And github.com has no `/api/v3` prefix.
#[tokio::test]
async fn api_v3_on_github_com_is_a_404() {
    let world = World::start(&[]);
    let settings = GhcrSettings {
        api_url: format!("{}/api/v3", world.fake.url),
        ..world.settings()
    };
    let err = provider(settings).await.mint().await.expect_err("404");
    assert!(!err.is_transient(), "{err}");
    assert!(
        err.to_string()
            .contains("HTTP 404 \"Not Found\": no installation 987654 of this App"),
        "{err}"
    );
    assert!(!err.to_string().contains("should the API URL"), "{err}");
}

/// GitHub's stateless installation tokens (`ghs_<APPID>_<JWT>`, about 520 characters, rolled out from
/// 2026-04-27) go into the Secret whole, like the 40-character ones before them.
#[tokio::test]
async fn a_stateless_installation_token_of_about_520_characters_is_written_whole() {
    let world = World::start(&[]);
    let set = provider(world.settings()).await.mint().await.expect("mint");

    let request = &world.fake.requests_to(TOKEN_PATH)[0];
    assert_eq!(request.status, Some(201), "GitHub answers 201 Created");
    let issued = request.issued_token.as_deref().expect("issued");
    assert!(
        issued.len() > 500 && issued.starts_with("ghs_123456_"),
        "{issued}"
    );
    assert_eq!(issued.matches('.').count(), 2, "a JWT after ghs_<APPID>_");
    let credential = set.iter().next().expect("entry");
    assert_eq!(credential.password.expose(), issued, "not cut, not changed");
    assert_eq!(credential.username, TOKEN_USER);
}

#[tokio::test]
async fn a_used_up_rate_limit_says_until_when_and_nothing_is_asked_before_then() {
    let world = World::start(&[
        ("FAKE_GITHUB_RATE_LIMIT", "primary"),
        ("FAKE_GITHUB_RATE_LIMIT_WAIT", "1200"),
    ]);
    let provider = provider(world.settings()).await;
    let err = provider.mint().await.expect_err("403");
    assert!(err.is_transient(), "worth retrying later: {err}");
    let message = err.to_string();
    assert!(
        message.starts_with(&format!(
            "provider ghcr: installation token for installation {INSTALLATION} at {}{TOKEN_PATH}: HTTP 403 \
             \"API rate limit exceeded for installation ID {INSTALLATION}.\": rate limited by GitHub \
             (x-ratelimit-reset): not asking again before ",
            world.fake.url
        )),
        "{message}"
    );
    assert!(
        message.ends_with(" s)") && message.contains("(in 11"),
        "about 1200 s: {message}"
    );
    let jwt = world.fake.sent_credentials()[0].clone();
    assert!(!message.contains(&jwt[jwt.len() - 20..]), "{message}");

    let again = provider.mint().await.expect_err("still limited");
    assert!(again.is_transient());
    assert!(
        again
            .to_string()
            .contains(": rate limited by GitHub (x-ratelimit-reset): not asking again before "),
        "{again}"
    );
    assert_eq!(
        world.fake.requests_to(TOKEN_PATH).len(),
        1,
        "GitHub asks for no request before x-ratelimit-reset"
    );
}

#[tokio::test]
async fn a_secondary_rate_limit_waits_for_retry_after() {
    let world = World::start(&[
        ("FAKE_GITHUB_RATE_LIMIT", "secondary"),
        ("FAKE_GITHUB_RATE_LIMIT_WAIT", "90"),
    ]);
    let provider = provider(world.settings()).await;
    let err = provider.mint().await.expect_err("429");
    assert!(err.is_transient(), "{err}");
    let message = err.to_string();
    assert!(
        message.contains(
            "HTTP 429 \"You have exceeded a secondary rate limit. Please wait a few minutes before you try again."
        ),
        "{message}"
    );
    assert!(
        message.contains(": rate limited by GitHub (retry-after): not asking again before "),
        "{message}"
    );
    assert!(
        message.contains("(in 89 s)") || message.contains("(in 90 s)"),
        "{message}"
    );
    provider.mint().await.expect_err("not before retry-after");
    assert_eq!(world.fake.requests_to(TOKEN_PATH).len(), 1);
}

#[tokio::test]
async fn a_secondary_rate_limit_403_without_headers_waits_a_minute() {
    let world = World::start(&[("FAKE_GITHUB_RATE_LIMIT", "secondary-403")]);
    let err = provider(world.settings()).await.mint().await.expect_err("403");
    assert!(err.is_transient(), "not a configuration problem: {err}");
    let message = err.to_string();
    assert!(
        message.contains("HTTP 403 \"You have exceeded a secondary rate limit."),
        "{message}"
    );
    assert!(
        message.contains(
            ": rate limited by GitHub (a secondary limit without retry-after: at least a minute): not asking \
             again before "
        ),
        "{message}"
    );
}

#[tokio::test]
async fn the_key_file_is_re_read_on_every_mint() {
    let world = World::start(&[]);
    let dir = tempfile::tempdir().expect("tempdir");
    let key_file = dir.path().join("key.pem");
    std::fs::copy(world.key("pkcs1.pem"), &key_file).expect("copy");
    let settings = GhcrSettings {
        private_key: PrivateKey::File(key_file.clone()),
        ..world.settings()
    };
    let provider = provider(settings).await;
    provider.mint().await.expect("first mint");

    std::fs::write(&key_file, "being rewritten").expect("write");
    let err = provider.mint().await.expect_err("a half-written key");
    assert!(err.is_transient(), "worth a retry: {err}");
    assert!(err.to_string().contains("private key file"), "{err}");
    assert_eq!(
        world.fake.requests_to(TOKEN_PATH).len(),
        1,
        "nothing sent without a key"
    );

    let other = tempfile::tempdir().expect("tempdir");
    generate_app_key(other.path());
    std::fs::copy(other.path().join("pkcs8.pem"), &key_file).expect("rotate");
    let err = provider
        .mint()
        .await
        .expect_err("GitHub does not know the rotated key");
    assert!(
        err.to_string().contains("HTTP 401"),
        "the new key was used: {err}"
    );
}

#[tokio::test]
async fn a_missing_or_malformed_key_fails_at_start_up_naming_the_problem() {
    let dir = tempfile::tempdir().expect("tempdir");
    let missing = dir.path().join("missing.pem");
    let result = GhcrProvider::new(GhcrSettings::new(APP_ID, INSTALLATION, PrivateKey::File(missing))).await;
    assert!(
        matches!(result, Err(Error::UnreadableKeyFile { .. })),
        "{result:?}"
    );

    let certificate = dir.path().join("cert.pem");
    std::fs::write(
        &certificate,
        "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n",
    )
    .expect("write");
    let err = GhcrProvider::new(GhcrSettings::new(
        APP_ID,
        INSTALLATION,
        PrivateKey::File(certificate.clone()),
    ))
    .await
    .expect_err("a certificate");
    assert!(
        matches!(&err, Error::Key { source: KeyError::NotAnRsaPrivateKey(label), .. } if label == "CERTIFICATE"),
        "{err:?}"
    );
    assert!(
        err.to_string().contains(&certificate.display().to_string()),
        "names the file: {err}"
    );

    let inline = PrivateKey::Pem("MIIEowIBAAKCAQEA-not-pem".into());
    let err = GhcrProvider::new(GhcrSettings::new(APP_ID, INSTALLATION, inline))
        .await
        .expect_err("not PEM");
    assert!(
        matches!(
            &err,
            Error::Key {
                source: KeyError::NotPem,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(!err.to_string().contains("MIIEow"), "{err}");
}

#[tokio::test]
async fn the_fake_is_untrusted_without_the_test_ca() {
    let world = World::start(&[]);
    let settings = GhcrSettings {
        ca_file: None,
        ..world.settings()
    };
    let err = provider(settings).await.mint().await.expect_err("untrusted");
    assert!(err.is_transient(), "{err}");
    assert!(
        world.fake.requests().is_empty(),
        "no request through an untrusted TLS session"
    );
}

/// The key committed for unit tests is a real PKCS#1 key in GitHub's format.
#[tokio::test]
async fn the_committed_test_key_is_accepted() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/test-app-key.pem");
    GhcrProvider::new(GhcrSettings::new(APP_ID, INSTALLATION, PrivateKey::File(path)))
        .await
        .expect("PKCS#1 with a leading comment line");
}
