//! Issue 6: the refresh scheduler of `regcreds run` against a real ECR API (patched moto) and a real
//! control plane. Short-lived tokens are refreshed before they expire without any cron tick; an outage
//! of the provider never touches the propagated Secret, shows in the metrics, and heals by itself.
//! Issue 17: the same for GitHub App installation tokens (ghcr) and Quay robot federation (quay), against
//! the HTTPS fake of both services (tests/fixtures/fake_github_quay.py).

use regcreds_fakes::github_quay as fake;
use std::time::Duration;

use fake::{FEDERATION_PATH, FakeWorld, INSTALLATION_PATH, SA_JWT};
use regcreds_testkit::{
    ControlPlane, Regcreds, TEST_LABEL, delete_namespaces, ensure_namespace,
    moto::{Moto, ecr_env},
    pull_secret_refs, secret, secret_data, wait_for,
};

/// One regcreds at a time: an instance withdraws its Secrets from namespaces outside its selector.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
const ECR_SECRET: &str = "awsecr-cred";
const MINTS: &str = "regcreds_provider_mints_total";
const FAILURES: &str = "regcreds_provider_mint_failures_total";
const CONSECUTIVE: &str = "regcreds_provider_consecutive_failures";
const ECR: &[(&str, &str)] = &[("provider", "ecr")];
/// Never fires during a test: only expiry can trigger a refresh.
const YEARLY: &str = "0 0 0 1 1 *";

fn password_in(data: &[u8], password: &str) -> bool {
    String::from_utf8_lossy(data).contains(&base64_of(&format!("AWS:{password}")))
}

fn base64_of(text: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(text)
}

#[tokio::test]
async fn a_thirty_second_ecr_token_is_refreshed_before_it_expires_without_a_cron_tick() {
    let _serial = SERIAL.lock().await;
    let cp = ControlPlane::shared().await;
    let client = cp.client();
    let ns = "refresh-expiry";
    ensure_namespace(&client, ns, &[(TEST_LABEL, ns)]).await;
    let moto = Moto::start(0, &[("ECR_TOKEN_TTL", "30")]);
    let dir = tempfile::tempdir().expect("tempdir");
    let selector = format!("{TEST_LABEL}={ns}");
    let mut env = ecr_env(&moto.url());
    env.extend([
        ("REGCREDS_ECR_SCHEDULE", YEARLY.to_string()),
        ("REGCREDS_NAMESPACE_SELECTOR", selector),
    ]);
    let regcreds = Regcreds::spawn(cp.kubeconfig_path(), &env, dir.path().join("log"));

    wait_for("the ECR Secret", Duration::from_secs(60), || async {
        secret_data(&client, ns, ECR_SECRET).await
    })
    .await;
    let first_expiry = regcreds.metric("regcreds_provider_token_expiry_timestamp_seconds", ECR);
    assert!(first_expiry > 0.0, "expiry gauge set after the first mint");
    // Refresh at half the remaining life, at least 10 s apart: ~10 s per mint with a 30 s token.
    let started = std::time::Instant::now();
    wait_for("three ECR mints", Duration::from_secs(60), || async {
        (regcreds.metric(MINTS, ECR) >= 3.0).then_some(())
    })
    .await;
    println!("3 mints after {:?} (first mint at start)", started.elapsed());
    let later_expiry = regcreds.metric("regcreds_provider_token_expiry_timestamp_seconds", ECR);
    assert!(
        later_expiry >= first_expiry + 10.0,
        "each refresh carries a later expiry: {first_expiry} then {later_expiry}"
    );
    assert_eq!(regcreds.metric(FAILURES, ECR), 0.0, "{}", regcreds.logs());
    drop(regcreds);
    delete_namespaces(&client, &[ns]).await;
}

