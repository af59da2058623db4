//! `AcrProvider` against the HTTPS fake of Entra ID and ACR (tests/fixtures/fake_cloud.py), whose
//! throwaway CA is trusted by the provider's own client only (`ca_file`), never the system store.

mod support;

use std::time::{Duration, Instant};

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use chrono::Utc;
use regcreds_acr::{ARM_SCOPE, AcrAuth, AcrProvider, AcrSettings, DEFAULT_SCOPE, REFRESH_TOKEN_USER};
use regcreds_core::{Credential, Provider};
use regcreds_verify::{ImageRef, Outcome, Verifier, VerifierOptions};
use support::FakeCloud;

const REGISTRY: &str = "myregistry.azurecr.io";

fn client_secret(secret: &str) -> AcrAuth {
    AcrAuth::ClientSecret {
        tenant_id: "tenant-a".into(),
        client_id: "app-1".into(),
        client_secret: secret.into(),
    }
}

/// Settings aimed at the fake: authority, exchange and trust.
fn settings(fake: &FakeCloud, auth: AcrAuth) -> AcrSettings {
    AcrSettings {
        authority_host: Some(fake.url.clone()),
        exchange_base_url: Some(fake.url.clone()),
        ca_file: Some(fake.ca_file()),
        timeout: Duration::from_secs(10),
        ..AcrSettings::new(vec![REGISTRY.into()], auth)
    }
}

fn claims(jwt: &str) -> serde_json::Value {
    let payload = jwt.split('.').nth(1).expect("JWT payload");
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).expect("base64url")).expect("claims")
}

#[tokio::test]
async fn a_client_secret_is_exchanged_for_a_refresh_token_of_the_null_guid_user() {
    let fake = FakeCloud::start(&[]);
    let provider = AcrProvider::new(settings(&fake, client_secret("test-client-secret")))
        .await
        .expect("valid");
    let set = provider.mint().await.expect("mint");

    let credential = set.iter().next().expect("one entry");
    assert_eq!(set.registries(), vec![REGISTRY]);
    assert_eq!(credential.username, REFRESH_TOKEN_USER);
    assert_eq!(claims(credential.password.expose())["aud"], REGISTRY);
    let entra = &fake.requests_to("/tenant-a/oauth2/v2.0/token")[0];
    assert_eq!(entra.form["client_id"], "app-1");
    assert_eq!(entra.form["scope"], DEFAULT_SCOPE);
    let exchange = &fake.requests_to("/oauth2/exchange")[0];
    assert_eq!(exchange.form["grant_type"], "access_token");
    assert_eq!(
        exchange.form["service"], REGISTRY,
        "service stays the login server, not the fake's address"
    );
    assert_eq!(exchange.form["tenant"], "tenant-a");
    assert!(exchange.form["access_token"].starts_with("entra.tenant-a.app-1."));
}

#[tokio::test]
async fn the_expiry_is_the_refresh_tokens_exp() {
    let fake = FakeCloud::start(&[("FAKE_REFRESH_TTL", "4500")]);
    let provider = AcrProvider::new(settings(&fake, client_secret("test-client-secret")))
        .await
        .expect("valid");
    let set = provider.mint().await.expect("mint");

    let left = set.expires_at().expect("expiry") - Utc::now();
    assert!(
        (4490..=4500).contains(&left.num_seconds()),
        "refresh token lives {left}, not ~75 min"
    );
}

#[tokio::test]
async fn the_entra_token_is_cached_between_mints() {
    let fake = FakeCloud::start(&[]);
    let provider = AcrProvider::new(settings(&fake, client_secret("test-client-secret")))
        .await
        .expect("valid");
    provider.mint().await.expect("first mint");
    provider.mint().await.expect("second mint");

    assert_eq!(fake.requests_to("/tenant-a/oauth2/v2.0/token").len(), 1);
    assert_eq!(
        fake.requests_to("/oauth2/exchange").len(),
        2,
        "every mint gets a fresh refresh token"
    );
}

#[tokio::test]
async fn a_wrong_client_secret_is_permanent_and_not_echoed() {
    let fake = FakeCloud::start(&[]);
    let provider = AcrProvider::new(settings(&fake, client_secret("wrong-secret-value")))
        .await
        .expect("valid");
    let err = provider.mint().await.expect_err("Entra refuses the secret");

    assert!(!err.is_transient(), "{err}");
    let message = err.to_string();
    assert!(
        message.contains("Entra token (client-secret): HTTP 401 (AADSTS 7000215)"),
        "{message}"
    );
    assert!(
        !message.contains("wrong-secret-value") && !message.contains("app-1"),
        "{message}"
    );
    assert!(fake.requests_to("/oauth2/exchange").is_empty());
}

