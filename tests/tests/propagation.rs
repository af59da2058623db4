//! The propagator against a real control plane: every namespace gets the Secret and its ServiceAccount
//! references it; changes fan out; a steady state writes nothing; foreign objects and others' entries
//! survive; drift is repaired; exclusions withdraw what was written.
//!
//! Tests share one control plane per binary and run one at a time (a propagator reconciles every
//! namespace it sees). Each test scopes its propagator to namespaces labelled with its own id.

use std::{collections::BTreeMap, sync::Arc, time::Duration};

use futures::future::join_all;
use k8s_openapi::{
    ByteString,
    api::core::v1::{LocalObjectReference, Namespace, Secret, ServiceAccount},
};
use kube::{
    Api, Client, ResourceExt,
    api::{DeleteParams, Patch, PatchParams, PostParams},
};
use regcreds_propagator::{
    CleanupScope, Desired, DesiredSecret, InstanceId, MANAGED_BY_LABEL, ServiceAccountMode,
};
use regcreds_testkit::{
    ControlPlane, TEST_LABEL, counting_client,
    propagator::{Running, settings},
    pull_secret_refs, users_opaque_secret, wait_for,
};
use tokio::sync::Mutex;

const SECRET: &str = "regcreds-e2e";
const TIMEOUT: Duration = Duration::from_secs(60);

/// One propagator at a time: each reconciles every namespace it can see.
static SERIAL: Mutex<()> = Mutex::const_new(());

