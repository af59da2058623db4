//! Issue 16: several regcreds instances side by side (imagepullsecret-patcher users run two: two
//! registries, two Secret names). Each owns only what it wrote: they converge without fighting, cost no
//! writes at rest, a provider removed from one withdraws only that one's Secrets, `regcreds cleanup` of one
//! leaves the other intact, and the objects of a version without instances are adopted without a step.

use std::{collections::BTreeMap, path::Path, time::Duration};

use k8s_openapi::{
    ByteString,
    api::core::v1::{LocalObjectReference, Secret, ServiceAccount},
};
use kube::{
    Api, Client, ResourceExt,
    api::{ObjectMeta, PostParams},
};
use regcreds_propagator::{INSTANCE_LABEL, MANAGED_BY_LABEL, REFS_ANNOTATION};
use regcreds_testkit::{
    ControlPlane, Regcreds, TEST_LABEL, delete_namespaces, ensure_namespace, pull_secret_refs,
    regcreds_command, secret, wait_for,
};

/// One pair of instances at a time.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
const SYSTEM: &str = "regcreds-system";
const TIMEOUT: Duration = Duration::from_secs(60);
/// Pods of two Deployments, `hub` and `ecr`, in regcreds' namespace.
const HUB_POD: &str = "hub-7d9f8b6c4-x2k5p";
const ECR_POD: &str = "ecr-5c7b9d6f8-bdfgh";

