//! Taking over what the tools regcreds replaces left behind, on a real control plane: upmc
//! registry-creds' Secrets (written here exactly as its `generateSecretObj` and `processNamespace` write
//! them: a name and nothing else in the metadata, `"email":"none"` entries, GCR in the legacy
//! `kubernetes.io/dockercfg` type, `{}` after a failed mint) and the `default` ServiceAccount references
//! it appended; and only those — a look-alike for another registry, or a user's own Secret of that name,
//! stays foreign.
//!
//! Tests share one control plane per binary and run one at a time (a propagator reconciles every
//! namespace it sees). Each test scopes its propagator to namespaces labelled with its own id.

use std::{collections::BTreeMap, sync::Arc, time::Duration};

use k8s_openapi::{
    ByteString,
    api::{
        core::v1::{LocalObjectReference, Secret, ServiceAccount},
        events::v1::Event,
    },
};
use kube::{
    Api, Client, ResourceExt,
    api::{ListParams, ObjectMeta, PostParams},
};
use regcreds_propagator::{CleanupScope, Desired, DesiredSecret, InstanceId, MANAGED_BY_LABEL};
use regcreds_testkit::{
    ControlPlane, TEST_LABEL, delete_namespaces, ensure_namespace,
    propagator::{Running, settings},
    pull_secret_refs, secret, wait_for,
};
use tokio::sync::Mutex;

/// upmc's default ECR Secret name (`--aws-secret-name`).
const SECRET: &str = "awsecr-cred";
/// The registry the credential below is for (an ECR proxy endpoint, as upmc keys it).
const REGISTRY: &str = "https://123456789012.dkr.ecr.us-east-1.amazonaws.com";
const TIMEOUT: Duration = Duration::from_secs(60);

/// One propagator at a time: each reconciles every namespace it can see.
static SERIAL: Mutex<()> = Mutex::const_new(());

/// What regcreds' ECR provider mints for [`REGISTRY`].
fn minted(password: &str) -> Arc<[u8]> {
    use base64::Engine;
    let auth = base64::engine::general_purpose::STANDARD.encode(format!("AWS:{password}"));
    Arc::from(
        format!(
            r#"{{"auths":{{"{REGISTRY}":{{"username":"AWS","password":"{password}","auth":"{auth}"}}}}}}"#
        )
        .as_bytes(),
    )
}

fn desired(password: &str) -> Desired {
    let mut desired = Desired::new([SECRET.to_string()]);
    desired.set(DesiredSecret {
        name: SECRET.into(),
        provider: "ecr".into(),
        data: minted(password),
    });
    desired
}

/// A Secret as upmc's `generateSecretObj` builds it and `CreateSecret` stores it: only a name.
fn upmc_secret(type_: Option<&str>, key: &str, data: Option<String>) -> Secret {
    Secret {
        metadata: ObjectMeta {
            name: Some(SECRET.into()),
            ..Default::default()
        },
        type_: type_.map(String::from),
        data: data.map(|d| BTreeMap::from([(key.to_string(), ByteString(d.into_bytes()))])),
        ..Default::default()
    }
}

/// upmc's ECR/private-registry/ACR shape: `{"auths":{endpoint:{"auth":…,"email":"none"}}}`.
fn upmc_dockerconfigjson(endpoint: &str) -> Secret {
    upmc_secret(
        Some("kubernetes.io/dockerconfigjson"),
        ".dockerconfigjson",
        Some(format!(
            r#"{{"auths":{{"{endpoint}":{{"auth":"QVdTOnVwbWMtb2xk","email":"none"}}}}}}"#
        )),
    )
}

/// upmc's GCR shape (`dockerCfgTemplate`), in the legacy type.
fn upmc_dockercfg(url: &str) -> Secret {
    upmc_secret(
        Some("kubernetes.io/dockercfg"),
        ".dockercfg",
        Some(format!(
            r#"{{"{url}":{{"username":"oauth2accesstoken","password":"ya29.old","email":"none"}}}}"#
        )),
    )
}

/// Creates `secret` in `ns` and, as upmc's `processNamespace` does, appends its name to the `default`
/// ServiceAccount after the user's own entry (a full update of what it read).
async fn as_upmc_left_it(client: &Client, ns: &str, secret: Secret) -> Secret {
    let created = Api::<Secret>::namespaced(client.clone(), ns)
        .create(&PostParams::default(), &secret)
        .await
        .expect("create upmc's secret");
    let accounts = Api::<ServiceAccount>::namespaced(client.clone(), ns);
    let mut account = accounts.get("default").await.expect("default sa");
    account.image_pull_secrets = Some(vec![
        LocalObjectReference {
            name: "users-own".into(),
        },
        LocalObjectReference { name: SECRET.into() },
    ]);
    accounts
        .replace("default", &PostParams::default(), &account)
        .await
        .expect("upmc's serviceaccount update");
    created
}