#[tokio::test]
async fn an_exchange_outage_is_transient() {
    let fake = FakeCloud::start(&[("FAKE_FAIL", "/oauth2/exchange=503")]);
    let provider = AcrProvider::new(settings(&fake, client_secret("test-client-secret")))
        .await
        .expect("valid");
    let err = provider.mint().await.expect_err("exchange is down");

    assert!(err.is_transient(), "{err}");
    assert!(
        err.to_string().contains(&format!(
            "exchange for {REGISTRY} at {}/oauth2/exchange",
            fake.url
        )),
        "{err}"
    );
    assert!(err.to_string().contains("HTTP 503 INJECTED"), "{err}");
}

#[tokio::test]
async fn a_registry_refusing_the_token_is_permanent_with_a_hint() {
    let fake = FakeCloud::start(&[("FAKE_FAIL", "/oauth2/exchange=401")]);
    let provider = AcrProvider::new(settings(&fake, client_secret("test-client-secret")))
        .await
        .expect("valid");
    let err = provider.mint().await.expect_err("registry refuses");

    assert!(!err.is_transient(), "{err}");
    assert!(
        err.to_string()
            .contains("HTTP 401 INJECTED: the registry refused the Entra token"),
        "{err}"
    );
}

#[tokio::test]
async fn the_default_scope_is_acrs_audience_which_a_registry_without_arm_tokens_accepts() {
    // The fake accepts only ACR's audience by default, as a registry with ARM-audience tokens disabled.
    let fake = FakeCloud::start(&[]);
    let provider = AcrProvider::new(settings(&fake, client_secret("test-client-secret")))
        .await
        .expect("valid");
    assert!(
        provider
            .describe()
            .ends_with("; Entra scope https://containerregistry.azure.net/.default"),
        "{}",
        provider.describe()
    );
    provider.mint().await.expect("mint");
    let entra = &fake.requests_to("/tenant-a/oauth2/v2.0/token")[0];
    assert_eq!(
        entra.form["scope"],
        "https://containerregistry.azure.net/.default"
    );
}

#[tokio::test]
async fn an_arm_scope_refused_by_a_registry_without_arm_tokens_names_the_scope_setting() {
    let fake = FakeCloud::start(&[]);
    let settings = AcrSettings {
        scope: Some(ARM_SCOPE.into()),
        ..settings(&fake, client_secret("test-client-secret"))
    };
    let err = AcrProvider::new(settings)
        .await
        .expect("valid")
        .mint()
        .await
        .expect_err("ARM audience refused");

    assert!(!err.is_transient(), "{err}");
    assert_eq!(
        fake.requests_to("/tenant-a/oauth2/v2.0/token")[0].form["scope"],
        ARM_SCOPE
    );
    let message = err.to_string();
    assert!(
        message.contains(
            "HTTP 401 UNAUTHORIZED: the registry refused the Entra token (does the identity have AcrPull on it? \
             does it accept tokens for https://management.azure.com/.default, set by REGCREDS_ACR_SCOPE? a \
             registry with ARM-audience tokens disabled accepts only ACR's audience, \
             https://containerregistry.azure.net/.default: unset REGCREDS_ACR_SCOPE)"
        ),
        "{message}"
    );
    let sent = &fake.requests_to("/oauth2/exchange")[0].form["access_token"];
    assert!(!message.contains(sent.as_str()), "{message}");
}

#[tokio::test]
async fn an_arm_scope_still_works_where_the_registry_accepts_arm_tokens() {
    let fake = FakeCloud::start(&[(
        "FAKE_ACR_AUDIENCES",
        "https://containerregistry.azure.net,https://management.azure.com",
    )]);
    let settings = AcrSettings {
        scope: Some(ARM_SCOPE.into()),
        ..settings(&fake, client_secret("test-client-secret"))
    };
    let set = AcrProvider::new(settings)
        .await
        .expect("valid")
        .mint()
        .await
        .expect("mint");
    assert_eq!(set.registries(), vec![REGISTRY]);
}

