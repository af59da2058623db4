//! Issue 10: regcreds under faults of the cluster, as a process against real control planes.
//!
//! * the apiserver is killed and restarted in the middle of a fan-out to 500 namespaces;
//! * the apiserver is unreachable when regcreds starts;
//! * the apiserver throttles regcreds with 429s (API Priority and Fairness, one seat, Reject);
//! * one namespace is Forbidden by RBAC.
//!
//! Bad input (configurations `regcreds run` refuses, unreachable provider endpoints): `bad_input.rs`.
//! Provider outages across several refreshes: `provider_refresh.rs`. 409 conflicts on ServiceAccounts:
//! `propagation.rs` (`a_concurrent_writer_of_image_pull_secrets_loses_none_of_its_entries`).

use std::{collections::BTreeMap, time::Duration};

use futures::{StreamExt, stream};
use k8s_openapi::api::{
    core::v1::{Namespace, Secret},
    flowcontrol::v1::{FlowSchema, PriorityLevelConfiguration},
    rbac::v1::{ClusterRole, ClusterRoleBinding, RoleBinding},
};
use kube::{
    Api, Client,
    api::{DeleteParams, PostParams},
};
use regcreds_testkit::{
    ControlPlane, Regcreds, TEST_LABEL, admin_get, delete_namespaces, ensure_namespace, free_port,
    managed_secret_count, metric_sum, pull_secret_refs, secret, secret_data, wait_for,
};

/// One regcreds (or one private control plane) at a time: an instance withdraws its Secrets from
/// namespaces outside its selector, and two private control planes on 2 cores slow each other down.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
const SECRET_NAME: &str = "fault-pull";
const PASSWORD: &str = "Fault-Pa55word-Never-Logged";

/// Environment of a dockerconfigjson provider writing [`SECRET_NAME`] into namespaces labelled `test`.
fn provider_env(test: &str) -> Vec<(&'static str, String)> {
    vec![
        (
            "REGCREDS_DOCKERCONFIGJSON",
            format!(
                r#"{{"auths":{{"registry.fault.example":{{"username":"puller","password":"{PASSWORD}"}}}}}}"#
            ),
        ),
        ("REGCREDS_DOCKERCONFIGJSON_SECRET_NAME", SECRET_NAME.into()),
        ("REGCREDS_NAMESPACE_SELECTOR", format!("{TEST_LABEL}={test}")),
    ]
}

fn labelled(name: &str, test: &str) -> Namespace {
    let mut namespace = Namespace::default();
    namespace.metadata.name = Some(name.into());
    namespace.metadata.labels = Some(BTreeMap::from([(TEST_LABEL.to_string(), test.to_string())]));
    namespace
}

/// Creates `count` namespaces `<test>-<i>` labelled for `test`, 20 at a time.
async fn create_namespaces(client: &Client, test: &str, count: usize) -> Vec<String> {
    let names: Vec<String> = (0..count).map(|i| format!("{test}-{i}")).collect();
    let api = Api::<Namespace>::all(client.clone());
    stream::iter(names.clone())
        .for_each_concurrent(20, |name| {
            let api = api.clone();
            async move {
                match api.create(&PostParams::default(), &labelled(&name, test)).await {
                    Ok(_) => {}
                    Err(kube::Error::Api(status)) if status.code == 409 => {}
                    Err(error) => panic!("creating namespace {name}: {error}"),
                }
            }
        })
        .await;
    names
}

/// Namespaces (of `names`) that do not yet have the Secret and exactly one reference to it in `default`.
async fn unconverged(client: &Client, names: &[String]) -> Vec<String> {
    let results: Vec<(String, bool)> = stream::iter(names.to_vec())
        .map(|ns| async move {
            let secret = secret_data(client, &ns, SECRET_NAME).await.is_some();
            let refs = pull_secret_refs(client, &ns, "default").await.unwrap_or_default();
            let ours = refs.iter().filter(|r| *r == SECRET_NAME).count();
            (ns, secret && ours == 1)
        })
        .buffer_unordered(32)
        .collect()
        .await;
    results
        .into_iter()
        .filter(|(_, ok)| !ok)
        .map(|(ns, _)| ns)
        .collect()
}