async fn wait_current(client: &Client, ns: &str, password: &str) -> Secret {
    let expected = minted(password);
    wait_for(&format!("{ns}/{SECRET} taken over"), TIMEOUT, || async {
        let found = secret(client, ns, SECRET).await?;
        let data = found.data.as_ref()?.get(".dockerconfigjson")?.0.clone();
        (data == *expected && found.labels().get(MANAGED_BY_LABEL).map(String::as_str) == Some("regcreds"))
            .then_some(found)
    })
    .await
}

/// The Events regcreds published about Secret `name` in `ns`.
async fn secret_events(client: &Client, ns: &str, name: &str) -> Vec<Event> {
    Api::<Event>::namespaced(client.clone(), ns)
        .list(&ListParams::default())
        .await
        .map(|list| list.items)
        .unwrap_or_default()
        .into_iter()
        .filter(|e| e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(name))
        .collect()
}

/// Their reasons.
async fn secret_event_reasons(client: &Client, ns: &str, name: &str) -> Vec<String> {
    secret_events(client, ns, name)
        .await
        .into_iter()
        .filter_map(|e| e.reason)
        .collect()
}

/// Their notes.
async fn secret_event_notes(client: &Client, ns: &str, name: &str) -> Vec<String> {
    secret_events(client, ns, name)
        .await
        .into_iter()
        .filter_map(|e| e.note)
        .collect()
}