#[tokio::test]
async fn an_ecr_outage_keeps_the_last_good_secret_is_visible_in_metrics_and_heals_when_ecr_returns() {
    let _serial = SERIAL.lock().await;
    let cp = ControlPlane::shared().await;
    let client = cp.client();
    let ns = "refresh-outage";
    ensure_namespace(&client, ns, &[(TEST_LABEL, ns)]).await;
    let moto = Moto::start(0, &[("ECR_PASSWORD", "before-outage-{region}")]);
    let port = moto.port;
    let dir = tempfile::tempdir().expect("tempdir");
    let mut env = ecr_env(&moto.url());
    env.extend([
        ("REGCREDS_ECR_SCHEDULE", "*/2 * * * * *".to_string()),
        ("REGCREDS_NAMESPACE_SELECTOR", format!("{TEST_LABEL}={ns}")),
    ]);
    let regcreds = Regcreds::spawn(cp.kubeconfig_path(), &env, dir.path().join("log"));

    let good = wait_for("the ECR Secret", Duration::from_secs(60), || async {
        secret(&client, ns, ECR_SECRET).await
    })
    .await;
    let good_data = good.data.clone().expect("data");
    assert!(password_in(
        &good_data[".dockerconfigjson"].0,
        "before-outage-us-east-1"
    ));
    wait_for("/readyz 200", Duration::from_secs(30), || async {
        (regcreds.readyz() == Some(200)).then_some(())
    })
    .await;

    // Outage: ECR goes away. Every cron tick (2 s) and backoff retry fails.
    drop(moto);
    wait_for("three failed mints in a row", Duration::from_secs(60), || async {
        (regcreds.metric(CONSECUTIVE, ECR) >= 3.0).then_some(())
    })
    .await;
    let failures = regcreds.metric(FAILURES, ECR);
    assert!(failures >= 3.0, "mint_failures_total = {failures}");
    let metrics = regcreds.metrics().expect("metrics");
    assert!(
        metrics.contains("regcreds_provider_last_failure_timestamp_seconds{provider=\"ecr\"}"),
        "{metrics}"
    );
    let during = secret(&client, ns, ECR_SECRET).await.expect("Secret still there");
    assert_eq!(
        during.metadata.resource_version, good.metadata.resource_version,
        "the Secret was not written during the outage"
    );
    assert_eq!(during.data, Some(good_data), "byte-identical");
    assert_eq!(
        pull_secret_refs(&client, ns, "default").await,
        Some(vec![ECR_SECRET.to_string()]),
        "the reference stays"
    );
    assert_eq!(
        regcreds.readyz(),
        Some(200),
        "an outage does not make regcreds unready"
    );
    assert!(
        regcreds
            .logs()
            .contains("mint failed; keeping the last good credential"),
        "{}",
        regcreds.logs()
    );

    // ECR returns on the same endpoint, now issuing a different token.
    let mints_before = regcreds.metric(MINTS, ECR);
    let _moto = Moto::start(port, &[("ECR_PASSWORD", "after-outage-{region}")]);
    wait_for("the new token in the Secret", Duration::from_secs(90), || async {
        let data = secret_data(&client, ns, ECR_SECRET).await?;
        password_in(&data, "after-outage-us-east-1").then_some(())
    })
    .await;
    assert!(regcreds.metric(MINTS, ECR) > mints_before);
    assert_eq!(regcreds.metric(CONSECUTIVE, ECR), 0.0);
    let failures_after = regcreds.metric(FAILURES, ECR);
    let mints_after = regcreds.metric(MINTS, ECR);
    // Two more cron ticks: they mint, none fails.
    wait_for("two more mints", Duration::from_secs(30), || async {
        (regcreds.metric(MINTS, ECR) >= mints_after + 2.0).then_some(())
    })
    .await;
    assert_eq!(regcreds.metric(FAILURES, ECR), failures_after, "failures stopped");
    drop(regcreds);
    delete_namespaces(&client, &[ns]).await;
}

// === ghcr and quay (issue 17) ===

const GHCR: &[(&str, &str)] = &[("provider", "ghcr")];
const QUAY: &[(&str, &str)] = &[("provider", "quay")];

/// The password of the single entry of a `.dockerconfigjson`.
fn password_of(data: &[u8]) -> String {
    let doc: serde_json::Value = serde_json::from_slice(data).expect("dockerconfigjson");
    let auths = doc["auths"].as_object().expect("auths");
    assert_eq!(auths.len(), 1, "{doc}");
    auths.values().next().expect("entry")["password"]
        .as_str()
        .expect("password")
        .to_string()
}

