//! The verifier against a real distribution registry (htpasswd auth, TLS from a throwaway CA), and
//! our rendered dockerconfigjson against skopeo, a real client.
//!
//! Needs `docker-registry` and `skopeo`; `cargo xtask test` installs them.

// NB: one copy of the fixture, shared with the test kit (`regcreds_testkit::registry`).
use regcreds_fakes::registry;
use std::{collections::BTreeMap, net::TcpListener, time::Duration};

use regcreds_core::{Credential, CredentialSet, RegistryHost};
use regcreds_verify::{AuthScheme, ImageRef, Outcome, Verifier, VerifierOptions};
use registry::{RegistryOptions, TestRegistry};

const USER: &str = "alice";
/// Contains characters that need care in Basic auth and in JSON: a password must survive both.
const PASSWORD: &str = "s3cret:pa$$ \"word\"";

async fn start_tls() -> TestRegistry {
    TestRegistry::start(RegistryOptions {
        tls: true,
        users: &[(USER, PASSWORD)],
        ..Default::default()
    })
    .await
}

fn verifier_trusting(registry: &TestRegistry) -> Verifier {
    Verifier::new(VerifierOptions {
        timeout: Duration::from_secs(5),
        extra_root_certs: vec![registry.ca_pem().as_bytes().to_vec()],
        ..VerifierOptions::default()
    })
    .expect("verifier")
}

fn credential(key: &str, user: &str, password: &str) -> Credential {
    Credential::new(RegistryHost::parse(key).expect("registry key"), user, password)
}

fn probe(registry: &TestRegistry) -> ImageRef {
    ImageRef::parse(registry.image_ref()).expect("probe image")
}

#[tokio::test]
async fn the_right_password_authenticates_over_tls() {
    let registry = start_tls().await;
    let result = verifier_trusting(&registry)
        .check(&credential(registry.host(), USER, PASSWORD), None)
        .await;
    assert_eq!(result.outcome, Outcome::Ok, "{result}");
    assert_eq!(
        result.auth,
        Some(AuthScheme::Basic),
        "htpasswd registries challenge with Basic"
    );
}

#[tokio::test]
async fn the_right_password_may_pull_the_probe_image() {
    let registry = start_tls().await;
    let probe = probe(&registry);
    let result = verifier_trusting(&registry)
        .check(&credential(registry.host(), USER, PASSWORD), Some(&probe))
        .await;
    assert_eq!(result.outcome, Outcome::Ok, "{result}");
    assert_eq!(
        result.to_string().split(" (").next(),
        Some(&*format!(
            "{}: ok via Basic auth, may pull demo/hello:v1",
            registry.host()
        ))
    );
}

#[tokio::test]
async fn an_https_key_as_ecr_writes_it_is_checked_against_the_same_registry() {
    let registry = start_tls().await;
    let key = format!("https://{}", registry.host());
    let result = verifier_trusting(&registry)
        .check(&credential(&key, USER, PASSWORD), Some(&probe(&registry)))
        .await;
    assert_eq!(result.outcome, Outcome::Ok, "{result}");
}

#[tokio::test]
async fn a_wrong_password_is_unauthorized_and_the_reason_never_shows_it() {
    let registry = start_tls().await;
    let wrong = "wrong-Pa55word-that-must-not-leak";
    let result = verifier_trusting(&registry)
        .check(&credential(registry.host(), USER, wrong), Some(&probe(&registry)))
        .await;
    let Outcome::Unauthorized { reason, .. } = &result.outcome else {
        panic!("expected unauthorized: {result}")
    };
    assert!(reason.contains("401"), "reason should give the status: {reason}");
    for text in [result.to_string(), format!("{result:?}")] {
        assert!(!text.contains(wrong), "password leaked: {text}");
        assert!(!text.contains(PASSWORD), "right password leaked: {text}");
    }
}

#[tokio::test]
async fn an_unknown_user_is_unauthorized() {
    let registry = start_tls().await;
    let result = verifier_trusting(&registry)
        .check(&credential(registry.host(), "mallory", PASSWORD), None)
        .await;
    assert!(matches!(result.outcome, Outcome::Unauthorized { .. }), "{result}");
}