#[tokio::test]
async fn upmcs_secrets_are_taken_over_referenced_once_and_cleaned_up_while_look_alikes_stay_foreign() {
    let _serial = SERIAL.lock().await;
    let cp = ControlPlane::shared().await;
    let client = cp.client();
    let test = "upmc";
    let label = [(TEST_LABEL, test)];
    let [ecr, gcr, failed, other, users] =
        ["upmc-ecr", "upmc-gcr", "upmc-failed", "upmc-other", "upmc-users"];
    for ns in [ecr, gcr, failed, other, users] {
        ensure_namespace(&client, ns, &label).await;
    }
    as_upmc_left_it(&client, ecr, upmc_dockerconfigjson(REGISTRY)).await;
    // The GCR shape under the ECR name: what regcreds checks is the registry, not which upmc provider.
    as_upmc_left_it(&client, gcr, upmc_dockercfg(REGISTRY)).await;
    // What upmc wrote when a mint failed (#106).
    as_upmc_left_it(
        &client,
        failed,
        upmc_secret(
            Some("kubernetes.io/dockerconfigjson"),
            ".dockerconfigjson",
            Some("{}".into()),
        ),
    )
    .await;
    // upmc's shape, but for another AWS account than the one regcreds mints for.
    let other_account = REGISTRY.replace("123456789012", "210987654321");
    let untouched_other = as_upmc_left_it(&client, other, upmc_dockerconfigjson(&other_account)).await;
    // A user's own: what `kubectl create secret docker-registry` writes (username, password, auth).
    let mut own = upmc_secret(
        Some("kubernetes.io/dockerconfigjson"),
        ".dockerconfigjson",
        Some(format!(
            r#"{{"auths":{{"{REGISTRY}":{{"username":"AWS","password":"mine","auth":"QVdTOm1pbmU="}}}}}}"#
        )),
    );
    own.metadata.name = Some(SECRET.into());
    let untouched_users = as_upmc_left_it(&client, users, own).await;

    let running = Running::start(client.clone(), settings(test, &[]), desired("fresh-1")).await;
    for ns in [ecr, gcr, failed] {
        let taken = wait_current(&client, ns, "fresh-1").await;
        assert_eq!(taken.type_.as_deref(), Some("kubernetes.io/dockerconfigjson"));
        wait_for(
            &format!("{ns}: the reference recorded as regcreds'"),
            TIMEOUT,
            || async {
                let account = Api::<ServiceAccount>::namespaced(client.clone(), ns)
                    .get("default")
                    .await
                    .ok()?;
                let recorded = account
                    .annotations()
                    .get("image-pull-secrets.regcreds.dev/regcreds")?;
                (recorded == SECRET).then_some(())
            },
        )
        .await;
        assert_eq!(
            pull_secret_refs(&client, ns, "default").await,
            Some(vec!["users-own".to_string(), SECRET.to_string()]),
            "{ns}: referenced once, the user's entry kept in place"
        );
    }
    wait_for("the SecretTakenOver Event", TIMEOUT, || async {
        secret_event_reasons(&client, ecr, SECRET)
            .await
            .contains(&"SecretTakenOver".to_string())
            .then_some(())
    })
    .await;
    // upmc's legacy GCR type cannot change: the Event says how long the Secret was absent.
    let note = wait_for("the legacy type's replacement in the Event", TIMEOUT, || async {
        secret_event_notes(&client, gcr, SECRET)
            .await
            .into_iter()
            .find(|note| note.contains("kubernetes.io/dockercfg cannot change"))
    })
    .await;
    let absent_ms: u64 = note
        .split("absent for at most ")
        .nth(1)
        .and_then(|rest| rest.split(' ').next())
        .and_then(|ms| ms.parse().ok())
        .unwrap_or_else(|| panic!("no gap in {note:?}"));
    eprintln!("upmc's dockercfg Secret was replaced with at most {absent_ms} ms without a Secret");
    assert!(absent_ms < 1000, "{note}");
    for (ns, before) in [(other, &untouched_other), (users, &untouched_users)] {
        let after = secret(&client, ns, SECRET).await.expect("still there");
        assert_eq!(
            after.resource_version(),
            before.resource_version(),
            "{ns}: a look-alike stays foreign, not even re-written"
        );
        wait_for(&format!("{ns}: SecretNotManaged"), TIMEOUT, || async {
            secret_event_reasons(&client, ns, SECRET)
                .await
                .contains(&"SecretNotManaged".to_string())
                .then_some(())
        })
        .await;
    }

    // upmc's old pod, still running during a rollout, writes its Secret back (a full update of a fresh
    // object: labels dropped). regcreds takes it over again on that sight.
    let secrets = Api::<Secret>::namespaced(client.clone(), ecr);
    let mut rewritten = upmc_dockerconfigjson(REGISTRY);
    rewritten.metadata.resource_version = None;
    secrets
        .replace(SECRET, &PostParams::default(), &rewritten)
        .await
        .expect("upmc's update");
    wait_current(&client, ecr, "fresh-1").await;
    running.stop().await;

    let scope = CleanupScope::Instance {
        id: InstanceId::default(),
        names: [SECRET.to_string()].into(),
    };
    regcreds_propagator::cleanup(&client, &scope)
        .await
        .expect("cleanup");
    for ns in [ecr, gcr, failed] {
        assert!(secret(&client, ns, SECRET).await.is_none(), "{ns}: removed");
        assert_eq!(
            pull_secret_refs(&client, ns, "default").await,
            Some(vec!["users-own".to_string()]),
            "{ns}: the taken-over reference went with it; the user's stayed"
        );
    }
    for ns in [other, users] {
        assert!(secret(&client, ns, SECRET).await.is_some(), "{ns}: foreign kept");
    }
    delete_namespaces(&client, &[ecr, gcr, failed, other, users]).await;
}

#[tokio::test]
async fn with_the_takeover_switched_off_upmcs_secret_is_left_alone() {
    let _serial = SERIAL.lock().await;
    let cp = ControlPlane::shared().await;
    let client = cp.client();
    let test = "upmc-off";
    let (ns, witness) = ("upmc-off-0", "upmc-off-witness");
    ensure_namespace(&client, ns, &[(TEST_LABEL, test)]).await;
    let before = as_upmc_left_it(&client, ns, upmc_dockerconfigjson(REGISTRY)).await;
    let mut off = settings(test, &[]);
    off.take_over = false;
    let running = Running::start(client.clone(), off, desired("fresh-1")).await;
    // A namespace without upmc's Secret proves the propagator is at work meanwhile.
    ensure_namespace(&client, witness, &[(TEST_LABEL, test)]).await;
    wait_current(&client, witness, "fresh-1").await;
    wait_for("SecretNotManaged", TIMEOUT, || async {
        secret_event_reasons(&client, ns, SECRET)
            .await
            .contains(&"SecretNotManaged".to_string())
            .then_some(())
    })
    .await;
    let after = secret(&client, ns, SECRET).await.expect("kept");
    assert_eq!(after.resource_version(), before.resource_version());
    running.stop().await;
    delete_namespaces(&client, &[ns, witness]).await;
}