#[tokio::test]
async fn thirty_second_ghcr_and_quay_tokens_are_propagated_and_refreshed_before_they_expire() {
    let _serial = SERIAL.lock().await;
    let cp = ControlPlane::shared().await;
    let client = cp.client();
    let ns = "refresh-ghcr-quay";
    ensure_namespace(&client, ns, &[(TEST_LABEL, ns)]).await;
    let world = FakeWorld::start(&[("FAKE_TOKEN_TTL", "30")]);
    let dir = tempfile::tempdir().expect("tempdir");
    let mut env = world.env();
    env.extend([
        ("REGCREDS_GHCR_SCHEDULE", YEARLY.to_string()),
        ("REGCREDS_QUAY_SCHEDULE", YEARLY.to_string()),
        ("REGCREDS_NAMESPACE_SELECTOR", format!("{TEST_LABEL}={ns}")),
        ("REGCREDS_LOG", "debug".to_string()),
    ]);
    let regcreds = Regcreds::spawn(cp.kubeconfig_path(), &env, dir.path().join("log"));

    let first_ghcr = wait_for("the ghcr Secret", Duration::from_secs(60), || async {
        secret_data(&client, ns, "ghcr-secret").await
    })
    .await;
    let first_quay = wait_for("the quay Secret", Duration::from_secs(60), || async {
        secret_data(&client, ns, "quay-secret").await
    })
    .await;
    assert_eq!(
        pull_secret_refs(&client, ns, "default").await.map(|mut r| {
            r.sort();
            r
        }),
        Some(vec!["ghcr-secret".to_string(), "quay-secret".to_string()])
    );
    let first_expiry = regcreds.metric("regcreds_provider_token_expiry_timestamp_seconds", GHCR);
    assert!(first_expiry > 0.0, "expiry gauge set after the first mint");

    // Refresh at half the remaining life, at least 10 s apart: ~10 s per mint with a 30 s token, so the
    // third mint of each lands well before the first token's 30 s are up... and no cron tick is involved.
    let started = std::time::Instant::now();
    wait_for("three mints of each", Duration::from_secs(60), || async {
        (regcreds.metric(MINTS, GHCR) >= 3.0 && regcreds.metric(MINTS, QUAY) >= 3.0).then_some(())
    })
    .await;
    println!(
        "3 ghcr and quay mints after {:?} (first at start)",
        started.elapsed()
    );
    let later_expiry = regcreds.metric("regcreds_provider_token_expiry_timestamp_seconds", GHCR);
    assert!(
        later_expiry >= first_expiry + 10.0,
        "each refresh carries a later expiry: {first_expiry} then {later_expiry}"
    );
    let ghcr_now = wait_for(
        "a refreshed ghcr token in the Secret",
        Duration::from_secs(30),
        || async {
            let data = secret_data(&client, ns, "ghcr-secret").await?;
            (password_of(&data) != password_of(&first_ghcr)).then_some(data)
        },
    )
    .await;
    let quay_now = wait_for(
        "a refreshed quay token in the Secret",
        Duration::from_secs(30),
        || async {
            let data = secret_data(&client, ns, "quay-secret").await?;
            (password_of(&data) != password_of(&first_quay)).then_some(data)
        },
    )
    .await;
    assert!(password_of(&ghcr_now).starts_with("ghs_"));
    assert_eq!(regcreds.metric(FAILURES, GHCR), 0.0, "{}", regcreds.logs());
    assert_eq!(regcreds.metric(FAILURES, QUAY), 0.0, "{}", regcreds.logs());
    assert!(world.fake.requests_to(INSTALLATION_PATH).len() >= 3);
    assert!(world.fake.requests_to(FEDERATION_PATH).len() >= 3);

    // Hygiene at debug level: no token, key line or ServiceAccount token in the log or the metrics.
    let logs = regcreds.logs();
    let metrics = regcreds.metrics().expect("metrics");
    let mut needles = vec![
        password_of(&first_ghcr),
        password_of(&ghcr_now),
        password_of(&first_quay),
        password_of(&quay_now),
        SA_JWT.to_string(),
    ];
    needles.extend(world.key_lines());
    for needle in &needles {
        assert!(
            !logs.contains(needle.as_str()),
            "the log contains a credential: {needle}"
        );
        assert!(
            !metrics.contains(needle.as_str()),
            "the metrics contain a credential: {needle}"
        );
    }
    drop(regcreds);
    delete_namespaces(&client, &[ns]).await;
}