#[tokio::test]
async fn a_probe_image_that_does_not_exist_is_an_error_not_a_pass() {
    let registry = start_tls().await;
    let missing = ImageRef::parse("demo/nope:v9").expect("image");
    let result = verifier_trusting(&registry)
        .check(&credential(registry.host(), USER, PASSWORD), Some(&missing))
        .await;
    let Outcome::Error { reason } = &result.outcome else {
        panic!("expected error: {result}")
    };
    assert!(
        reason.contains("demo/nope:v9") && reason.contains("404"),
        "{reason}"
    );
}

#[tokio::test]
async fn nothing_listening_is_unreachable() {
    let port = TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port();
    let verifier = Verifier::new(VerifierOptions::default()).expect("verifier");
    let result = verifier
        .check(&credential(&format!("127.0.0.1:{port}"), USER, PASSWORD), None)
        .await;
    let Outcome::Unreachable { reason } = &result.outcome else {
        panic!("expected unreachable: {result}")
    };
    assert!(
        reason.contains("GET /v2/") && reason.contains(&port.to_string()),
        "{reason}"
    );
}

#[tokio::test]
async fn a_registry_whose_ca_is_not_trusted_is_unreachable_with_a_certificate_reason() {
    let registry = start_tls().await;
    let verifier = Verifier::new(VerifierOptions::default()).expect("verifier");
    let result = verifier
        .check(&credential(registry.host(), USER, PASSWORD), None)
        .await;
    let Outcome::Unreachable { reason } = &result.outcome else {
        panic!("expected unreachable: {result}")
    };
    assert!(reason.to_lowercase().contains("certificate"), "{reason}");
}

#[tokio::test]
async fn plain_http_is_used_only_for_hosts_the_operator_allowed() {
    let registry = TestRegistry::start(RegistryOptions {
        tls: false,
        users: &[(USER, PASSWORD)],
        ..Default::default()
    })
    .await;
    let cred = credential(registry.host(), USER, PASSWORD);

    let allowed = Verifier::new(VerifierOptions {
        insecure_http_hosts: vec![registry.host().to_string()],
        ..VerifierOptions::default()
    })
    .expect("verifier");
    let result = allowed.check(&cred, Some(&probe(&registry))).await;
    assert_eq!(result.outcome, Outcome::Ok, "{result}");

    // Without the option the verifier speaks https to a plain-http port, which fails before any
    // credential is sent.
    let strict = Verifier::new(VerifierOptions::default()).expect("verifier");
    let result = strict.check(&cred, None).await;
    assert!(matches!(result.outcome, Outcome::Unreachable { .. }), "{result}");

    let http_key = credential(&format!("http://{}", registry.host()), USER, PASSWORD);
    let result = strict.check(&http_key, None).await;
    let Outcome::Error { reason } = &result.outcome else {
        panic!("expected error: {result}")
    };
    assert!(reason.contains("insecure-http"), "{reason}");
}

#[tokio::test]
async fn an_anonymous_registry_passes_but_says_the_credential_was_not_needed() {
    let registry = TestRegistry::start(RegistryOptions {
        tls: true,
        users: &[],
        ..Default::default()
    })
    .await;
    let result = verifier_trusting(&registry)
        .check(
            &credential(registry.host(), USER, PASSWORD),
            Some(&probe(&registry)),
        )
        .await;
    assert_eq!(result.outcome, Outcome::Ok, "{result}");
    assert_eq!(result.auth, None);
    assert!(result.to_string().contains("anonymous"), "{result}");
}

#[tokio::test]
async fn a_rotated_password_turns_the_old_credential_unauthorized_and_the_new_one_ok() {
    let mut registry = start_tls().await;
    let verifier = verifier_trusting(&registry);
    let old = credential(registry.host(), USER, PASSWORD);
    assert!(verifier.check(&old, None).await.outcome.is_ok());

    registry.set_user(USER, "rotated-password").await;
    let after = verifier.check(&old, None).await;
    assert!(matches!(after.outcome, Outcome::Unauthorized { .. }), "{after}");
    let new = credential(registry.host(), USER, "rotated-password");
    assert_eq!(
        verifier.check(&new, Some(&probe(&registry))).await.outcome,
        Outcome::Ok
    );
}