async fn wait_converged(client: &Client, names: &[String], timeout: Duration) {
    let mut missing = Vec::new();
    let deadline = tokio::time::Instant::now() + timeout;
    while tokio::time::Instant::now() < deadline {
        missing = unconverged(client, names).await;
        if missing.is_empty() {
            return;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    panic!(
        "{} of {} namespaces not converged after {timeout:?}, e.g. {:?}",
        missing.len(),
        names.len(),
        &missing[..missing.len().min(5)]
    );
}

/// Every reference in every `default` ServiceAccount of `names`, counted: none lost, none duplicated.
async fn assert_exactly_one_reference_each(client: &Client, names: &[String]) {
    for ns in names {
        let refs = pull_secret_refs(client, ns, "default").await.unwrap_or_default();
        assert_eq!(refs, vec![SECRET_NAME.to_string()], "namespace {ns}");
    }
}

#[tokio::test]
async fn an_apiserver_restart_in_the_middle_of_a_fan_out_to_500_namespaces_converges_without_lost_or_duplicated_references()
 {
    let _serial = SERIAL.lock().await;
    let cp = ControlPlane::start().await.expect("private control plane");
    let client = cp.client();
    let test = "restart";
    let names = create_namespaces(&client, test, 500).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let env = provider_env(test);
    let regcreds = Regcreds::spawn(cp.kubeconfig_path(), &env, dir.path().join("log"));
    wait_for("the fan-out to start", Duration::from_secs(120), || async {
        (managed_secret_count(&client).await >= 20).then_some(())
    })
    .await;
    let before = managed_secret_count(&client).await;
    let started = std::time::Instant::now();
    cp.restart_apiserver().await.expect("apiserver restarts");
    println!(
        "apiserver killed with {before}/500 Secrets written; ready again after {:?}",
        started.elapsed()
    );
    assert!(
        before < 500,
        "the restart must hit the fan-out in its middle ({before} written)"
    );

    let client = cp.client();
    wait_converged(&client, &names, Duration::from_secs(240)).await;
    println!("converged {:?} after the restart", started.elapsed());
    assert_exactly_one_reference_each(&client, &names).await;
    assert_eq!(managed_secret_count(&client).await, 500);

    // The watches are back: a new namespace is noticed, a deleted Secret is restored.
    let late = "restart-late".to_string();
    Api::<Namespace>::all(client.clone())
        .create(&PostParams::default(), &labelled(&late, test))
        .await
        .expect("a namespace created after the restart");
    Api::<Secret>::namespaced(client.clone(), &names[0])
        .delete(SECRET_NAME, &DeleteParams::default())
        .await
        .expect("delete a managed Secret");
    wait_converged(&client, &[late, names[0].clone()], Duration::from_secs(60)).await;

    let logs = regcreds.logs();
    let failed = logs.matches("reconcile failed; will retry").count();
    println!("regcreds logged {failed} failed reconciles while the apiserver was away");
    assert!(!logs.contains(PASSWORD));
    drop(regcreds);
    cp.shutdown(Duration::from_secs(5));
}

/// A TCP forwarder from `listen` to `target`, started only when called: until then nothing listens.
fn forward(listen: std::net::TcpListener, target: u16) {
    listen.set_nonblocking(true).expect("nonblocking");
    let listener = tokio::net::TcpListener::from_std(listen).expect("tokio listener");
    tokio::spawn(async move {
        while let Ok((mut inbound, _)) = listener.accept().await {
            tokio::spawn(async move {
                if let Ok(mut outbound) = tokio::net::TcpStream::connect(("127.0.0.1", target)).await {
                    let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                }
            });
        }
    });
}

#[tokio::test]
async fn an_apiserver_unreachable_at_start_up_is_retried_with_backoff_until_it_appears() {
    let _serial = SERIAL.lock().await;
    let cp = ControlPlane::shared().await;
    let client = cp.client();
    let test = "late-apiserver";
    ensure_namespace(&client, test, &[(TEST_LABEL, test)]).await;
    // A kubeconfig whose server is a port where nothing listens yet.
    let port = free_port();
    let apiserver_port: u16 = cp
        .server_url()
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .expect("apiserver port");
    let dir = tempfile::tempdir().expect("tempdir");
    let kubeconfig = dir.path().join("late.kubeconfig");
    let text = std::fs::read_to_string(cp.kubeconfig_path()).expect("kubeconfig");
    let late_url = format!("https://127.0.0.1:{port}");
    assert!(text.contains(cp.server_url()));
    std::fs::write(&kubeconfig, text.replace(cp.server_url(), &late_url)).expect("write");

    let mut env = provider_env(test);
    env.push(("REGCREDS_LOG_FORMAT", "plain".into()));
    let mut regcreds = Regcreds::spawn(&kubeconfig, &env, dir.path().join("log"));
    // Issue 16: one line per attempt, naming the server and the next attempt; no kube-client ERROR line.
    let retry_line = format!("cannot reach the Kubernetes API server at {late_url}");
    wait_for("three retries", Duration::from_secs(30), || async {
        (regcreds.logs().matches(&retry_line).count() >= 3).then_some(())
    })
    .await;
    let logs = regcreds.logs();
    assert!(
        logs.contains("retry_in_s=1") && logs.contains("retry_in_s=2"),
        "backoff grows: {logs}"
    );
    assert!(
        logs.contains("next attempt in 1 s") && logs.contains("next attempt in 2 s"),
        "each line says when the next attempt is: {logs}"
    );
    assert!(logs.contains("next_attempt="), "and at what time: {logs}");
    assert!(!logs.contains("ERROR"), "no ERROR line: {logs}");
    assert!(!logs.contains("failed with error"), "no kube-client line: {logs}");
    let about_connecting: Vec<&str> = logs
        .lines()
        .filter(|l| l.to_lowercase().contains("connect"))
        .collect();
    assert!(
        about_connecting.iter().all(|l| l.contains(&retry_line)),
        "one line per attempt, nothing else about it: {about_connecting:#?}"
    );
    assert_eq!(regcreds.readyz(), Some(503), "not ready without an apiserver");
    assert_eq!(admin_get(regcreds.admin_port, "/healthz").map(|r| r.0), Some(200));
    assert!(regcreds.exited().is_none(), "it waits instead of exiting");

    // The apiserver "appears" on that port.
    forward(
        std::net::TcpListener::bind(("127.0.0.1", port)).expect("bind the late port"),
        apiserver_port,
    );
    regcreds
        .wait_log("connected to the Kubernetes API server", Duration::from_secs(60))
        .await;
    wait_for("/readyz 200", Duration::from_secs(60), || async {
        (regcreds.readyz() == Some(200)).then_some(())
    })
    .await;
    wait_converged(&client, &[test.to_string()], Duration::from_secs(60)).await;
    let status = regcreds.stop().await;
    assert!(status.success(), "{status:?}");
    delete_namespaces(&client, &[test]).await;
}

fn json<T: k8s_openapi::serde::de::DeserializeOwned>(value: serde_json::Value) -> T {
    serde_json::from_value(value).expect("valid object")
}

#[tokio::test]
async fn throttling_by_the_apiserver_is_retried_and_every_namespace_converges() {
    let _serial = SERIAL.lock().await;
    let cp = ControlPlane::start().await.expect("private control plane");
    let admin = cp.client();
    let user = "regcreds-throttled";
    // Not system:masters (exempt from APF): cluster-admin through a binding.
    let binding: ClusterRoleBinding = json(serde_json::json!({
        "metadata": {"name": user},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "cluster-admin"},
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": user}],
    }));
    Api::<ClusterRoleBinding>::all(admin.clone())
        .create(&PostParams::default(), &binding)
        .await
        .expect("binding");
    // One seat, no queue: a second concurrent request of this user is rejected with 429. The decoy level
    // with huge shares makes sure the seat count rounds down to 1 whatever the server's total.
    let level = |name: &str, shares: i32| -> PriorityLevelConfiguration {
        json(serde_json::json!({
            "metadata": {"name": name},
            "spec": {"type": "Limited", "limited": {
                "nominalConcurrencyShares": shares, "lendablePercent": 0, "borrowingLimitPercent": 0,
                "limitResponse": {"type": "Reject"}}},
        }))
    };
    let levels = Api::<PriorityLevelConfiguration>::all(admin.clone());
    for (name, shares) in [("regcreds-tiny", 1), ("decoy-huge", 10_000)] {
        levels
            .create(&PostParams::default(), &level(name, shares))
            .await
            .expect("level");
    }
    let schema: FlowSchema = json(serde_json::json!({
        "metadata": {"name": user},
        "spec": {
            "priorityLevelConfiguration": {"name": "regcreds-tiny"},
            "matchingPrecedence": 100,
            "distinguisherMethod": {"type": "ByUser"},
            "rules": [{
                "subjects": [{"kind": "User", "user": {"name": user}}],
                "resourceRules": [{"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"],
                                   "namespaces": ["*"], "clusterScope": true}],
                "nonResourceRules": [{"verbs": ["*"], "nonResourceURLs": ["*"]}],
            }],
        },
    }));
    let schemas = Api::<FlowSchema>::all(admin.clone());
    schemas
        .create(&PostParams::default(), &schema)
        .await
        .expect("flow schema");
    // The APF controller marks the schema once it has taken it into its configuration.
    wait_for("APF to use the flow schema", Duration::from_secs(30), || async {
        let schema = schemas.get(user).await.ok()?;
        let conditions = schema.status?.conditions?;
        conditions
            .iter()
            .any(|c| c.type_ == "Dangling" && c.status.as_deref() == Some("False"))
            .then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;

    let test = "throttle";
    // NB: few namespaces: with one seat every request waits for the server's Retry-After, ~2 requests/s.
    let names = create_namespaces(&admin, test, 40).await;
    let kubeconfig = cp.kubeconfig_as(user, &[]).await.expect("kubeconfig");
    let dir = tempfile::tempdir().expect("tempdir");
    let mut env = provider_env(test);
    env.push(("REGCREDS_CONCURRENCY", "16".into()));
    let regcreds = Regcreds::spawn(&kubeconfig, &env, dir.path().join("log"));
    wait_converged(&admin, &names, Duration::from_secs(240)).await;
    assert_exactly_one_reference_each(&admin, &names).await;

    let metrics = cp.metrics_text().await.expect("apiserver metrics");
    let rejected = metric_sum(
        &metrics,
        "apiserver_flowcontrol_rejected_requests_total",
        &[("priority_level", "regcreds-tiny")],
    );
    println!("apiserver rejected {rejected} of regcreds' requests with 429");
    assert!(rejected > 0.0, "APF throttled regcreds");
    assert_eq!(regcreds.readyz(), Some(200));
    drop(regcreds);
    cp.shutdown(Duration::from_secs(5));
}

#[tokio::test]
async fn a_forbidden_namespace_does_not_stop_the_others_and_is_reported_with_the_missing_permission() {
    let _serial = SERIAL.lock().await;
    let cp = ControlPlane::shared().await;
    let admin = cp.client();
    let user = "regcreds-limited";
    let test = "forbid";
    let names = create_namespaces(&admin, test, 5).await;
    for ns in &names {
        ensure_namespace(&admin, ns, &[(TEST_LABEL, test)]).await;
    }
    let rule = |resources: &[&str], verbs: &[&str]| serde_json::json!({"apiGroups": [""], "resources": resources, "verbs": verbs});
    let read: ClusterRole = json(serde_json::json!({
        "metadata": {"name": "regcreds-e2e-read"},
        "rules": [
            rule(&["namespaces", "secrets", "serviceaccounts"], &["get", "list", "watch"]),
            rule(&["events"], &["create", "patch"]),
            {"apiGroups": ["events.k8s.io"], "resources": ["events"], "verbs": ["create", "patch"]},
        ],
    }));
    let write: ClusterRole = json(serde_json::json!({
        "metadata": {"name": "regcreds-e2e-write"},
        "rules": [
            rule(&["secrets"], &["create", "patch", "update", "delete"]),
            rule(&["serviceaccounts"], &["update", "patch"]),
        ],
    }));
    let roles = Api::<ClusterRole>::all(admin.clone());
    for role in [read, write] {
        let _ = roles.create(&PostParams::default(), &role).await;
    }
    let subject =
        serde_json::json!([{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": user}]);
    let read_binding: ClusterRoleBinding = json(serde_json::json!({
        "metadata": {"name": "regcreds-e2e-read"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "regcreds-e2e-read"},
        "subjects": subject,
    }));
    let _ = Api::<ClusterRoleBinding>::all(admin.clone())
        .create(&PostParams::default(), &read_binding)
        .await;
    // Write access everywhere but the last namespace (RBAC is additive: leave out its RoleBinding).
    let (allowed, forbidden) = names.split_at(names.len() - 1);
    let forbidden = &forbidden[0];
    for ns in allowed {
        let binding: RoleBinding = json(serde_json::json!({
            "metadata": {"name": "regcreds-write", "namespace": ns},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "regcreds-e2e-write"},
            "subjects": subject,
        }));
        let _ = Api::<RoleBinding>::namespaced(admin.clone(), ns)
            .create(&PostParams::default(), &binding)
            .await;
    }

    let kubeconfig = cp.kubeconfig_as(user, &[]).await.expect("kubeconfig");
    let dir = tempfile::tempdir().expect("tempdir");
    let env = provider_env(test);
    let regcreds = Regcreds::spawn(&kubeconfig, &env, dir.path().join("log"));
    wait_converged(&admin, allowed, Duration::from_secs(60)).await;
    // The first write to a namespace is the Secret's create (regcreds has not seen one there).
    let hint = format!("missing permission: create secrets in namespace {forbidden}");
    regcreds.wait_log(&hint, Duration::from_secs(60)).await;
    let logs = regcreds.logs();
    let failure = logs
        .lines()
        .find(|l| l.contains("reconcile failed; will retry") && l.contains(forbidden.as_str()))
        .unwrap_or_else(|| panic!("no failure line for {forbidden}: {logs}"));
    assert!(failure.contains("\"kind\":\"forbidden\""), "{failure}");
    assert!(
        secret(&admin, forbidden, SECRET_NAME).await.is_none(),
        "nothing written where it is forbidden"
    );
    let errors = regcreds.metric("regcreds_reconcile_errors_total", &[]);
    assert!(errors >= 1.0, "reconcile errors counted: {errors}");
    // NB: every error kind's counter is served from 0; this one counted.
    let forbidden_errors = regcreds.metric("regcreds_reconcile_errors_total", &[("error", "forbidden")]);
    assert!(
        forbidden_errors >= 1.0,
        "the error kind is a label: {forbidden_errors}"
    );
    assert!(!logs.contains(PASSWORD));
    drop(regcreds);
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    delete_namespaces(&admin, &refs).await;
}