fn config(password: &str) -> Arc<[u8]> {
    Arc::from(
        format!(r#"{{"auths":{{"registry.example":{{"username":"u","password":"{password}"}}}}}}"#)
            .as_bytes(),
    )
}

fn desired(password: &str) -> Desired {
    only(SECRET, "static", password)
}

/// A desired state with one Secret `name` from `provider`.
fn only(name: &str, provider: &str, password: &str) -> Desired {
    let mut desired = Desired::new([name.to_string()]);
    desired.set(DesiredSecret {
        name: name.into(),
        provider: provider.into(),
        data: config(password),
    });
    desired
}

async fn create_namespace(client: &Client, name: &str, test: &str, annotations: &[(&str, &str)]) {
    let mut ns = Namespace::default();
    ns.metadata.name = Some(name.into());
    ns.metadata.labels = Some(BTreeMap::from([(TEST_LABEL.to_string(), test.to_string())]));
    ns.metadata.annotations = Some(
        annotations
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    );
    Api::<Namespace>::all(client.clone())
        .create(&PostParams::default(), &ns)
        .await
        .expect("create namespace");
}

async fn create_namespaces(client: &Client, test: &str, count: usize) -> Vec<String> {
    let names: Vec<String> = (0..count).map(|i| format!("{test}-{i}")).collect();
    join_all(names.iter().map(|n| create_namespace(client, n, test, &[]))).await;
    names
}

async fn delete_namespaces(client: &Client, names: &[String]) {
    let api = Api::<Namespace>::all(client.clone());
    let params = DeleteParams::default();
    join_all(names.iter().map(|n| api.delete(n, &params))).await;
}

async fn secret_data(client: &Client, ns: &str) -> Option<Vec<u8>> {
    let secret = Api::<Secret>::namespaced(client.clone(), ns)
        .get_opt(SECRET)
        .await
        .ok()??;
    secret.data?.get(".dockerconfigjson").map(|b| b.0.clone())
}

async fn wait_secret(client: &Client, ns: &str, expected: &[u8]) {
    wait_for(&format!("secret in {ns}"), TIMEOUT, || async {
        (secret_data(client, ns).await.as_deref() == Some(expected)).then_some(())
    })
    .await;
}

async fn wait_ref(client: &Client, ns: &str, sa: &str) {
    wait_for(
        &format!("serviceaccount {ns}/{sa} referencing {SECRET}"),
        TIMEOUT,
        || async {
            pull_secret_refs(client, ns, sa)
                .await
                .filter(|refs| refs.iter().any(|r| r == SECRET))
                .map(drop)
        },
    )
    .await;
}

async fn wait_gone(client: &Client, ns: &str) {
    wait_for(&format!("secret gone from {ns}"), TIMEOUT, || async {
        secret_data(client, ns).await.is_none().then_some(())
    })
    .await;
}

#[tokio::test]
async fn fifty_new_namespaces_and_a_late_one_get_the_secret_and_the_default_service_account_reference() {
    let _serial = SERIAL.lock().await;
    let cp = ControlPlane::shared().await;
    let client = cp.client();
    let test = "fanout";
    let names = create_namespaces(&client, test, 50).await;
    let running = Running::start(client.clone(), settings(test, &[]), desired("pw-1")).await;
    let expected = config("pw-1");
    for ns in &names {
        wait_secret(&client, ns, &expected).await;
        wait_ref(&client, ns, "default").await;
    }
    let late = format!("{test}-late");
    create_namespace(&client, &late, test, &[]).await;
    wait_secret(&client, &late, &expected).await;
    wait_ref(&client, &late, "default").await;

    let secret = Api::<Secret>::namespaced(client.clone(), &late)
        .get(SECRET)
        .await
        .expect("secret");
    assert_eq!(secret.type_.as_deref(), Some("kubernetes.io/dockerconfigjson"));
    assert_eq!(
        secret.labels().get(MANAGED_BY_LABEL).map(String::as_str),
        Some("regcreds")
    );
    assert_eq!(
        secret.labels().get("regcreds.dev/provider").map(String::as_str),
        Some("static")
    );
    running.stop().await;
    delete_namespaces(&client, &[names, vec![late]].concat()).await;
}

#[tokio::test]
async fn a_credential_change_reaches_every_namespace_and_then_the_steady_state_writes_nothing() {
    let _serial = SERIAL.lock().await;
    let cp = ControlPlane::shared().await;
    let client = cp.client();
    let test = "rotate";
    let names = create_namespaces(&client, test, 20).await;
    // Count the propagator's own requests: the apiserver's metrics also see the controller manager
    // finalizing other tests' namespaces.
    let (counted, counter) = counting_client(cp.kubeconfig_path()).await.expect("client");
    let running = Running::start(counted, settings(test, &[]), desired("before")).await;
    for ns in &names {
        wait_secret(&client, ns, &config("before")).await;
        wait_ref(&client, ns, "default").await;
    }
    running.desired.send_modify(|d| {
        d.set(DesiredSecret {
            name: SECRET.into(),
            provider: "static".into(),
            data: config("after"),
        });
    });
    for ns in &names {
        wait_secret(&client, ns, &config("after")).await;
    }
    // Let in-flight reconciles (triggered by our own writes echoing back through the watches) settle.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let before = counter.writes();
    // Re-publishing identical bytes is not a change; a full resync trigger must not write either.
    running.desired.send_modify(|d| {
        d.set(DesiredSecret {
            name: SECRET.into(),
            provider: "static".into(),
            data: config("after"),
        });
    });
    tokio::time::sleep(Duration::from_secs(10)).await;
    let after = counter.writes();
    assert_eq!(after - before, 0, "write requests during 10 idle seconds");
    assert!(before >= 40, "the fan-out itself was counted ({before} writes)");
    running.stop().await;
    delete_namespaces(&client, &names).await;
}

#[tokio::test]
async fn a_foreign_secret_with_the_same_name_survives_unless_forced() {
    let _serial = SERIAL.lock().await;
    let cp = ControlPlane::shared().await;
    let client = cp.client();
    let test = "foreign";
    let ns = format!("{test}-0");
    create_namespace(&client, &ns, test, &[]).await;
    let theirs = users_opaque_secret(SECRET);
    let secrets = Api::<Secret>::namespaced(client.clone(), &ns);
    let created = secrets
        .create(&PostParams::default(), &theirs)
        .await
        .expect("create foreign secret");

    let running = Running::start(client.clone(), settings(test, &[]), desired("pw")).await;
    // A second, unrelated namespace proves the propagator is active while it skips the foreign one.
    let witness = format!("{test}-witness");
    create_namespace(&client, &witness, test, &[]).await;
    wait_secret(&client, &witness, &config("pw")).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let after = secrets.get(SECRET).await.expect("still there");
    assert_eq!(after.data, created.data, "foreign secret content untouched");
    assert_eq!(after.type_, created.type_);
    assert_eq!(
        after.resource_version(),
        created.resource_version(),
        "not even re-written"
    );
    let refs = pull_secret_refs(&client, &ns, "default")
        .await
        .unwrap_or_default();
    assert!(
        !refs.contains(&SECRET.to_string()),
        "a foreign secret is not added to the serviceaccount"
    );
    running.stop().await;

    let mut forced = settings(test, &[]);
    forced.force = true;
    let running = Running::start(client.clone(), forced, desired("pw")).await;
    wait_secret(&client, &ns, &config("pw")).await;
    let taken = secrets.get(SECRET).await.expect("secret");
    assert_eq!(taken.type_.as_deref(), Some("kubernetes.io/dockerconfigjson"));
    wait_ref(&client, &ns, "default").await;
    running.stop().await;
    delete_namespaces(&client, &[ns, witness]).await;
}

#[tokio::test]
async fn excluded_namespaces_get_nothing_and_excluding_later_withdraws_what_was_written() {
    let _serial = SERIAL.lock().await;
    let cp = ControlPlane::shared().await;
    let client = cp.client();
    let test = "scope";
    let included = format!("{test}-in");
    create_namespace(&client, &included, test, &[]).await;
    let annotated: Vec<String> = [
        "regcreds.dev/ignore",
        "registry-creds/ignore",
        "k8s.titansoft.com/imagepullsecret-patcher-exclude",
    ]
    .iter()
    .enumerate()
    .map(|(i, _)| format!("{test}-annotated-{i}"))
    .collect();
    for (name, key) in annotated.iter().zip([
        "regcreds.dev/ignore",
        "registry-creds/ignore",
        "k8s.titansoft.com/imagepullsecret-patcher-exclude",
    ]) {
        create_namespace(&client, name, test, &[(key, "true")]).await;
    }
    let globbed = format!("{test}-skip-me");
    create_namespace(&client, &globbed, test, &[]).await;
    let unselected = format!("{test}-other");
    create_namespace(&client, &unselected, "someone-else", &[]).await;
    let later = format!("{test}-later");
    create_namespace(&client, &later, test, &[]).await;

    let running = Running::start(client.clone(), settings(test, &["*-skip-*"]), desired("pw")).await;
    wait_secret(&client, &included, &config("pw")).await;
    wait_secret(&client, &later, &config("pw")).await;
    wait_ref(&client, &later, "default").await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    for ns in annotated.iter().chain([&globbed, &unselected]) {
        assert!(
            secret_data(&client, ns).await.is_none(),
            "{ns} is excluded and must get nothing"
        );
    }

    // A reference this instance recorded on an account it no longer targets (written under an earlier
    // `all` configuration); the watch holds only `default` accounts, yet withdrawal must find it.
    let builder = ServiceAccount {
        metadata: kube::api::ObjectMeta {
            name: Some("builder".into()),
            annotations: Some(BTreeMap::from([(
                InstanceId::default().refs_annotation(),
                SECRET.to_string(),
            )])),
            ..Default::default()
        },
        image_pull_secrets: Some(
            ["theirs", SECRET]
                .iter()
                .map(|n| LocalObjectReference { name: n.to_string() })
                .collect(),
        ),
        ..Default::default()
    };
    Api::<ServiceAccount>::namespaced(client.clone(), &later)
        .create(&PostParams::default(), &builder)
        .await
        .expect("builder account");

    // Excluding a namespace later withdraws the Secret and the references regcreds added, on every
    // account; others' entries stay.
    let patch = serde_json::json!({"metadata": {"annotations": {"registry-creds/ignore": "true"}}});
    Api::<Namespace>::all(client.clone())
        .patch(&later, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .expect("annotate");
    wait_gone(&client, &later).await;
    wait_for("reference withdrawn", TIMEOUT, || async {
        pull_secret_refs(&client, &later, "default")
            .await
            .filter(|r| !r.contains(&SECRET.to_string()))
            .map(drop)
    })
    .await;
    wait_for("reference withdrawn from builder", TIMEOUT, || async {
        pull_secret_refs(&client, &later, "builder")
            .await
            .filter(|r| r == &["theirs".to_string()])
            .map(drop)
    })
    .await;
    running.stop().await;
    delete_namespaces(
        &client,
        &[annotated, vec![included, globbed, unselected, later]].concat(),
    )
    .await;
}

#[tokio::test]
async fn a_concurrent_writer_of_image_pull_secrets_loses_none_of_its_entries() {
    let _serial = SERIAL.lock().await;
    let cp = ControlPlane::shared().await;
    let client = cp.client();
    let test = "race";
    let ns = format!("{test}-0");
    create_namespace(&client, &ns, test, &[]).await;
    wait_for("default serviceaccount", TIMEOUT, || async {
        pull_secret_refs(&client, &ns, "default").await
    })
    .await;
    let accounts = Api::<ServiceAccount>::namespaced(client.clone(), &ns);

    // The other writer appends its own entries by read-modify-write, as fast as it can.
    let writer = {
        let accounts = accounts.clone();
        tokio::spawn(async move {
            let mut added = Vec::new();
            for i in 0..40 {
                let name = format!("theirs-{i}");
                loop {
                    let mut sa = accounts.get("default").await.expect("get");
                    sa.image_pull_secrets
                        .get_or_insert_with(Vec::new)
                        .push(LocalObjectReference { name: name.clone() });
                    match accounts.replace("default", &PostParams::default(), &sa).await {
                        Ok(_) => break,
                        Err(kube::Error::Api(s)) if s.code == 409 => continue,
                        Err(e) => panic!("writer: {e}"),
                    }
                }
                added.push(name);
            }
            added
        })
    };
    // Meanwhile regcreds adds its reference, and rotates twice, which re-checks the serviceaccount.
    let running = Running::start(client.clone(), settings(test, &[]), desired("one")).await;
    for password in ["two", "three"] {
        tokio::time::sleep(Duration::from_millis(300)).await;
        running.desired.send_modify(|d| {
            d.set(DesiredSecret {
                name: SECRET.into(),
                provider: "static".into(),
                data: config(password),
            });
        });
    }
    let theirs = writer.await.expect("writer finished");
    wait_ref(&client, &ns, "default").await;
    let refs = pull_secret_refs(&client, &ns, "default").await.expect("sa");
    for name in &theirs {
        assert!(refs.contains(name), "lost {name}: {refs:?}");
    }
    assert_eq!(
        refs.iter().filter(|r| *r == SECRET).count(),
        1,
        "no duplicates: {refs:?}"
    );
    let positions: Vec<usize> = theirs
        .iter()
        .map(|n| refs.iter().position(|r| r == n).expect("present"))
        .collect();
    assert!(
        positions.windows(2).all(|w| w[0] < w[1]),
        "their entries keep their order: {refs:?}"
    );
    running.stop().await;
    delete_namespaces(&client, &[ns]).await;
}

#[tokio::test]
async fn edited_and_deleted_managed_secrets_and_removed_references_are_restored() {
    let _serial = SERIAL.lock().await;
    let cp = ControlPlane::shared().await;
    let client = cp.client();
    let test = "drift";
    let ns = format!("{test}-0");
    create_namespace(&client, &ns, test, &[]).await;
    let running = Running::start(client.clone(), settings(test, &[]), desired("good")).await;
    wait_secret(&client, &ns, &config("good")).await;
    wait_ref(&client, &ns, "default").await;
    let secrets = Api::<Secret>::namespaced(client.clone(), &ns);

    let edit = serde_json::json!({"data": {".dockerconfigjson": ByteString(config("tampered").to_vec())}});
    secrets
        .patch(SECRET, &PatchParams::default(), &Patch::Merge(&edit))
        .await
        .expect("edit");
    wait_secret(&client, &ns, &config("good")).await;

    secrets
        .delete(SECRET, &DeleteParams::default())
        .await
        .expect("delete");
    wait_secret(&client, &ns, &config("good")).await;

    let accounts = Api::<ServiceAccount>::namespaced(client.clone(), &ns);
    let mut sa = accounts.get("default").await.expect("sa");
    sa.image_pull_secrets = Some(vec![LocalObjectReference {
        name: "keep-me".into(),
    }]);
    accounts
        .replace("default", &PostParams::default(), &sa)
        .await
        .expect("remove reference");
    wait_ref(&client, &ns, "default").await;
    let refs = pull_secret_refs(&client, &ns, "default").await.expect("sa");
    assert_eq!(refs, vec!["keep-me".to_string(), SECRET.to_string()]);
    running.stop().await;
    delete_namespaces(&client, &[ns]).await;
}

#[tokio::test]
async fn all_mode_patches_service_accounts_created_later_and_cleanup_removes_everything_regcreds_added() {
    let _serial = SERIAL.lock().await;
    let cp = ControlPlane::shared().await;
    let client = cp.client();
    let test = "allmode";
    let ns = format!("{test}-0");
    create_namespace(&client, &ns, test, &[]).await;
    let mut all = settings(test, &[]);
    all.service_accounts = ServiceAccountMode::All;
    let running = Running::start(client.clone(), all, desired("pw")).await;
    wait_ref(&client, &ns, "default").await;
    let accounts = Api::<ServiceAccount>::namespaced(client.clone(), &ns);
    let mut builder = ServiceAccount::default();
    builder.metadata.name = Some("builder".into());
    builder.image_pull_secrets = Some(vec![LocalObjectReference {
        name: "theirs".into(),
    }]);
    accounts
        .create(&PostParams::default(), &builder)
        .await
        .expect("create sa");
    wait_ref(&client, &ns, "builder").await;
    running.stop().await;

    let scope = CleanupScope::Instance {
        id: InstanceId::default(),
        names: [SECRET.to_string()].into(),
    };
    let report = regcreds_propagator::cleanup(&client, &scope)
        .await
        .expect("cleanup");
    assert!(
        report.secrets_deleted >= 1 && report.accounts_updated >= 2,
        "{report:?}"
    );
    assert!(secret_data(&client, &ns).await.is_none());
    assert_eq!(
        pull_secret_refs(&client, &ns, "builder").await,
        Some(vec!["theirs".to_string()])
    );
    assert_eq!(pull_secret_refs(&client, &ns, "default").await, Some(vec![]));
    delete_namespaces(&client, &[ns]).await;
}

#[tokio::test]
async fn a_provider_removed_from_the_configuration_loses_its_secrets() {
    let _serial = SERIAL.lock().await;
    let cp = ControlPlane::shared().await;
    let client = cp.client();
    let test = "removal";
    let ns = format!("{test}-0");
    create_namespace(&client, &ns, test, &[]).await;
    let running = Running::start(client.clone(), settings(test, &[]), desired("pw")).await;
    wait_secret(&client, &ns, &config("pw")).await;
    wait_ref(&client, &ns, "default").await;
    running.stop().await;

    // Restart with a configuration that no longer has that provider: its Secret and reference go.
    let other = only("other-secret", "dockerhub", "x");
    let running = Running::start(client.clone(), settings(test, &[]), other).await;
    wait_gone(&client, &ns).await;
    wait_for("only the new reference", TIMEOUT, || async {
        pull_secret_refs(&client, &ns, "default")
            .await
            .filter(|r| r == &vec!["other-secret".to_string()])
            .map(drop)
    })
    .await;
    running.stop().await;
    delete_namespaces(&client, &[ns]).await;
}

#[tokio::test]
async fn a_service_account_dropped_from_the_targets_loses_regcreds_references_and_a_renamed_secret_goes_after_them()
 {
    let _serial = SERIAL.lock().await;
    let cp = ControlPlane::shared().await;
    let client = cp.client();
    let test = "retarget";
    let ns = format!("{test}-0");
    create_namespace(&client, &ns, test, &[]).await;
    let accounts = Api::<ServiceAccount>::namespaced(client.clone(), &ns);
    wait_for("the default ServiceAccount", TIMEOUT, || async {
        accounts.get_opt("default").await.ok().flatten()
    })
    .await;
    let mut builder = ServiceAccount::default();
    builder.metadata.name = Some("builder".into());
    builder.image_pull_secrets = Some(vec![LocalObjectReference {
        name: "theirs".into(),
    }]);
    accounts
        .create(&PostParams::default(), &builder)
        .await
        .expect("create sa");
    let mut both = settings(test, &[]);
    both.service_accounts = ServiceAccountMode::Named(vec!["default".into(), "builder".into()]);
    let running = Running::start(client.clone(), both, desired("pw")).await;
    wait_ref(&client, &ns, "builder").await;
    running.stop().await;

    // Back to the default list (only `default` is watched then), and the Secret renamed.
    let renamed = only("renamed", "static", "pw");
    let running = Running::start(client.clone(), settings(test, &[]), renamed).await;
    wait_for("builder back to its own entry", TIMEOUT, || async {
        pull_secret_refs(&client, &ns, "builder")
            .await
            .filter(|refs| refs == &vec!["theirs".to_string()])
            .map(drop)
    })
    .await;
    wait_for("default on the new name only", TIMEOUT, || async {
        pull_secret_refs(&client, &ns, "default")
            .await
            .filter(|refs| refs == &vec!["renamed".to_string()])
            .map(drop)
    })
    .await;
    wait_gone(&client, &ns).await;
    let builder = accounts.get("builder").await.expect("builder");
    assert!(
        !builder
            .annotations()
            .keys()
            .any(|k| k.starts_with("image-pull-secrets.regcreds.dev/")),
        "nothing recorded on builder any more: {:?}",
        builder.annotations()
    );
    running.stop().await;
    delete_namespaces(&client, &[ns]).await;
}
