//! Issue 10, secrets hygiene: a full `regcreds run` (static + dockerconfigjson + ECR via moto + ghcr and
//! quay via the GitHub/Quay fake) through a namespace, a rotation, a foreign Secret in the way and a
//! provider failure, logging in JSON and then in plain text at debug level. Every credential value used —
//! passwords, `auth` values, ECR tokens, the AWS secret key, the GitHub App's private key, every app JWT
//! and installation token, the ServiceAccount JWT and every Quay robot token — is then searched for in
//! the logs, in every Kubernetes Event of the cluster and in `/metrics`. None may appear.
//!
//! While GitHub and Quay fail, the fake quotes the credential it was sent in its error message, as a
//! careless server might: regcreds must drop such a message, not pass it on.

use regcreds_fakes::github_quay as fake;
use std::{collections::BTreeMap, time::Duration};

use base64::{Engine, engine::general_purpose::STANDARD};
use fake::{FakeWorld, SA_JWT};
use k8s_openapi::{
    ByteString,
    api::core::v1::{Event, Secret},
};
use kube::{
    Api,
    api::{ListParams, PostParams},
};
use regcreds_testkit::{
    ControlPlane, Regcreds, TEST_LABEL, delete_namespaces, ensure_namespace,
    moto::{Moto, ecr_env},
    secret_data, wait_for,
};

const STATIC_PASSWORD: &str = "Static-Hyg1ene-Pa55";
const FILE_PASSWORD_1: &str = "File-Hyg1ene-First";
const FILE_PASSWORD_2: &str = "File-Hyg1ene-Second";
const ECR_PASSWORD: &str = "Ecr-Hyg1ene-Token-us-east-1";
const AWS_SECRET_KEY: &str = "Aws-Hyg1ene-Secret-Key";
const GHCR_USER: &str = "x-access-token";
const QUAY_ROBOT: &str = "myorg+puller";
const MINTS: &str = "regcreds_provider_mints_total";
const CONSECUTIVE: &str = "regcreds_provider_consecutive_failures";
const GHCR: &[(&str, &str)] = &[("provider", "ghcr")];
const QUAY: &[(&str, &str)] = &[("provider", "quay")];

