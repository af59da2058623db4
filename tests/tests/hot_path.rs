//! The propagator's hot path against a real control plane, counted request by request (issue 15):
//!
//! * initial convergence sends, per namespace, one Secret create and one ServiceAccount patch, and a
//!   rotation one guarded Secret patch — and neither sends a single read (the watch caches know
//!   everything);
//! * a same-named Secret the label-selected cache cannot see is found by the create that conflicts,
//!   read once, and left untouched;
//! * a stale cached ServiceAccount costs one conflict and one re-read, and loses no one's entry;
//! * a Secret someone changed since regcreds last saw it is not overwritten by a rotation: the guarded
//!   patch conflicts, the Secret is read, and decided on as it is now (here: foreign, left untouched).
//!
//! Request counts are deterministic, so asserting them is a behaviour test, not a timing test. Tests
//! share one control plane and run one at a time; each scopes its propagator with its own label.

use std::{collections::BTreeMap, sync::Arc, time::Duration};

use futures::future::join_all;
use k8s_openapi::api::core::v1::{LocalObjectReference, Namespace, Secret, ServiceAccount};
use kube::{
    Api, Client,
    api::{DeleteParams, PostParams},
};
use regcreds_propagator::{Desired, DesiredSecret};
use regcreds_testkit::{
    ControlPlane, Recorded, TEST_LABEL, counting_client,
    propagator::{Running, settings},
    pull_secret_refs, secret_data, users_opaque_secret, wait_for,
};
use tokio::sync::Mutex;

const SECRET: &str = "hot-path-pull";
const SECOND: &str = "hot-path-second";
const TIMEOUT: Duration = Duration::from_secs(60);
/// After the last expected change: long enough for the watch echoes of regcreds' own writes to arrive
/// and wake their namespaces (which must then send nothing).
const SETTLE: Duration = Duration::from_secs(3);

static SERIAL: Mutex<()> = Mutex::const_new(());

