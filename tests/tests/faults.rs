//! Issue 10: regcreds under faults and bad input, as a process against real control planes.
//!
//! * the apiserver is killed and restarted in the middle of a fan-out to 500 namespaces;
//! * the apiserver is unreachable when regcreds starts;
//! * the apiserver throttles regcreds with 429s (API Priority and Fairness, one seat, Reject);
//! * one namespace is Forbidden by RBAC;
//! * ≥ 25 bad configurations: each exits 2 with its own message before writing anything;
//! * `regcreds mint` against unreachable provider endpoints names the endpoint.
//!
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
    api::{DeleteParams, ListParams, PostParams},
};
use regcreds_propagator::{MANAGED_BY_LABEL, MANAGED_BY_VALUE};
use regcreds_testkit::{
    ControlPlane, Regcreds, TEST_LABEL, admin_get, delete_namespaces, ensure_namespace, free_port,
    metric_sum, pull_secret_refs, regcreds_clean_command, regcreds_command, secret, secret_data, wait_for,
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

async fn managed_secret_count(client: &Client) -> usize {
    let selector = format!("{MANAGED_BY_LABEL}={MANAGED_BY_VALUE}");
    Api::<Secret>::all(client.clone())
        .list_metadata(&ListParams::default().labels(&selector))
        .await
        .map_or(0, |list| list.items.len())
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

const SECRET: &str = "Bad-Input-Secret-9f3k";

/// Runs `regcreds run` with `env` against the admin kubeconfig; returns (exit code, stderr).
fn run_with(kubeconfig: &std::path::Path, env: &[(&str, &str)]) -> (Option<i32>, String) {
    let out = regcreds_command(kubeconfig)
        .arg("run")
        .env("REGCREDS_ADMIN_ADDR", format!("127.0.0.1:{}", free_port()))
        .env("REGCREDS_LEADER_ELECTION", "false")
        .envs(env.iter().copied())
        .output()
        .expect("regcreds runs");
    let text = String::from_utf8_lossy(&out.stderr).into_owned() + &String::from_utf8_lossy(&out.stdout);
    (out.status.code(), text)
}

/// Complements `crates/regcreds/tests/cli_config.rs` (which covers `mint`/`config check` on the static,
/// dockerconfigjson and dockerhub basics): here `regcreds run` itself, against a live cluster, for the
/// propagation settings, ecr, gcr, acr, Secret names, registry keys and oversized input.
#[tokio::test]
async fn every_bad_configuration_of_regcreds_run_exits_2_with_its_own_message_and_writes_nothing() {
    let _serial = SERIAL.lock().await;
    let cp = ControlPlane::shared().await;
    let client = cp.client();
    let dir = tempfile::tempdir().expect("tempdir");
    let big = dir.path().join("big.json");
    let huge_password = "x".repeat(1_100_000);
    std::fs::write(
        &big,
        format!(r#"{{"auths":{{"r.example":{{"username":"u","password":"{huge_password}"}}}}}}"#),
    )
    .expect("write");
    let big = big.to_str().expect("utf8");
    let key_file = dir.path().join("missing-key.json");
    let key_file = key_file.to_str().expect("utf8");
    let static_ok = [
        ("REGCREDS_STATIC_SERVER", "r.example"),
        ("REGCREDS_STATIC_USER", "u"),
        ("REGCREDS_STATIC_PASSWORD", SECRET),
    ];
    let ecr = [
        ("REGCREDS_ECR_REGIONS", "us-east-1"),
        ("AWS_ACCESS_KEY_ID", "AKIDTEST"),
        ("AWS_SECRET_ACCESS_KEY", SECRET),
    ];
    let with = |base: &[(&'static str, &'static str)], extra: &[(&'static str, &'static str)]| {
        [base, extra].concat()
    };
    let eleven_accounts = "111111111111,111111111112,111111111113,111111111114,111111111115,\
                           111111111116,111111111117,111111111118,111111111119,111111111110,111111111121";
    let gcr_no_key = r#"{"type":"service_account","client_email":"a@p.iam.gserviceaccount.com"}"#;
    let gcr_not_pem = format!(
        r#"{{"type":"service_account","client_email":"a@p.iam.gserviceaccount.com","private_key":"{SECRET}"}}"#
    );
    let gcr_not_json = format!("not json {SECRET}");
    let empty_registry = format!(r#"{{"auths":{{"":{{"username":"u","password":"{SECRET}"}}}}}}"#);
    let spaced_registry =
        format!(r#"{{"auths":{{"r.example/a b":{{"username":"u","password":"{SECRET}"}}}}}}"#);

    let cases: Vec<(Vec<(&str, &str)>, &str)> = vec![
        (vec![], "providers: no provider is configured"),
        (
            with(&static_ok, &[("REGCREDS_NAMESPACE_SELECTOR", "env in (dev")]),
            "REGCREDS_NAMESPACE_SELECTOR (--namespace-selector): invalid label selector term \"env in (dev\"",
        ),
        (
            with(&static_ok, &[("REGCREDS_SERVICE_ACCOUNTS", "default,Builder")]),
            "REGCREDS_SERVICE_ACCOUNTS (--service-accounts): \"Builder\" is not a valid ServiceAccount name",
        ),
        (
            with(&static_ok, &[("CONFIG_FORCE", "maybe")]),
            "CONFIG_FORCE (--config-force): \"maybe\" is not a boolean",
        ),
        (
            with(&static_ok, &[("CONFIG_ALLSERVICEACCOUNT", "yes")]),
            "CONFIG_ALLSERVICEACCOUNT (--allserviceaccount): \"yes\" is not a boolean",
        ),
        (
            with(&static_ok, &[("REGCREDS_CONCURRENCY", "0")]),
            "REGCREDS_CONCURRENCY (--concurrency): must be at least 1",
        ),
        (
            with(&static_ok, &[("REGCREDS_EXCLUDE_NAMESPACES", "kube-[system")]),
            "REGCREDS_EXCLUDE_NAMESPACES (--exclude-namespaces): invalid glob pattern",
        ),
        (
            with(&static_ok, &[("REGCREDS_LEADER_ELECTION", "true")]),
            "REGCREDS_NAMESPACE (--namespace): is required for leader election outside a cluster",
        ),
        (
            with(
                &static_ok,
                &[
                    ("REGCREDS_LEADER_ELECTION", "true"),
                    ("REGCREDS_NAMESPACE", "regcreds-system"),
                    ("REGCREDS_LEASE_DURATION_SECONDS", "1"),
                ],
            ),
            "REGCREDS_LEASE_DURATION_SECONDS (--lease-duration-seconds): must be at least 2",
        ),
        (
            with(&static_ok, &[("REGCREDS_ADMIN_ADDR", "localhost")]),
            "invalid value 'localhost' for '--admin-addr <ADMIN_ADDR>'",
        ),
        (
            with(&static_ok, &[("REGCREDS_WATCH_MODE", "sometimes")]),
            "invalid value 'sometimes' for '--watch-mode <WATCH_MODE>'",
        ),
        (
            with(&static_ok, &[("REGCREDS_RESYNC_SECONDS", "-1")]),
            "invalid value '-1' for '--resync-seconds <RESYNC_SECONDS>'",
        ),
        (
            with(&static_ok, &[("REGCREDS_STATIC_SECRET_NAME", "Pull_Secret")]),
            "REGCREDS_STATIC_SECRET_NAME: \"Pull_Secret\" is not a valid Secret name",
        ),
        (
            with(&static_ok, &[("REGCREDS_STATIC_SCHEDULE", "0 0 * * * * * *")]),
            "REGCREDS_STATIC_SCHEDULE (--static-schedule): invalid cron expression \"0 0 * * * * * *\"",
        ),
        (
            vec![("REGCREDS_DOCKERCONFIGJSON_PATH", big)],
            "REGCREDS_DOCKERCONFIGJSON_PATH (--dockerconfigjson-path): ",
        ),
        (
            vec![("REGCREDS_DOCKERCONFIGJSON", &empty_registry)],
            "REGCREDS_DOCKERCONFIGJSON (--dockerconfigjson): dockerconfigjson auths key: registry is empty",
        ),
        (
            vec![("REGCREDS_DOCKERCONFIGJSON", &spaced_registry)],
            "dockerconfigjson auths key: registry \"r.example/a b\" contains whitespace or control characters",
        ),
        (
            vec![("CONFIG_DOCKERCONFIGJSON", r#"{"auths":{}}"#)],
            "CONFIG_DOCKERCONFIGJSON (--config-dockerconfigjson): dockerconfigjson \"auths\" is empty",
        ),
        (
            vec![("REGCREDS_ECR_REGIONS", "eu west 1")],
            "REGCREDS_ECR_REGIONS (--ecr-regions): region \"eu west 1\" is not an AWS region name",
        ),
        (
            with(&ecr, &[("REGCREDS_ECR_ACCOUNTS", "12345")]),
            "REGCREDS_ECR_ACCOUNTS (--ecr-accounts): registry ID \"12345\" is not a 12-digit AWS account ID",
        ),
        (
            with(&ecr, &[("REGCREDS_ECR_ACCOUNTS", eleven_accounts)]),
            "REGCREDS_ECR_ACCOUNTS (--ecr-accounts): 11 registry IDs given; GetAuthorizationToken accepts at most 10",
        ),
        (
            with(&ecr, &[("REGCREDS_ECR_ASSUME_ROLE", "ecr-reader")]),
            "REGCREDS_ECR_ASSUME_ROLE (--ecr-assume-role): role \"ecr-reader\" is not an IAM role ARN",
        ),
        (
            with(&ecr, &[("REGCREDS_ECR_ENDPOINT_URL", "localhost:5000")]),
            "REGCREDS_ECR_ENDPOINT_URL (--ecr-endpoint-url): endpoint_url \"localhost:5000\" is not an http:// or https:// URL",
        ),
        (
            with(&ecr, &[("REGCREDS_ECR_TIMEOUT_SECONDS", "0")]),
            "REGCREDS_ECR_TIMEOUT_SECONDS (--ecr-timeout-seconds): must be at least 1",
        ),
        (
            vec![("REGCREDS_GCR_KEY", gcr_no_key)],
            "REGCREDS_GCR_KEY (--gcr-key): service-account key (inline): \"private_key\" is missing or empty",
        ),
        (
            vec![("REGCREDS_GCR_KEY", &gcr_not_pem)],
            "REGCREDS_GCR_KEY (--gcr-key): service-account key (inline): \"private_key\" is not a PEM PKCS#8 RSA private key",
        ),
        (
            vec![("REGCREDS_GCR_KEY", &gcr_not_json)],
            "REGCREDS_GCR_KEY (--gcr-key): service-account key (inline): is not valid JSON",
        ),
        (
            vec![("REGCREDS_GCR_KEY_FILE", key_file)],
            "REGCREDS_GCR_KEY_FILE (--gcr-key-file): service-account key: cannot read",
        ),
        (
            vec![
                ("REGCREDS_GCR_USE_METADATA", "true"),
                ("REGCREDS_GCR_HOSTS", "ftp://gcr.io"),
            ],
            "REGCREDS_GCR_HOSTS (--gcr-hosts): registry: registry \"ftp://gcr.io\" has an unsupported scheme",
        ),
        (
            vec![
                ("REGCREDS_ACR_REGISTRY", "myreg.azurecr.io"),
                ("REGCREDS_ACR_AUTH", "client-secret"),
            ],
            "REGCREDS_ACR_TENANT_ID (--acr-tenant-id): is required with REGCREDS_ACR_AUTH=client-secret",
        ),
        (
            vec![("REGCREDS_ACR_REGISTRY", "http://my reg")],
            "REGCREDS_ACR_REGISTRY (--acr-registry): registry \"http://my reg\": only https:// may precede the login server",
        ),
        (
            vec![
                ("REGCREDS_ACR_REGISTRY", "myreg.azurecr.io"),
                ("REGCREDS_ACR_AUTH", "password"),
            ],
            "invalid value 'password' for '--acr-auth <ACR_AUTH>'",
        ),
    ];
    assert!(cases.len() >= 25, "{} cases", cases.len());

    let writes = ["POST", "PUT", "PATCH", "APPLY", "DELETE"];
    let secrets_before = managed_secret_count(&client).await;
    let secret_writes = cp.request_count(&writes, Some("secrets")).await.expect("count");
    let account_writes = cp
        .request_count(&writes, Some("serviceaccounts"))
        .await
        .expect("count");
    let mut messages = std::collections::BTreeSet::new();
    for (env, expected) in &cases {
        let (code, output) = run_with(cp.kubeconfig_path(), env);
        assert_eq!(code, Some(2), "{env:?} should exit 2; output: {output}");
        assert!(
            output.contains(expected),
            "{env:?}: expected {expected:?} in:\n{output}"
        );
        assert!(!output.contains(SECRET), "secret echoed for {env:?}: {output}");
        assert!(!output.contains(&huge_password[..64]), "oversized value echoed");
        assert!(
            !output.contains("connected to the Kubernetes API server"),
            "{env:?}: validation comes before any request: {output}"
        );
        assert!(
            messages.insert(expected.to_string()),
            "each case has its own message"
        );
    }
    assert_eq!(
        managed_secret_count(&client).await,
        secrets_before,
        "no Secret written"
    );
    assert_eq!(
        cp.request_count(&writes, Some("secrets")).await.expect("count"),
        secret_writes,
        "no write request on secrets reached the apiserver"
    );
    assert_eq!(
        cp.request_count(&writes, Some("serviceaccounts"))
            .await
            .expect("count"),
        account_writes,
        "no write request on serviceaccounts reached the apiserver"
    );
}

#[test]
fn mint_against_unreachable_provider_endpoints_fails_naming_the_endpoint_and_no_secret() {
    let closed = free_port();
    let url = format!("http://127.0.0.1:{closed}");
    let https = format!("https://127.0.0.1:{closed}");
    let cases: Vec<(Vec<(&str, &str)>, String)> = vec![
        (
            vec![
                ("REGCREDS_ECR_REGIONS", "us-east-1"),
                ("REGCREDS_ECR_ENDPOINT_URL", &url),
                ("REGCREDS_ECR_TIMEOUT_SECONDS", "5"),
                ("AWS_ACCESS_KEY_ID", "AKIDTEST"),
                ("AWS_SECRET_ACCESS_KEY", SECRET),
                ("AWS_EC2_METADATA_DISABLED", "true"),
            ],
            format!(
                "provider ecr: region us-east-1 (endpoint {url}): request could not be sent (Connection refused"
            ),
        ),
        (
            vec![
                ("REGCREDS_GCR_USE_METADATA", "true"),
                ("REGCREDS_GCR_METADATA_URL", &url),
            ],
            format!(
                "provider gcr: metadata server {url}/computeMetadata/v1/instance/service-accounts/default/token: request failed (Connection refused"
            ),
        ),
        (
            vec![
                ("REGCREDS_ACR_REGISTRY", "myreg.azurecr.io"),
                ("REGCREDS_ACR_AUTH", "client-secret"),
                ("REGCREDS_ACR_TENANT_ID", "00000000-0000-0000-0000-000000000000"),
                ("REGCREDS_ACR_CLIENT_ID", "11111111-1111-1111-1111-111111111111"),
                ("REGCREDS_ACR_CLIENT_SECRET", SECRET),
                ("REGCREDS_ACR_AUTHORITY_HOST", &https),
                ("REGCREDS_ACR_TIMEOUT_SECONDS", "5"),
            ],
            "provider acr: Entra token (client-secret): network error (Connection refused".to_string(),
        ),
    ];
    for (env, expected) in cases {
        let out = regcreds_clean_command()
            .arg("mint")
            .envs(env.iter().copied())
            .output()
            .expect("regcreds runs");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{env:?}: {stderr}");
        assert!(stderr.contains(&expected), "expected {expected:?} in:\n{stderr}");
        assert!(out.stdout.is_empty(), "no dockerconfigjson printed");
        assert!(!stderr.contains(SECRET));
    }
}