/// ACR wants the login server as `service` (Azure/acr docs/AAD-OAuth.md); the fake answers 400 to any
/// other, and the error names the value sent and where it comes from, never the Entra token.
#[tokio::test]
async fn an_exchange_for_another_login_server_is_a_400_naming_the_service_sent() {
    let fake = FakeCloud::start(&[("FAKE_ACR_LOGIN_SERVER", "otherregistry.azurecr.io")]);
    let err = AcrProvider::new(settings(&fake, client_secret("test-client-secret")))
        .await
        .expect("valid")
        .mint()
        .await
        .expect_err("service is not the fake's login server");

    assert!(!err.is_transient(), "{err}");
    let message = err.to_string();
    assert!(
        message.ends_with(&format!(
            "exchange for {REGISTRY} at {}/oauth2/exchange: HTTP 400 BAD_REQUEST: the registry refused the \
             request (is {REGISTRY}, sent as service, this registry's login server NAME.azurecr.io? \
             REGCREDS_ACR_REGISTRY names it, REGCREDS_ACR_EXCHANGE_URL only where the exchange is sent)",
            fake.url
        )),
        "{message}"
    );
    let sent = &fake.requests_to("/oauth2/exchange")[0].form["access_token"];
    assert!(!message.contains(sent.as_str()), "{message}");
}

/// The fake as the registry itself: its login server is the address it is reached at.
fn fake_as_registry(fake: &FakeCloud) -> (String, AcrSettings) {
    let login_server = fake.url.trim_start_matches("https://").to_string();
    let settings = AcrSettings {
        registries: vec![login_server.clone()],
        exchange_base_url: None,
        ..settings(fake, client_secret("test-client-secret"))
    };
    (login_server, settings)
}

fn verifier(fake: &FakeCloud) -> Verifier {
    Verifier::new(VerifierOptions {
        extra_root_certs: vec![std::fs::read(fake.ca_file()).expect("CA")],
        ..VerifierOptions::default()
    })
    .expect("verifier")
}

/// ACR's token endpoint answers `{"access_token": …}` alone (AAD-OAuth.md), not distribution's `token`:
/// a minted refresh token passes regcreds' check (the docker-style handshake with a probe image).
#[tokio::test]
async fn a_minted_refresh_token_passes_the_check_against_acrs_access_token_only_endpoint() {
    let fake = FakeCloud::start(&[("FAKE_ACR_LOGIN_SERVER", "")]);
    let (login_server, settings) = fake_as_registry(&fake);
    let set = AcrProvider::new(settings)
        .await
        .expect("valid")
        .mint()
        .await
        .expect("mint");
    let credential = set.iter().next().expect("entry");
    assert_eq!(credential.registry.as_str(), login_server);

    let probe = ImageRef::parse("team/app:v1").expect("probe");
    let result = verifier(&fake).check(credential, Some(&probe)).await;
    assert_eq!(result.outcome, Outcome::Ok);
    let token = &fake.requests_to("/oauth2/token")[0];
    assert_eq!(token.method, "GET");
    assert_eq!(token.query["service"], login_server);
    assert_eq!(token.query["scope"], "repository:team/app:pull");
    let manifest = &fake.requests_to("/v2/team/app/manifests/v1")[0];
    assert_eq!(manifest.method, "HEAD");
}

/// A refresh token the registry did not issue is refused by the token endpoint: the check says so with
/// ACR's error code, never the token.
#[tokio::test]
async fn a_refresh_token_the_registry_did_not_issue_fails_the_check_as_unauthorized() {
    let fake = FakeCloud::start(&[("FAKE_ACR_LOGIN_SERVER", "")]);
    let (login_server, _) = fake_as_registry(&fake);
    let forged = "eyJhbGciOiJSUzI1NiJ9.eyJleHAiOjQxMDI0NDQ4MDB9.Zm9yZ2Vk";
    let credential = Credential::new(
        login_server.parse().expect("host"),
        REFRESH_TOKEN_USER,
        regcreds_core::SecretString::new(forged),
    );
    let probe = ImageRef::parse("team/app").expect("probe");
    let result = verifier(&fake).check(&credential, Some(&probe)).await;

    let Outcome::Unauthorized { reason, code } = &result.outcome else {
        panic!("expected unauthorized, got {:?}", result.outcome);
    };
    assert_eq!(code.as_deref(), Some("UNAUTHORIZED"));
    assert!(reason.contains("/oauth2/token was refused: 401"), "{reason}");
    assert!(!reason.contains(forged), "{reason}");
}