#[tokio::test]
async fn check_all_reports_each_registry_in_key_order() {
    let good = start_tls().await;
    let bad = start_tls().await;
    let set = CredentialSet::new()
        .with(credential(good.host(), USER, PASSWORD))
        .with(credential(bad.host(), USER, "not-it"));
    let verifier = Verifier::new(VerifierOptions {
        extra_root_certs: vec![
            good.ca_pem().as_bytes().to_vec(),
            bad.ca_pem().as_bytes().to_vec(),
        ],
        ..VerifierOptions::default()
    })
    .expect("verifier");
    let probes = BTreeMap::from([(RegistryHost::parse(good.host()).expect("key"), probe(&good))]);

    let results = verifier.check_all(&set, &probes).await;
    let summary: Vec<(String, &str)> = results
        .iter()
        .map(|r| (r.registry.to_string(), r.outcome.label()))
        .collect();
    let mut expected = vec![
        (good.host().to_string(), "ok"),
        (bad.host().to_string(), "unauthorized"),
    ];
    expected.sort();
    assert_eq!(summary, expected);
    assert!(
        results
            .iter()
            .find(|r| r.outcome.is_ok())
            .is_some_and(|r| r.probe.is_some())
    );
}

// === dockerconfigjson as real clients read it ===

#[tokio::test]
async fn skopeo_pulls_with_the_dockerconfigjson_we_render_and_fails_with_a_wrong_one() {
    let registry = start_tls().await;
    let authfile = registry.dir().join("auth.json");

    for key in [
        registry.host().to_string(),
        format!("https://{}", registry.host()),
    ] {
        let rendered = CredentialSet::new()
            .with(credential(&key, USER, PASSWORD))
            .render();
        std::fs::write(&authfile, &rendered).expect("write authfile");
        assert_eq!(
            registry.skopeo_inspect(&authfile).as_deref(),
            Ok(registry.image_digest()),
            "skopeo rejected our rendering keyed {key}"
        );
    }

    let wrong = CredentialSet::new()
        .with(credential(registry.host(), USER, "not-the-password"))
        .render();
    std::fs::write(&authfile, &wrong).expect("write authfile");
    let stderr = registry
        .skopeo_inspect(&authfile)
        .expect_err("a wrong password must not pull");
    assert!(
        stderr.contains("unauthorized") || stderr.contains("authentication required"),
        "{stderr}"
    );
}

#[tokio::test]
async fn skopeo_and_the_verifier_agree_on_the_same_rendered_credentials() {
    let registry = start_tls().await;
    let verifier = verifier_trusting(&registry);
    let authfile = registry.dir().join("auth.json");
    for (password, should_pull) in [(PASSWORD, true), ("nope", false)] {
        let set = CredentialSet::new().with(credential(registry.host(), USER, password));
        std::fs::write(&authfile, set.render()).expect("write authfile");
        let pulled = registry.skopeo_inspect(&authfile).is_ok();
        let verified = verifier.check_all(&set, &BTreeMap::new()).await[0]
            .outcome
            .is_ok();
        assert_eq!(
            (pulled, verified),
            (should_pull, should_pull),
            "password {:?}",
            password.len()
        );
    }
}

// === token auth (Bearer), as Docker Hub, ACR and GCR do it ===

async fn start_token_registry() -> TestRegistry {
    TestRegistry::start(RegistryOptions {
        tls: true,
        users: &[(USER, PASSWORD)],
        token_auth: true,
    })
    .await
}

/// Trusts the registry's CA and allows plain http to the fixture's token server (and nothing else).
fn verifier_for_token_registry(registry: &TestRegistry) -> Verifier {
    Verifier::new(VerifierOptions {
        extra_root_certs: vec![registry.ca_pem().as_bytes().to_vec()],
        insecure_http_hosts: registry.token_host().into_iter().collect(),
        ..VerifierOptions::default()
    })
    .expect("verifier")
}