#[tokio::test]
async fn a_refused_ghcr_or_quay_exchange_keeps_the_last_good_secrets_and_heals_when_accepted_again() {
    let _serial = SERIAL.lock().await;
    let cp = ControlPlane::shared().await;
    let client = cp.client();
    let ns = "refresh-ghcr-quay-outage";
    ensure_namespace(&client, ns, &[(TEST_LABEL, ns)]).await;
    let world = FakeWorld::start(&[]);
    let dir = tempfile::tempdir().expect("tempdir");
    let mut env = world.env();
    env.extend([
        ("REGCREDS_GHCR_SCHEDULE", "*/2 * * * * *".to_string()),
        ("REGCREDS_QUAY_SCHEDULE", "*/2 * * * * *".to_string()),
        ("REGCREDS_NAMESPACE_SELECTOR", format!("{TEST_LABEL}={ns}")),
    ]);
    let regcreds = Regcreds::spawn(cp.kubeconfig_path(), &env, dir.path().join("log"));
    for name in ["ghcr-secret", "quay-secret"] {
        wait_for(&format!("Secret {name}"), Duration::from_secs(60), || async {
            secret(&client, ns, name).await
        })
        .await;
    }

    // GitHub and Quay now refuse (a revoked key, a removed federation): 401 on every tick. Every good
    // mint so far rewrote the Secrets (each token is new), so the last good state is taken once two
    // failures in a row have passed, and must then stay as it is.
    world.fail_with(401);
    let failures_of_each = |n: f64| {
        let regcreds = &regcreds;
        move || async move {
            (regcreds.metric(CONSECUTIVE, GHCR) >= n && regcreds.metric(CONSECUTIVE, QUAY) >= n).then_some(())
        }
    };
    wait_for(
        "two failed mints in a row of each",
        Duration::from_secs(60),
        failures_of_each(2.0),
    )
    .await;
    let last_good_ghcr = secret(&client, ns, "ghcr-secret").await.expect("ghcr Secret");
    let last_good_quay = secret(&client, ns, "quay-secret").await.expect("quay Secret");
    wait_for(
        "four failed mints in a row of each",
        Duration::from_secs(60),
        failures_of_each(4.0),
    )
    .await;
    for (good, name) in [(&last_good_ghcr, "ghcr-secret"), (&last_good_quay, "quay-secret")] {
        let during = secret(&client, ns, name).await.expect("Secret still there");
        assert_eq!(
            during.metadata.resource_version, good.metadata.resource_version,
            "{name} was not written while the exchange refused"
        );
        assert_eq!(during.data, good.data, "{name} byte-identical");
    }
    let logs = regcreds.logs();
    assert!(
        logs.contains("mint failed; keeping the last good credential"),
        "{logs}"
    );
    assert!(
        logs.contains("GitHub refused the app JWT") && logs.contains("Quay refused the ServiceAccount token"),
        "each failure says why: {logs}"
    );

    // Accepted again: fresh tokens reach the namespace without a restart.
    world.heal();
    for (good, name) in [(last_good_ghcr, "ghcr-secret"), (last_good_quay, "quay-secret")] {
        let old = password_of(&good.data.expect("data")[".dockerconfigjson"].0);
        wait_for(
            &format!("a new token in {name}"),
            Duration::from_secs(60),
            || async {
                let data = secret_data(&client, ns, name).await?;
                (password_of(&data) != old).then_some(())
            },
        )
        .await;
    }
    assert_eq!(regcreds.metric(CONSECUTIVE, GHCR), 0.0);
    assert_eq!(regcreds.metric(CONSECUTIVE, QUAY), 0.0);
    drop(regcreds);
    delete_namespaces(&client, &[ns]).await;
}