fn dockerconfig(password: &str) -> String {
    format!(r#"{{"auths":{{"files.hygiene.example":{{"username":"filer","password":"{password}"}}}}}}"#)
}

/// Every form in which a credential could leak: the value, and the base64 `auth` (user:password, and
/// for ECR the authorizationToken `AWS:<password>`). For ghcr and quay: the App key's lines, the
/// ServiceAccount JWT, every credential sent to the fake (app JWTs, Basic `robot:JWT`) and every token it
/// handed out, as read from its request log once both runs are over.
fn needles(world: &FakeWorld) -> Vec<String> {
    let b64 = |s: &str| STANDARD.encode(s);
    let issued = world.fake.issued_tokens();
    assert!(
        issued.iter().filter(|t| t.starts_with("ghs_")).count() >= 2
            && issued.iter().filter(|t| !t.starts_with("ghs_")).count() >= 2,
        "each provider minted and rotated: {issued:?}"
    );
    let sent = world.fake.sent_credentials();
    assert!(sent.len() > issued.len(), "failed exchanges were sent too");
    let mut needles = vec![
        STATIC_PASSWORD.into(),
        b64(&format!("static-user:{STATIC_PASSWORD}")),
        FILE_PASSWORD_1.into(),
        b64(&format!("filer:{FILE_PASSWORD_1}")),
        FILE_PASSWORD_2.into(),
        b64(&format!("filer:{FILE_PASSWORD_2}")),
        ECR_PASSWORD.into(),
        b64(&format!("AWS:{ECR_PASSWORD}")),
        AWS_SECRET_KEY.into(),
        SA_JWT.into(),
        b64(&format!("{QUAY_ROBOT}:{SA_JWT}")),
    ];
    needles.extend(world.key_lines());
    needles.extend(sent);
    for token in issued {
        needles.push(b64(&format!("{GHCR_USER}:{token}")));
        needles.push(b64(&format!("{QUAY_ROBOT}:{token}")));
        needles.push(token);
    }
    needles
}

fn assert_clean(place: &str, text: &str, needles: &[String]) {
    assert!(!text.is_empty(), "{place} is empty: the scan would prove nothing");
    for needle in needles {
        assert!(
            !text.contains(needle.as_str()),
            "{place} contains the credential {needle:?}"
        );
    }
}

/// Waits until Secret `name` in `ns` holds something other than `before`: a rotated credential.
async fn rotated(client: &kube::Client, ns: &str, name: &str, before: &[u8]) {
    wait_for(
        &format!("a rotated credential in {name}"),
        Duration::from_secs(60),
        || async {
            let data = secret_data(client, ns, name).await?;
            (data != before).then_some(())
        },
    )
    .await;
}

async fn all_events(client: &kube::Client) -> Vec<Event> {
    Api::<Event>::all(client.clone())
        .list(&ListParams::default())
        .await
        .expect("list events")
        .items
}

#[tokio::test]
async fn no_credential_value_appears_in_logs_events_or_metrics_through_rotation_conflict_and_failure() {
    let cp = ControlPlane::shared().await;
    let client = cp.client();
    let test = "hygiene";
    let (ns, foreign_ns) = ("hygiene-a", "hygiene-b");
    for name in [ns, foreign_ns, "regcreds-system"] {
        ensure_namespace(&client, name, &[(TEST_LABEL, test)]).await;
    }
    // A Secret regcreds did not create, with the static provider's name: a conflict it must report.
    let foreign = Secret {
        metadata: kube::api::ObjectMeta {
            name: Some("static-pull".into()),
            namespace: Some(foreign_ns.into()),
            ..Default::default()
        },
        data: Some(BTreeMap::from([("k".to_string(), ByteString(b"v".to_vec()))])),
        ..Default::default()
    };
    let _ = Api::<Secret>::namespaced(client.clone(), foreign_ns)
        .create(&PostParams::default(), &foreign)
        .await;

    let moto = Moto::start(0, &[("ECR_PASSWORD", "Ecr-Hyg1ene-Token-{region}")]);
    let world = FakeWorld::start(&[("FAKE_FAIL_ECHO", "1")]);
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("config.json");
    std::fs::write(&file, dockerconfig(FILE_PASSWORD_1)).expect("write");
    let file_path = file.to_str().expect("utf8").to_string();
    let mut env: Vec<(&str, String)> = ecr_env(&moto.url())
        .into_iter()
        .map(|(k, v)| {
            if k == "AWS_SECRET_ACCESS_KEY" {
                (k, AWS_SECRET_KEY.to_string())
            } else {
                (k, v)
            }
        })
        .collect();
    env.extend([
        ("REGCREDS_ECR_SCHEDULE", "*/2 * * * * *".to_string()),
        ("REGCREDS_STATIC_SERVER", "static.hygiene.example".into()),
        ("REGCREDS_STATIC_USER", "static-user".into()),
        ("REGCREDS_STATIC_PASSWORD", STATIC_PASSWORD.into()),
        ("REGCREDS_STATIC_SECRET_NAME", "static-pull".into()),
        ("REGCREDS_DOCKERCONFIGJSON_PATH", file_path),
        ("REGCREDS_DOCKERCONFIGJSON_SCHEDULE", "*/1 * * * * *".into()),
        // Every mint hands out new tokens: a rotation every two seconds.
        ("REGCREDS_GHCR_SCHEDULE", "*/2 * * * * *".into()),
        ("REGCREDS_QUAY_SCHEDULE", "*/2 * * * * *".into()),
        ("REGCREDS_NAMESPACE_SELECTOR", format!("{TEST_LABEL}={test}")),
        // Known Pod identity, so mint failures become Events too.
        ("REGCREDS_NAMESPACE", "regcreds-system".into()),
        ("REGCREDS_POD_NAME", "regcreds-hygiene-0".into()),
    ]);
    env.extend(world.env());

    // Phase 1, JSON logs: propagate, rotate, meet the foreign Secret, lose ECR, GitHub and Quay.
    let json_run = Regcreds::spawn(cp.kubeconfig_path(), &env, dir.path().join("json.log"));
    let mut first = BTreeMap::new();
    for secret in [
        "static-pull",
        "image-pull-secret",
        "awsecr-cred",
        "ghcr-secret",
        "quay-secret",
    ] {
        let data = wait_for(&format!("{secret} in {ns}"), Duration::from_secs(60), || async {
            secret_data(&client, ns, secret).await
        })
        .await;
        first.insert(secret, data);
    }
    for secret in ["ghcr-secret", "quay-secret"] {
        rotated(&client, ns, secret, &first[secret]).await;
    }
    std::fs::write(&file, dockerconfig(FILE_PASSWORD_2)).expect("rotate");
    wait_for("the rotated file credential", Duration::from_secs(60), || async {
        let data = secret_data(&client, ns, "image-pull-secret").await?;
        String::from_utf8_lossy(&data)
            .contains(FILE_PASSWORD_2)
            .then_some(())
    })
    .await;
    json_run
        .wait_log(
            "is not managed by regcreds; leaving it untouched",
            Duration::from_secs(60),
        )
        .await;
    drop(moto);
    // A revoked App key and a removed federation: 401, with the credential quoted back.
    world.fail_with(401);
    wait_for(
        "failed ECR, ghcr and quay mints",
        Duration::from_secs(60),
        || async {
            let failing = |labels| json_run.metric(CONSECUTIVE, labels) >= 2.0;
            (failing(&[("provider", "ecr")]) && failing(GHCR) && failing(QUAY)).then_some(())
        },
    )
    .await;
    wait_for(
        "the MintFailed and SecretNotManaged Events",
        Duration::from_secs(60),
        || async {
            let events = all_events(&client).await;
            let reasons: Vec<&str> = events.iter().filter_map(|e| e.reason.as_deref()).collect();
            (reasons.contains(&"MintFailed") && reasons.contains(&"SecretNotManaged")).then_some(())
        },
    )
    .await;
    let json_metrics = json_run.metrics().expect("metrics");
    let status = json_run.stop().await;
    assert!(status.success(), "{status:?}");
    let json_logs = std::fs::read_to_string(dir.path().join("json.log")).expect("log");
    assert!(
        json_logs
            .lines()
            .all(|l| serde_json::from_str::<serde_json::Value>(l).is_ok()),
        "JSON lines"
    );

    // Phase 2, plain logs at debug level: the same providers from a fresh start, ECR still down; GitHub
    // and Quay answer (the HTTP client logs at debug too), then fail again.
    world.heal();
    let mut plain_env = env.clone();
    plain_env.extend([
        ("REGCREDS_LOG_FORMAT", "plain".into()),
        ("REGCREDS_LOG", "debug".into()),
    ]);
    let plain_run = Regcreds::spawn(cp.kubeconfig_path(), &plain_env, dir.path().join("plain.log"));
    wait_for("ghcr and quay mints", Duration::from_secs(60), || async {
        (plain_run.metric(MINTS, GHCR) >= 1.0 && plain_run.metric(MINTS, QUAY) >= 1.0).then_some(())
    })
    .await;
    world.fail_with(503);
    wait_for("failed ghcr and quay mints", Duration::from_secs(60), || async {
        (plain_run.metric(CONSECUTIVE, GHCR) >= 1.0 && plain_run.metric(CONSECUTIVE, QUAY) >= 1.0)
            .then_some(())
    })
    .await;
    plain_run
        .wait_log(
            "mint failed; keeping the last good credential",
            Duration::from_secs(60),
        )
        .await;
    plain_run
        .wait_log(
            "is not managed by regcreds; leaving it untouched",
            Duration::from_secs(60),
        )
        .await;
    let plain_metrics = plain_run.metrics().expect("metrics");
    let status = plain_run.stop().await;
    assert!(status.success(), "{status:?}");
    let plain_logs = std::fs::read_to_string(dir.path().join("plain.log")).expect("log");

    // The scan.
    let needles = needles(&world);
    let events = all_events(&client).await;
    let events_text = serde_json::to_string(&events).expect("serialize events");
    assert_clean("the JSON logs", &json_logs, &needles);
    assert_clean("the plain debug logs", &plain_logs, &needles);
    assert_clean("the Events", &events_text, &needles);
    assert_clean("/metrics (JSON run)", &json_metrics, &needles);
    assert_clean("/metrics (plain run)", &plain_metrics, &needles);
    // The failures were seen and explained without the message that quoted the credential.
    for (logs, why) in [
        (&json_logs, "GitHub refused the app JWT"),
        (&json_logs, "Quay refused the ServiceAccount token"),
        (&plain_logs, "HTTP 503"),
    ] {
        assert!(logs.contains(why), "{why:?} in the log");
    }
    for logs in [&json_logs, &plain_logs] {
        let quoted = logs
            .lines()
            .find(|l| l.contains("injected failure for credential"));
        assert_eq!(quoted, None, "the message quoting the credential was dropped");
    }
    // The scan looked at the right material: the Secrets really hold these values.
    let data = secret_data(&client, ns, "awsecr-cred").await.expect("ECR Secret");
    assert!(String::from_utf8_lossy(&data).contains(&STANDARD.encode(format!("AWS:{ECR_PASSWORD}"))));
    let data = secret_data(&client, ns, "static-pull")
        .await
        .expect("static Secret");
    assert!(String::from_utf8_lossy(&data).contains(STATIC_PASSWORD));
    let issued = world.fake.issued_tokens();
    for secret in ["ghcr-secret", "quay-secret"] {
        let data = secret_data(&client, ns, secret).await.expect(secret);
        let data = String::from_utf8_lossy(&data);
        assert!(
            issued.iter().any(|token| data.contains(token.as_str())),
            "{secret} holds a token the fake issued"
        );
    }
    println!(
        "scanned {} bytes of logs, {} Events, {} bytes of metrics",
        json_logs.len() + plain_logs.len(),
        events.len(),
        json_metrics.len() + plain_metrics.len()
    );
    delete_namespaces(&client, &[ns, foreign_ns]).await;
}
