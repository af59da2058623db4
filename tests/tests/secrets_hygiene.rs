//! Issue 10, secrets hygiene: a full `regcreds run` (static + dockerconfigjson + ECR via moto) through a
//! namespace, a rotation, a foreign Secret in the way and a provider failure, logging in JSON and then in
//! plain text at debug level. Every credential value used — passwords, `auth` values, ECR tokens, the AWS
//! secret key — is then searched for in the logs, in every Kubernetes Event of the cluster and in
//! `/metrics`. None may appear.

mod support;

use std::{collections::BTreeMap, time::Duration};

use base64::{Engine, engine::general_purpose::STANDARD};
use k8s_openapi::{
    ByteString,
    api::core::v1::{Event, Secret},
};
use kube::{
    Api,
    api::{ListParams, PostParams},
};
use regcreds_testkit::{ControlPlane, wait_for};
use support::{Moto, Regcreds, TEST_LABEL};

const STATIC_PASSWORD: &str = "Static-Hyg1ene-Pa55";
const FILE_PASSWORD_1: &str = "File-Hyg1ene-First";
const FILE_PASSWORD_2: &str = "File-Hyg1ene-Second";
const ECR_PASSWORD: &str = "Ecr-Hyg1ene-Token-us-east-1";
const AWS_SECRET_KEY: &str = "Aws-Hyg1ene-Secret-Key";

fn dockerconfig(password: &str) -> String {
    format!(r#"{{"auths":{{"files.hygiene.example":{{"username":"filer","password":"{password}"}}}}}}"#)
}

/// Every form in which a credential could leak: the value, and the base64 `auth` (user:password, and
/// for ECR the authorizationToken `AWS:<password>`).
fn needles() -> Vec<String> {
    let b64 = |s: &str| STANDARD.encode(s);
    vec![
        STATIC_PASSWORD.into(),
        b64(&format!("static-user:{STATIC_PASSWORD}")),
        FILE_PASSWORD_1.into(),
        b64(&format!("filer:{FILE_PASSWORD_1}")),
        FILE_PASSWORD_2.into(),
        b64(&format!("filer:{FILE_PASSWORD_2}")),
        ECR_PASSWORD.into(),
        b64(&format!("AWS:{ECR_PASSWORD}")),
        AWS_SECRET_KEY.into(),
    ]
}

fn assert_clean(place: &str, text: &str) {
    assert!(!text.is_empty(), "{place} is empty: the scan would prove nothing");
    for needle in needles() {
        assert!(
            !text.contains(&needle),
            "{place} contains the credential {needle:?}"
        );
    }
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
        support::ensure_namespace(&client, name, &[(TEST_LABEL, test)]).await;
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
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("config.json");
    std::fs::write(&file, dockerconfig(FILE_PASSWORD_1)).expect("write");
    let file_path = file.to_str().expect("utf8").to_string();
    let mut env: Vec<(&str, String)> = support::ecr_env(&moto.url())
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
        ("REGCREDS_NAMESPACE_SELECTOR", format!("{TEST_LABEL}={test}")),
        // Known Pod identity, so mint failures become Events too.
        ("REGCREDS_NAMESPACE", "regcreds-system".into()),
        ("REGCREDS_POD_NAME", "regcreds-hygiene-0".into()),
    ]);

    // Phase 1, JSON logs: propagate, rotate, meet the foreign Secret, lose ECR.
    let json_run = Regcreds::spawn(
        cp.kubeconfig_path(),
        &support::env_refs(&env),
        dir.path().join("json.log"),
    );
    for secret in ["static-pull", "image-pull-secret", "awsecr-cred"] {
        wait_for(&format!("{secret} in {ns}"), Duration::from_secs(60), || async {
            support::secret_data(&client, ns, secret).await
        })
        .await;
    }
    std::fs::write(&file, dockerconfig(FILE_PASSWORD_2)).expect("rotate");
    wait_for("the rotated file credential", Duration::from_secs(60), || async {
        let data = support::secret_data(&client, ns, "image-pull-secret").await?;
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
    wait_for("a failed ECR mint", Duration::from_secs(60), || async {
        (json_run.metric("regcreds_provider_consecutive_failures", &[("provider", "ecr")]) >= 2.0)
            .then_some(())
    })
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

    // Phase 2, plain logs at debug level: the same providers (ECR still down) from a fresh start.
    let mut plain_env = support::env_refs(&env);
    plain_env.extend([("REGCREDS_LOG_FORMAT", "plain"), ("REGCREDS_LOG", "debug")]);
    let plain_run = Regcreds::spawn(cp.kubeconfig_path(), &plain_env, dir.path().join("plain.log"));
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
    let events = all_events(&client).await;
    let events_text = serde_json::to_string(&events).expect("serialize events");
    assert_clean("the JSON logs", &json_logs);
    assert_clean("the plain debug logs", &plain_logs);
    assert_clean("the Events", &events_text);
    assert_clean("/metrics (JSON run)", &json_metrics);
    assert_clean("/metrics (plain run)", &plain_metrics);
    // The scan looked at the right material: the Secrets really hold these values.
    let data = support::secret_data(&client, ns, "awsecr-cred")
        .await
        .expect("ECR Secret");
    assert!(String::from_utf8_lossy(&data).contains(&STANDARD.encode(format!("AWS:{ECR_PASSWORD}"))));
    let data = support::secret_data(&client, ns, "static-pull")
        .await
        .expect("static Secret");
    assert!(String::from_utf8_lossy(&data).contains(STATIC_PASSWORD));
    println!(
        "scanned {} bytes of logs, {} Events, {} bytes of metrics",
        json_logs.len() + plain_logs.len(),
        events.len(),
        json_metrics.len() + plain_metrics.len()
    );
    support::delete_namespaces(&client, &[ns, foreign_ns]).await;
}