#[tokio::test]
async fn a_token_registry_accepts_the_right_password_through_a_bearer_token_and_lets_it_pull() {
    let registry = start_token_registry().await;
    let result = verifier_for_token_registry(&registry)
        .check(
            &credential(registry.host(), USER, PASSWORD),
            Some(&probe(&registry)),
        )
        .await;
    assert_eq!(result.outcome, Outcome::Ok, "{result}");
    assert_eq!(result.auth, Some(AuthScheme::Bearer));
}

#[tokio::test]
async fn a_token_registry_refuses_a_wrong_password_at_the_token_endpoint() {
    let registry = start_token_registry().await;
    let wrong = "wrong-token-password";
    let result = verifier_for_token_registry(&registry)
        .check(&credential(registry.host(), USER, wrong), None)
        .await;
    let Outcome::Unauthorized { reason, .. } = &result.outcome else {
        panic!("expected unauthorized: {result}")
    };
    let realm = registry.token_realm().expect("token registry");
    assert!(reason.contains(&realm) && reason.contains("401"), "{reason}");
    assert!(!format!("{result} {result:?}").contains(wrong));
}

#[tokio::test]
async fn a_token_that_logs_in_but_may_not_pull_is_unauthorized_with_the_registry_error_code() {
    let registry = start_token_registry().await;
    registry.deny_pulls(USER);
    let verifier = verifier_for_token_registry(&registry);
    let credential = credential(registry.host(), USER, PASSWORD);

    // Without a probe such a credential looks fine: `/v2/` and the token endpoint accept it ...
    let login_only = verifier.check(&credential, None).await;
    assert_eq!(login_only.outcome, Outcome::Ok, "{login_only}");
    // ... the probe's manifest is what the real registry (distribution) refuses.
    let result = verifier.check(&credential, Some(&probe(&registry))).await;
    let Outcome::Unauthorized { reason, code } = &result.outcome else {
        panic!("expected unauthorized: {result}")
    };
    assert!(reason.contains("may not pull demo/hello:v1"), "{reason}");
    assert!(
        reason.contains("HEAD manifest") && reason.contains("401"),
        "{reason}"
    );
    assert_eq!(code.as_deref(), Some("UNAUTHORIZED"), "{result}");
    assert!(!format!("{result} {result:?}").contains(PASSWORD));
}

#[tokio::test]
async fn a_token_endpoint_refusal_carries_its_error_code() {
    let registry = start_token_registry().await;
    let result = verifier_for_token_registry(&registry)
        .check(&credential(registry.host(), USER, "wrong"), None)
        .await;
    assert_eq!(result.outcome.registry_code(), Some("UNAUTHORIZED"), "{result}");
}

#[tokio::test]
async fn a_plain_http_token_realm_that_is_not_allowed_never_receives_the_password() {
    let registry = start_token_registry().await;
    let result = verifier_trusting(&registry)
        .check(&credential(registry.host(), USER, PASSWORD), None)
        .await;
    let Outcome::Error { reason } = &result.outcome else {
        panic!("expected error: {result}")
    };
    assert!(reason.contains("not sent"), "{reason}");
}

#[tokio::test]
async fn skopeo_pulls_from_a_token_registry_with_our_rendering() {
    let registry = start_token_registry().await;
    let authfile = registry.dir().join("auth.json");
    std::fs::write(
        &authfile,
        CredentialSet::new()
            .with(credential(registry.host(), USER, PASSWORD))
            .render(),
    )
    .expect("write authfile");
    assert_eq!(
        registry.skopeo_inspect(&authfile).as_deref(),
        Ok(registry.image_digest())
    );
    std::fs::write(
        &authfile,
        CredentialSet::new()
            .with(credential(registry.host(), USER, "nope"))
            .render(),
    )
    .expect("write authfile");
    assert!(registry.skopeo_inspect(&authfile).is_err());
}