fn doc(registry: &str, password: &str) -> String {
    format!(r#"{{"auths":{{"{registry}":{{"username":"puller","password":"{password}"}}}}}}"#)
}

/// The environment of one instance: a dockerconfigjson provider writing `secret`, leader election on,
/// the pod name of its Deployment, and no REGCREDS_INSTANCE or REGCREDS_LEASE_NAME (the defaults).
fn instance_env(pod: &str, secret: &str, registry: &str, test: &str) -> Vec<(&'static str, String)> {
    vec![
        ("REGCREDS_DOCKERCONFIGJSON", doc(registry, "instance-pw")),
        ("REGCREDS_DOCKERCONFIGJSON_SECRET_NAME", secret.into()),
        ("REGCREDS_NAMESPACE_SELECTOR", format!("{TEST_LABEL}={test}")),
        ("REGCREDS_NAMESPACE", SYSTEM.into()),
        ("REGCREDS_POD_NAME", pod.into()),
        ("REGCREDS_LEADER_ELECTION", "true".into()),
        ("REGCREDS_LEASE_DURATION_SECONDS", "15".into()),
    ]
}

fn spawn(kubeconfig: &Path, env: &[(&'static str, String)], log: &Path) -> Regcreds {
    Regcreds::spawn(kubeconfig, env, log.to_path_buf())
}

async fn wait_secret_and_ref(client: &Client, ns: &str, name: &str) {
    wait_for(&format!("{name} in {ns}, referenced"), TIMEOUT, || async {
        let refs = pull_secret_refs(client, ns, "default").await?;
        let present = secret(client, ns, name).await.is_some();
        (present && refs.iter().any(|r| r == name)).then_some(())
    })
    .await;
}

async fn wait_gone(client: &Client, ns: &str, name: &str) {
    wait_for(
        &format!("{name} gone from {ns}, unreferenced"),
        TIMEOUT,
        || async {
            let refs = pull_secret_refs(client, ns, "default").await?;
            let absent = secret(client, ns, name).await.is_none();
            (absent && !refs.iter().any(|r| r == name)).then_some(())
        },
    )
    .await;
}

fn label(secret: &Secret, key: &str) -> Option<String> {
    secret.labels().get(key).cloned()
}

/// Writes to Secrets and ServiceAccounts as the apiserver counts them.
async fn writes(cp: &ControlPlane) -> u64 {
    let verbs = ["POST", "PUT", "PATCH", "APPLY", "DELETE"];
    let mut total = 0;
    for resource in ["secrets", "serviceaccounts"] {
        total += cp.request_count(&verbs, Some(resource)).await.expect("metrics");
    }
    total
}

/// What one instance wrote, by its own counters.
fn own_writes(regcreds: &Regcreds) -> f64 {
    regcreds.metric("regcreds_secrets_written_total", &[])
        + regcreds.metric("regcreds_serviceaccounts_written_total", &[])
}

/// `regcreds cleanup` with `env` (a clean environment otherwise); returns stdout.
fn cleanup(kubeconfig: &Path, env: &[(&'static str, String)]) -> String {
    let out = regcreds_command(kubeconfig)
        .arg("cleanup")
        .envs(env.iter().cloned())
        .output()
        .expect("regcreds cleanup runs");
    assert!(
        out.status.success(),
        "cleanup failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[tokio::test]
async fn two_instances_converge_without_fighting_and_each_withdraws_and_cleans_up_only_its_own() {
    let _serial = SERIAL.lock().await;
    // A private control plane: nothing else writes, so the apiserver's own counts are exact.
    let cp = ControlPlane::start().await.expect("control plane");
    let client = cp.client();
    let test = "side-by-side";
    ensure_namespace(&client, SYSTEM, &[]).await;
    let names: Vec<String> = (0..4).map(|i| format!("{test}-{i}")).collect();
    for ns in &names {
        ensure_namespace(&client, ns, &[(TEST_LABEL, test)]).await;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let hub_env = instance_env(HUB_POD, "hub-pull", "hub.example", test);
    let ecr_env = instance_env(ECR_POD, "ecr-pull", "ecr.example", test);
    let hub = spawn(cp.kubeconfig_path(), &hub_env, &dir.path().join("hub.log"));
    let ecr = spawn(cp.kubeconfig_path(), &ecr_env, &dir.path().join("ecr.log"));
    // Two Deployments in one namespace: each elects its own leader (Leases "hub" and "ecr").
    hub.wait_log("acquired the lease", TIMEOUT).await;
    ecr.wait_log("acquired the lease", TIMEOUT).await;
    for ns in &names {
        wait_secret_and_ref(&client, ns, "hub-pull").await;
        wait_secret_and_ref(&client, ns, "ecr-pull").await;
    }
    let first = secret(&client, &names[0], "hub-pull").await.expect("secret");
    assert_eq!(
        label(&first, INSTANCE_LABEL).as_deref(),
        Some("hub.regcreds-system")
    );
    let account = Api::<ServiceAccount>::namespaced(client.clone(), &names[0])
        .get("default")
        .await
        .expect("sa");
    assert_eq!(
        account
            .annotations()
            .get("image-pull-secrets.regcreds.dev/ecr.regcreds-system"),
        Some(&"ecr-pull".to_string())
    );
    assert_eq!(
        account
            .annotations()
            .get("image-pull-secrets.regcreds.dev/hub.regcreds-system"),
        Some(&"hub-pull".to_string())
    );

    // At rest: no writes at all, by the apiserver's count and by each instance's own.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let (before, hub_before, ecr_before) = (writes(&cp).await, own_writes(&hub), own_writes(&ecr));
    tokio::time::sleep(Duration::from_secs(10)).await;
    let (after, hub_after, ecr_after) = (writes(&cp).await, own_writes(&hub), own_writes(&ecr));
    assert_eq!(
        after - before,
        0,
        "apiserver writes to secrets/serviceaccounts while idle"
    );
    assert_eq!(
        (hub_after, ecr_after),
        (hub_before, ecr_before),
        "own writes while idle"
    );
    assert!(
        hub_before >= 8.0 && ecr_before >= 8.0,
        "the fan-out itself was counted"
    );

    // A provider removed from hub's configuration: hub withdraws its own Secret, never ecr's.
    let ecr_secret_before = secret(&client, &names[0], "ecr-pull").await.expect("ecr");
    assert!(hub.stop().await.success());
    let renamed = instance_env(HUB_POD, "hub-pull-2", "hub.example", test);
    let hub = spawn(cp.kubeconfig_path(), &renamed, &dir.path().join("hub-2.log"));
    for ns in &names {
        wait_gone(&client, ns, "hub-pull").await;
        wait_secret_and_ref(&client, ns, "hub-pull-2").await;
    }
    let ecr_secret_after = secret(&client, &names[0], "ecr-pull").await.expect("ecr kept");
    assert_eq!(
        ecr_secret_after.resource_version(),
        ecr_secret_before.resource_version(),
        "the other instance's Secret was not even rewritten"
    );
    assert!(!hub.logs().contains("deleted secret ecr-pull"), "{}", hub.logs());

    // Cleaning up hub (as `kubectl exec deploy/hub -- /regcreds cleanup` would) leaves ecr intact.
    assert!(hub.stop().await.success());
    let report = cleanup(cp.kubeconfig_path(), &renamed);
    assert!(
        report.contains(&format!("removed {} secrets", names.len())),
        "{report}"
    );
    for ns in &names {
        wait_gone(&client, ns, "hub-pull-2").await;
        wait_secret_and_ref(&client, ns, "ecr-pull").await;
    }
    let refs = pull_secret_refs(&client, &names[0], "default").await;
    assert_eq!(refs, Some(vec!["ecr-pull".to_string()]));
    assert!(!ecr.logs().contains("deleted secret"), "{}", ecr.logs());
    drop(ecr);
    cp.shutdown(Duration::from_secs(5));
}

/// A Secret and a ServiceAccount annotation as a version without instances left them.
async fn legacy_objects(client: &Client, ns: &str) {
    for name in ["hub-pull", "ecr-pull"] {
        let secret = Secret {
            metadata: ObjectMeta {
                name: Some(name.into()),
                labels: Some(BTreeMap::from([
                    (MANAGED_BY_LABEL.to_string(), "regcreds".to_string()),
                    (
                        "regcreds.dev/provider".to_string(),
                        "dockerconfigjson".to_string(),
                    ),
                ])),
                ..Default::default()
            },
            type_: Some("kubernetes.io/dockerconfigjson".into()),
            data: Some(BTreeMap::from([(
                ".dockerconfigjson".to_string(),
                ByteString(doc(&format!("{name}.example"), "old-pw").into_bytes()),
            )])),
            ..Default::default()
        };
        Api::<Secret>::namespaced(client.clone(), ns)
            .create(&PostParams::default(), &secret)
            .await
            .expect("legacy secret");
    }
    let accounts = Api::<ServiceAccount>::namespaced(client.clone(), ns);
    let mut account = accounts.get("default").await.expect("sa");
    account.image_pull_secrets = Some(
        ["keep-me", "hub-pull", "ecr-pull"]
            .iter()
            .map(|n| LocalObjectReference { name: n.to_string() })
            .collect(),
    );
    account
        .annotations_mut()
        .insert(REFS_ANNOTATION.to_string(), "ecr-pull,hub-pull".to_string());
    accounts
        .replace("default", &PostParams::default(), &account)
        .await
        .expect("legacy annotation");
}

#[tokio::test]
async fn objects_written_before_instances_existed_are_adopted_by_the_instance_that_writes_them() {
    let _serial = SERIAL.lock().await;
    let cp = ControlPlane::shared().await;
    let client = cp.client();
    let test = "upgrade";
    let ns = "upgrade-0";
    ensure_namespace(&client, SYSTEM, &[]).await;
    ensure_namespace(&client, ns, &[(TEST_LABEL, test)]).await;
    legacy_objects(&client, ns).await;
    let ecr_legacy = secret(&client, ns, "ecr-pull").await.expect("legacy");
    let dir = tempfile::tempdir().expect("tempdir");

    // Upgrade the `hub` Deployment first: it adopts hub-pull and leaves ecr-pull alone.
    let hub = spawn(
        cp.kubeconfig_path(),
        &instance_env(HUB_POD, "hub-pull", "hub.example", test),
        &dir.path().join("hub.log"),
    );
    let adopted = wait_for("hub-pull adopted", TIMEOUT, || async {
        let secret = secret(&client, ns, "hub-pull").await?;
        (label(&secret, INSTANCE_LABEL).as_deref() == Some("hub.regcreds-system")).then_some(secret)
    })
    .await;
    let bytes = adopted.data.expect("data")[".dockerconfigjson"].0.clone();
    let rendered: serde_json::Value = serde_json::from_slice(&bytes).expect("json");
    assert_eq!(
        rendered["auths"]["hub.example"]["password"], "instance-pw",
        "rewritten by hub"
    );
    let accounts = Api::<ServiceAccount>::namespaced(client.clone(), ns);
    wait_for("hub-pull recorded by hub", TIMEOUT, || async {
        let account = accounts.get("default").await.ok()?;
        let annotations = account.annotations();
        (annotations.get("image-pull-secrets.regcreds.dev/hub.regcreds-system") == Some(&"hub-pull".into())
            && annotations.get(REFS_ANNOTATION) == Some(&"ecr-pull".into()))
        .then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let untouched = secret(&client, ns, "ecr-pull").await.expect("never withdrawn");
    assert_eq!(untouched.resource_version(), ecr_legacy.resource_version());
    assert_eq!(
        pull_secret_refs(&client, ns, "default").await,
        Some(vec!["keep-me".into(), "hub-pull".into(), "ecr-pull".into()]),
        "every reference kept, in order"
    );

    // Then the `ecr` Deployment: it adopts the rest; the old shared annotation disappears.
    let ecr = spawn(
        cp.kubeconfig_path(),
        &instance_env(ECR_POD, "ecr-pull", "ecr.example", test),
        &dir.path().join("ecr.log"),
    );
    wait_for("ecr-pull adopted", TIMEOUT, || async {
        let account = accounts.get("default").await.ok()?;
        let secret = secret(&client, ns, "ecr-pull").await?;
        (label(&secret, INSTANCE_LABEL).as_deref() == Some("ecr.regcreds-system")
            && !account.annotations().contains_key(REFS_ANNOTATION)
            && account
                .annotations()
                .get("image-pull-secrets.regcreds.dev/ecr.regcreds-system")
                == Some(&"ecr-pull".into()))
        .then_some(())
    })
    .await;
    // Adopted: from now on nothing is written at rest.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let before = (own_writes(&hub), own_writes(&ecr));
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(
        (own_writes(&hub), own_writes(&ecr)),
        before,
        "writes at rest after adoption"
    );
    assert_eq!(
        pull_secret_refs(&client, ns, "default").await,
        Some(vec!["keep-me".into(), "hub-pull".into(), "ecr-pull".into()])
    );
    drop((hub, ecr));
    delete_namespaces(&client, &[ns]).await;
}