#[tokio::test]
async fn the_fake_is_untrusted_without_the_test_ca() {
    let fake = FakeCloud::start(&[]);
    let settings = AcrSettings {
        ca_file: None,
        ..settings(&fake, client_secret("test-client-secret"))
    };
    let provider = AcrProvider::new(settings).await.expect("valid");
    let started = Instant::now();
    let err = provider.mint().await.expect_err("certificate not trusted");

    assert!(err.is_transient(), "{err}");
    assert!(err.to_string().contains("Entra token (client-secret)"), "{err}");
    assert!(
        fake.requests().is_empty(),
        "no request may get through an untrusted TLS session"
    );
    assert!(
        started.elapsed() < Duration::from_secs(12),
        "bounded by the timeout: {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn workload_identity_sends_the_federated_token_as_client_assertion() {
    let dir = tempfile::tempdir().expect("tempdir");
    let token_file = dir.path().join("azure-identity-token");
    let federated =
        "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJzeXN0ZW06c2VydmljZWFjY291bnQ6cmVnY3JlZHM6cmVnY3JlZHMifQ.c2ln";
    std::fs::write(&token_file, federated).expect("token file");
    let fake = FakeCloud::start(&[("FAKE_ASSERTION", federated)]);
    let auth = AcrAuth::WorkloadIdentity {
        tenant_id: Some("tenant-wi".into()),
        client_id: Some("wi-client".into()),
        token_file: Some(token_file),
    };
    let set = AcrProvider::new(settings(&fake, auth))
        .await
        .expect("valid")
        .mint()
        .await
        .expect("mint");

    assert_eq!(set.iter().next().expect("entry").username, REFRESH_TOKEN_USER);
    let entra = &fake.requests_to("/tenant-wi/oauth2/v2.0/token")[0];
    assert_eq!(entra.form["client_assertion"], federated);
    assert_eq!(
        entra.form["client_assertion_type"],
        "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
    );
    assert_eq!(
        fake.requests_to("/oauth2/exchange")[0].form["tenant"],
        "tenant-wi"
    );
}

#[tokio::test]
async fn a_missing_federated_token_file_is_a_construction_error() {
    let auth = AcrAuth::WorkloadIdentity {
        tenant_id: Some("tenant-wi".into()),
        client_id: Some("wi-client".into()),
        token_file: Some("/nonexistent/azure-identity-token".into()),
    };
    let result = AcrProvider::new(AcrSettings::new(vec![REGISTRY.into()], auth)).await;
    assert!(
        matches!(
            result,
            Err(regcreds_acr::Error::Identity {
                mode: "workload-identity",
                ..
            })
        ),
        "{result:?}"
    );
}

/// Managed identity picks its source from process environment (`IDENTITY_ENDPOINT` + `IDENTITY_HEADER`
/// = App Service), so the mint runs in a child process: this test binary again, filtered to
/// [`managed_identity_child`].
#[test]
fn managed_identity_uses_the_app_service_endpoint_from_the_environment() {
    let fake = FakeCloud::start(&[]);
    let output = std::process::Command::new(std::env::current_exe().expect("test binary"))
        .args([
            "--exact",
            "managed_identity_child",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("IDENTITY_ENDPOINT", format!("{}/msi/token", fake.url))
        .env("IDENTITY_HEADER", "test-identity-header")
        .env("REGCREDS_ACR_TEST_FAKE_URL", &fake.url)
        .env("REGCREDS_ACR_TEST_CA_FILE", fake.ca_file())
        .output()
        .expect("run child");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "child failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        stdout.contains(&format!("minted {REGISTRY} as {REFRESH_TOKEN_USER}")),
        "{stdout}"
    );

    let msi = &fake.requests_to("/msi/token")[0];
    assert_eq!(
        msi.query["resource"], "https://containerregistry.azure.net",
        "ACR's audience, the scope turned into a resource"
    );
    assert_eq!(msi.query["client_id"], "mi-client");
    assert!(fake.requests_to("/oauth2/exchange")[0].form["access_token"].starts_with("msi."));
}

/// Runs only as the child of [`managed_identity_uses_the_app_service_endpoint_from_the_environment`].
#[tokio::test]
#[ignore = "child process of managed_identity_uses_the_app_service_endpoint_from_the_environment"]
async fn managed_identity_child() {
    let (Ok(url), Ok(ca_file)) = (
        std::env::var("REGCREDS_ACR_TEST_FAKE_URL"),
        std::env::var("REGCREDS_ACR_TEST_CA_FILE"),
    ) else {
        // NB: `--include-ignored` runs reach here; the assertions are in the parent.
        println!(
            "only meaningful as the child of managed_identity_uses_the_app_service_endpoint_from_the_environment"
        );
        return;
    };
    let auth = AcrAuth::ManagedIdentity {
        client_id: Some("mi-client".into()),
    };
    let settings = AcrSettings {
        exchange_base_url: Some(url),
        ca_file: Some(ca_file.into()),
        ..AcrSettings::new(vec![REGISTRY.into()], auth)
    };
    let set = AcrProvider::new(settings)
        .await
        .expect("valid")
        .mint()
        .await
        .expect("mint");
    let credential = set.iter().next().expect("entry");
    println!("minted {} as {}", credential.registry, credential.username);
}

fn pod_token(subject: &str) -> String {
    regcreds_fakes::tokens::service_account_token(
        "https://oidc.example/cluster",
        subject,
        "api://AzureADTokenExchange",
    )
}

fn pod(token: &str, client_id: Option<&str>) -> regcreds_core::PodIdentity {
    let mut annotations = std::collections::BTreeMap::new();
    if let Some(client_id) = client_id {
        annotations.insert(
            regcreds_acr::CLIENT_ID_ANNOTATION.to_string(),
            client_id.to_string(),
        );
    }
    regcreds_core::PodIdentity {
        token: token.into(),
        annotations,
    }
}

/// The kubelet plugin's token mode: each pod's token is the client assertion of the app registration its
/// ServiceAccount names (Azure workload identity's annotations), and Entra's federated credentials
/// decide; the provider's own workload identity plays no part.
#[tokio::test]
async fn in_token_mode_each_pod_pulls_as_its_own_app_registration_and_entra_decides() {
    let fake = FakeCloud::start(&[(
        "FAKE_FEDERATED_CREDENTIALS",
        r#"{"app-team-a": [{"issuer": "https://oidc.example/cluster", "subject": "system:serviceaccount:team-a:puller"}],
            "app-team-b": [{"issuer": "https://oidc.example/cluster", "subject": "system:serviceaccount:team-b:puller"}]}"#,
    )]);
    let auth = AcrAuth::WorkloadIdentity {
        tenant_id: Some("tenant-a".into()),
        client_id: Some("regcreds-own-app".into()),
        token_file: Some(std::path::PathBuf::from("/nonexistent/regcreds/azure-token")),
    };
    // NB: no token file of regcreds' own: built for pods, only theirs count.
    let provider = AcrProvider::for_pods(settings(&fake, auth)).await.expect("valid");
    assert!(provider.mint().await.is_err(), "no identity of its own");
    let token_a = pod_token("system:serviceaccount:team-a:puller");
    let token_b = pod_token("system:serviceaccount:team-b:puller");

    let a = provider
        .mint_for_pod(&pod(&token_a, Some("app-team-a")))
        .await
        .expect("pod mode");
    let b = provider
        .mint_for_pod(&pod(&token_b, Some("app-team-b")))
        .await
        .expect("pod mode");
    assert_eq!(a.expect("team a").registries(), vec![REGISTRY]);
    assert_eq!(b.expect("team b").registries(), vec![REGISTRY]);
    let entra = fake.requests_to("/tenant-a/oauth2/v2.0/token");
    let sent: Vec<(&str, &str)> = entra
        .iter()
        .map(|r| (r.form["client_id"].as_str(), r.form["client_assertion"].as_str()))
        .collect();
    assert_eq!(
        sent,
        [("app-team-a", token_a.as_str()), ("app-team-b", token_b.as_str())]
    );
    let exchanged: Vec<bool> = fake
        .requests_to("/oauth2/exchange")
        .iter()
        .zip(["entra.tenant-a.app-team-a.", "entra.tenant-a.app-team-b."])
        .map(|(r, prefix)| r.form["access_token"].starts_with(prefix))
        .collect();
    assert_eq!(
        exchanged,
        [true, true],
        "each pod's own Entra token went to the registry"
    );

    let stolen = provider
        .mint_for_pod(&pod(&token_b, Some("app-team-a")))
        .await
        .expect("pod mode");
    let error = stolen.expect_err("team b's ServiceAccount is not federated with team a's app");
    assert!(!error.is_transient(), "{error}");
    assert!(error.to_string().contains("AADSTS 70021"), "{error}");
    assert!(!error.to_string().contains(&token_b), "{error}");

    let unnamed = provider
        .mint_for_pod(&pod(&token_a, None))
        .await
        .expect("pod mode");
    let error = unnamed.expect_err("no client id annotation");
    assert!(
        error
            .to_string()
            .contains("no azure.workload.identity/client-id annotation"),
        "{error}"
    );
    assert_eq!(
        fake.requests_to("/tenant-a/oauth2/v2.0/token").len(),
        3,
        "nothing sent without a client ID"
    );
}

#[tokio::test]
async fn static_acr_credentials_have_no_pod_mode() {
    let fake = FakeCloud::start(&[]);
    let auth = AcrAuth::Static {
        username: "puller".into(),
        password: "pw".into(),
    };
    let provider = AcrProvider::new(settings(&fake, auth)).await.expect("valid");
    assert!(provider.mint_for_pod(&pod("t", Some("app"))).await.is_none());
}