fn config(password: &str) -> Arc<[u8]> {
    Arc::from(
        format!(r#"{{"auths":{{"registry.example":{{"username":"u","password":"{password}"}}}}}}"#)
            .as_bytes(),
    )
}

fn desired_secret(name: &str, password: &str) -> DesiredSecret {
    DesiredSecret {
        name: name.into(),
        provider: "static".into(),
        data: config(password),
    }
}

fn desired(password: &str) -> Desired {
    let mut desired = Desired::new([SECRET.to_string()]);
    desired.set(desired_secret(SECRET, password));
    desired
}

/// Creates labelled namespaces and waits until each has its `default` ServiceAccount.
async fn namespaces(client: &Client, test: &str, count: usize) -> Vec<String> {
    let names: Vec<String> = (0..count).map(|i| format!("{test}-{i}")).collect();
    join_all(names.iter().map(|name| async move {
        let mut ns = Namespace::default();
        ns.metadata.name = Some(name.clone());
        ns.metadata.labels = Some(BTreeMap::from([(TEST_LABEL.to_string(), test.to_string())]));
        Api::<Namespace>::all(client.clone())
            .create(&PostParams::default(), &ns)
            .await
            .expect("create namespace");
    }))
    .await;
    for name in &names {
        wait_for(&format!("default serviceaccount in {name}"), TIMEOUT, || async {
            pull_secret_refs(client, name, "default").await.map(drop)
        })
        .await;
    }
    names
}

async fn delete_namespaces(client: &Client, names: &[String]) {
    let api = Api::<Namespace>::all(client.clone());
    let params = DeleteParams::default();
    join_all(names.iter().map(|n| api.delete(n, &params))).await;
}

async fn wait_secret(client: &Client, ns: &str, name: &str, password: &str) {
    let expected = config(password);
    wait_for(&format!("secret {name} in {ns}"), TIMEOUT, || async {
        (secret_data(client, ns, name).await.as_deref() == Some(&*expected)).then_some(())
    })
    .await;
}

async fn wait_ref(client: &Client, ns: &str, name: &str) {
    wait_for(
        &format!("default in {ns} referencing {name}"),
        TIMEOUT,
        || async {
            pull_secret_refs(client, ns, "default")
                .await
                .filter(|refs| refs.iter().any(|r| r == name))
                .map(drop)
        },
    )
    .await;
}

/// `"POST secrets 201"`-style summaries of the requests about namespace `ns`.
fn in_namespace(requests: &[Recorded], ns: &str) -> Vec<String> {
    requests
        .iter()
        .filter(|r| r.namespace() == Some(ns))
        .map(Recorded::summary)
        .collect()
}

/// Appends `name` to the `default` ServiceAccount the way another controller would: get, modify, update.
async fn add_their_entry(client: &Client, ns: &str, name: &str) {
    let accounts = Api::<ServiceAccount>::namespaced(client.clone(), ns);
    let mut account = accounts.get("default").await.expect("get default");
    account
        .image_pull_secrets
        .get_or_insert_with(Vec::new)
        .push(LocalObjectReference { name: name.into() });
    accounts
        .replace("default", &PostParams::default(), &account)
        .await
        .expect("their update");
}

#[tokio::test]
async fn convergence_and_rotation_send_one_write_per_object_per_namespace_and_not_a_single_read() {
    let _serial = SERIAL.lock().await;
    let cp = ControlPlane::shared().await;
    let client = cp.client();
    let test = "counted";
    let names = namespaces(&client, test, 20).await;
    let (counted, counter) = counting_client(cp.kubeconfig_path()).await.expect("client");
    let running = Running::start(counted, settings(test, &[]), desired("v1")).await;
    for ns in &names {
        wait_secret(&client, ns, SECRET, "v1").await;
        wait_ref(&client, ns, SECRET).await;
    }
    tokio::time::sleep(SETTLE).await;

    let converged = counter.requests();
    for ns in &names {
        assert_eq!(
            in_namespace(&converged, ns),
            ["POST secrets 201", "PATCH serviceaccounts 200"],
            "requests about namespace {ns}"
        );
    }
    // Everything else is the start-up: one list and one watch per watched resource, cluster-wide, and
    // one metadata list of every ServiceAccount (those no longer targeted lose regcreds' references).
    let startup: Vec<&Recorded> = converged.iter().filter(|r| r.namespace().is_none()).collect();
    assert!(
        startup
            .iter()
            .all(|r| r.method == http::Method::GET && r.target().is_some_and(|t| t.2.is_none())),
        "only cluster-wide lists and watches: {startup:?}"
    );
    assert!(
        startup.len() <= 7,
        "{} start-up requests: {startup:?}",
        startup.len()
    );
    assert_eq!(
        converged.len(),
        2 * names.len() + startup.len(),
        "no other request"
    );

    running.desired.send_modify(|d| {
        d.set(desired_secret(SECRET, "v2"));
    });
    for ns in &names {
        wait_secret(&client, ns, SECRET, "v2").await;
    }
    tokio::time::sleep(SETTLE).await;
    let rotation = &counter.requests()[converged.len()..];
    for ns in &names {
        assert_eq!(
            in_namespace(rotation, ns),
            ["PATCH secrets 200"],
            "rotation requests about namespace {ns}"
        );
    }
    assert_eq!(rotation.len(), names.len(), "no other request: {rotation:?}");
    running.stop().await;
    delete_namespaces(&client, &names).await;
}

#[tokio::test]
async fn a_foreign_secret_the_cache_cannot_see_is_found_by_the_conflicting_create_and_left_untouched() {
    let _serial = SERIAL.lock().await;
    let cp = ControlPlane::shared().await;
    let client = cp.client();
    let test = "unseen";
    let names = namespaces(&client, test, 2).await;
    let (ns, witness) = (&names[0], &names[1]);
    let theirs = users_opaque_secret(SECRET);
    let secrets = Api::<Secret>::namespaced(client.clone(), ns);
    let created = secrets
        .create(&PostParams::default(), &theirs)
        .await
        .expect("create foreign secret");

    let (counted, counter) = counting_client(cp.kubeconfig_path()).await.expect("client");
    let running = Running::start(counted, settings(test, &[]), desired("pw")).await;
    wait_secret(&client, witness, SECRET, "pw").await;
    wait_ref(&client, witness, SECRET).await;
    tokio::time::sleep(SETTLE).await;

    let after = secrets.get(SECRET).await.expect("still there");
    assert_eq!(
        after.metadata.resource_version, created.metadata.resource_version,
        "not written"
    );
    assert_eq!(after.data, created.data);
    let ours = pull_secret_refs(&client, ns, "default").await.unwrap_or_default();
    assert!(!ours.contains(&SECRET.to_string()), "not referenced: {ours:?}");
    let requests = in_namespace(&counter.requests(), ns);
    assert_eq!(
        requests.first().map(String::as_str),
        Some("POST secrets 409"),
        "the create finds it: {requests:?}"
    );
    assert_eq!(
        requests.get(1).map(String::as_str),
        Some("GET secrets 200"),
        "then one read decides: {requests:?}"
    );
    assert!(
        requests
            .iter()
            .all(|r| r == "POST secrets 409" || r == "GET secrets 200"),
        "nothing else was sent about it: {requests:?}"
    );
    running.stop().await;
    delete_namespaces(&client, &names).await;
}

#[tokio::test]
async fn a_stale_cached_service_account_costs_one_conflict_and_one_read_and_loses_no_entry() {
    let _serial = SERIAL.lock().await;
    let cp = ControlPlane::shared().await;
    let client = cp.client();
    let test = "stale";
    let names = namespaces(&client, test, 1).await;
    let ns = &names[0];
    add_their_entry(&client, ns, "theirs-1").await;

    // The propagator gets its initial lists, then hears of no change: its cache goes stale on purpose.
    let (counted, counter) = counting_client(cp.kubeconfig_path()).await.expect("client");
    counter.hold_watches();
    let running = Running::start(counted, settings(test, &[]), desired("pw")).await;
    wait_ref(&client, ns, SECRET).await;
    add_their_entry(&client, ns, "theirs-2").await;

    let before = counter.requests().len();
    running.desired.send_modify(|d| {
        d.set(desired_secret(SECOND, "pw-2"));
    });
    wait_ref(&client, ns, SECOND).await;
    tokio::time::sleep(SETTLE).await;
    assert_eq!(
        pull_secret_refs(&client, ns, "default").await.expect("default"),
        ["theirs-1", SECRET, "theirs-2", SECOND],
        "their entries kept, in order; ours appended once each"
    );
    let accounts: Vec<String> = counter.requests()[before..]
        .iter()
        .filter(|r| r.namespace() == Some(ns.as_str()) && r.resource() == Some("serviceaccounts"))
        .map(Recorded::summary)
        .collect();
    assert_eq!(
        accounts,
        [
            "PATCH serviceaccounts 409",
            "GET serviceaccounts 200",
            "PATCH serviceaccounts 200"
        ],
        "the cached resourceVersion was tried first, read again only after the conflict"
    );
    counter.release_watches();
    running.stop().await;
    delete_namespaces(&client, &names).await;
}

#[tokio::test]
async fn a_rotation_never_overwrites_a_secret_changed_since_regcreds_saw_it() {
    let _serial = SERIAL.lock().await;
    let cp = ControlPlane::shared().await;
    let client = cp.client();
    let test = "disowned";
    let names = namespaces(&client, test, 1).await;
    let ns = &names[0];

    // The propagator writes the Secret, then hears of no change: it still believes the Secret is its own.
    let (counted, counter) = counting_client(cp.kubeconfig_path()).await.expect("client");
    counter.hold_watches();
    let running = Running::start(counted, settings(test, &[]), desired("pw")).await;
    wait_ref(&client, ns, SECRET).await;
    wait_secret(&client, ns, SECRET, "pw").await;
    // Someone takes the Secret over: removes regcreds' label and keeps the content.
    let secrets = Api::<Secret>::namespaced(client.clone(), ns);
    let mut theirs = secrets.get(SECRET).await.expect("get secret");
    let labels = theirs.metadata.labels.get_or_insert_with(BTreeMap::new);
    labels.remove("app.kubernetes.io/managed-by");
    labels.insert("owner".into(), "someone-else".into());
    secrets
        .replace(SECRET, &PostParams::default(), &theirs)
        .await
        .expect("their update");

    let before = counter.requests().len();
    running.desired.send_modify(|d| {
        d.set(desired_secret(SECRET, "pw-2"));
    });
    let requests = wait_for("the rotation's read of the Secret", TIMEOUT, || {
        let requests = in_namespace(&counter.requests()[before..], ns);
        async move {
            requests
                .iter()
                .any(|r| r.starts_with("GET secrets"))
                .then_some(requests)
        }
    })
    .await;
    tokio::time::sleep(SETTLE).await;
    assert_eq!(
        secret_data(&client, ns, SECRET).await.as_deref(),
        Some(&*config("pw")),
        "their Secret keeps its content"
    );
    let now = secrets.get(SECRET).await.expect("get secret");
    assert_eq!(
        now.metadata
            .labels
            .unwrap_or_default()
            .get("owner")
            .map(String::as_str),
        Some("someone-else"),
        "their labels kept"
    );
    assert_eq!(
        &requests[..2],
        ["PATCH secrets 409", "GET secrets 200"],
        "the cached resourceVersion was tried first, read again only after the conflict"
    );
    assert_eq!(
        in_namespace(&counter.requests()[before..], ns)
            .iter()
            .filter(|r| r.starts_with("PATCH secrets") || r.starts_with("APPLY secrets"))
            .count(),
        1,
        "no write after the conflict"
    );
    counter.release_watches();
    running.stop().await;
    delete_namespaces(&client, &names).await;
}
