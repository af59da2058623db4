//! `regcreds run` as a process, the way a Deployment runs it: environment in, Secrets out, probes and
//! metrics on the admin port, rotation of a mounted dockerconfigjson without a restart, clean SIGTERM.

use std::{
    path::{Path, PathBuf},
    time::Duration,
};

use k8s_openapi::api::core::v1::{Namespace, Secret, ServiceAccount};
use kube::{Api, Client};
use regcreds_testkit::{
    ControlPlane, Regcreds, TEST_LABEL, ensure_namespace, metric_value, regcreds_command, wait_for,
};

const PASSWORD_1: &str = "first-Pa55word-xyz";
const PASSWORD_2: &str = "second-Pa55word-xyz";
const TIMEOUT: Duration = Duration::from_secs(60);
/// One regcreds at a time: an instance withdraws its Secrets from namespaces outside its own selector,
/// which would include another test's namespaces.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// regcreds' own namespace: holds the Lease, and is never written to.
const SYSTEM_NAMESPACE: &str = "regcreds-system";
/// The dockerconfigjson provider's mint counter.
const MINTS: &str = "regcreds_provider_mints_total{provider=\"dockerconfigjson\"}";

fn dockerconfig(password: &str) -> String {
    format!(r#"{{"auths":{{"registry.example:5000":{{"username":"puller","password":"{password}"}}}}}}"#)
}

fn spawn_regcreds(kubeconfig: &Path, config_file: &Path, selector: &str, log: PathBuf) -> Regcreds {
    // NB: an instance of its own per test: an instance withdraws its Secrets from namespaces outside its
    // selector, and another test's namespaces (left behind when that test ran first) are outside it.
    let instance = selector.rsplit('=').next().unwrap_or("regcreds");
    spawn_with(
        kubeconfig,
        config_file,
        selector,
        log,
        &[("REGCREDS_INSTANCE", instance)],
    )
}

/// `regcreds run` as a Deployment runs it here: the mounted dockerconfigjson re-read every second,
/// leader election on (its Lease in [`SYSTEM_NAMESPACE`]), JSON logs, plus `extra`.
fn spawn_with(
    kubeconfig: &Path,
    config_file: &Path,
    selector: &str,
    log: PathBuf,
    extra: &[(&str, &str)],
) -> Regcreds {
    let mut cmd = regcreds_command(kubeconfig);
    cmd.envs(extra.iter().copied())
        .env("CONFIG_DOCKERCONFIGJSONPATH", config_file)
        .env("REGCREDS_DOCKERCONFIGJSON_SCHEDULE", "*/1 * * * * *")
        .env("REGCREDS_NAMESPACE", SYSTEM_NAMESPACE)
        .env("REGCREDS_NAMESPACE_SELECTOR", selector)
        .env("REGCREDS_LOG_FORMAT", "json");
    Regcreds::start(cmd, log)
}

async fn secret_password(client: &Client, ns: &str) -> Option<String> {
    let secret = Api::<Secret>::namespaced(client.clone(), ns)
        .get_opt("image-pull-secret")
        .await
        .ok()??;
    let bytes = secret.data?.get(".dockerconfigjson")?.0.clone();
    let doc: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    doc["auths"]["registry.example:5000"]["password"]
        .as_str()
        .map(String::from)
}

#[tokio::test]
async fn regcreds_run_propagates_a_mounted_dockerconfigjson_and_rotates_it_without_restart() {
    let _serial = SERIAL.lock().await;
    let cp = ControlPlane::shared().await;
    let client = cp.client();
    let dir = tempfile::tempdir().expect("tempdir");
    let config_file = dir.path().join(".dockerconfigjson");
    std::fs::write(&config_file, dockerconfig(PASSWORD_1)).expect("write config");
    let ns = "run-binary-0";
    ensure_namespace(&client, SYSTEM_NAMESPACE, &[]).await;
    ensure_namespace(&client, ns, &[(TEST_LABEL, "run-binary")]).await;

    let log = dir.path().join("regcreds.log");
    let mut regcreds = spawn_regcreds(
        cp.kubeconfig_path(),
        &config_file,
        &format!("{TEST_LABEL}=run-binary"),
        log.clone(),
    );

    wait_for("secret with the first password", TIMEOUT, || async {
        (secret_password(&client, ns).await.as_deref() == Some(PASSWORD_1)).then_some(())
    })
    .await;
    wait_for("default serviceaccount patched", TIMEOUT, || async {
        let sa = Api::<ServiceAccount>::namespaced(client.clone(), ns)
            .get_opt("default")
            .await
            .ok()??;
        sa.image_pull_secrets?
            .iter()
            .any(|r| r.name == "image-pull-secret")
            .then_some(())
    })
    .await;
    wait_for("/readyz 200", TIMEOUT, || async {
        (regcreds.readyz()? == 200).then_some(())
    })
    .await;
    assert_eq!(regcreds.admin_get("/healthz").map(|r| r.0), Some(200));

    // Kubernetes updates a mounted Secret in place; regcreds picks it up without a restart.
    std::fs::write(&config_file, dockerconfig(PASSWORD_2)).expect("rewrite config");
    wait_for("secret with the second password", TIMEOUT, || async {
        (secret_password(&client, ns).await.as_deref() == Some(PASSWORD_2)).then_some(())
    })
    .await;

    // A few more ticks with nothing new: they must not be logged at INFO (checked below).
    wait_for("five mints", TIMEOUT, || async {
        (metric_value(&regcreds.metrics()?, MINTS)? >= 5.0).then_some(())
    })
    .await;
    let (status, metrics) = regcreds.admin_get("/metrics").expect("metrics");
    assert_eq!(status, 200);
    assert!(metrics.contains(MINTS), "{metrics}");
    for series in [
        "regcreds_provider_last_success_timestamp_seconds{provider=\"dockerconfigjson\"}",
        "regcreds_secrets_written_total{action=\"created\"} 1",
        "regcreds_secrets_written_total{action=\"updated\"} 1",
        "regcreds_serviceaccounts_written_total 1",
        "regcreds_namespaces_in_scope 1",
        "regcreds_provider_consecutive_failures{provider=\"dockerconfigjson\"} 0",
        "regcreds_foreign_secrets_skipped_total 0",
    ] {
        assert!(metrics.contains(series), "missing {series} in:\n{metrics}");
    }

    // SIGTERM: graceful shutdown, exit code 0.
    regcreds.terminate();
    let status = regcreds.wait_exit(Duration::from_secs(20)).await;
    assert!(status.success(), "exit status {status:?}");

    let logs = std::fs::read_to_string(&log).expect("logs");
    assert!(
        logs.contains(&format!("created secret image-pull-secret in namespace {ns}")),
        "{logs}"
    );
    assert!(
        logs.contains(&format!("patched serviceaccount default in namespace {ns}")),
        "{logs}"
    );
    assert!(
        logs.contains(&format!("updated secret image-pull-secret in namespace {ns}")),
        "{logs}"
    );
    assert!(
        logs.lines()
            .all(|l| serde_json::from_str::<serde_json::Value>(l).is_ok()),
        "JSON log lines"
    );
    // Quiet at rest: the schedule fired every second, but only the two real changes are INFO lines.
    let provider_info: Vec<&str> = logs
        .lines()
        .filter(|l| l.contains(r#""level":"INFO""#) && l.contains(r#""provider":"dockerconfigjson""#))
        .collect();
    assert_eq!(
        provider_info.len(),
        2,
        "INFO lines about the provider: one per new credential, none per unchanged tick:\n{}",
        provider_info.join("\n")
    );
    for secret in [PASSWORD_1, PASSWORD_2] {
        assert!(!logs.contains(secret), "password in logs");
        assert!(!metrics.contains(secret), "password in metrics");
    }
    Api::<Namespace>::all(client.clone())
        .delete(ns, &Default::default())
        .await
        .expect("delete namespace");
}

#[tokio::test]
async fn two_replicas_have_exactly_one_writer_and_the_standby_takes_over_when_the_leader_dies() {
    let _serial = SERIAL.lock().await;
    let cp = ControlPlane::shared().await;
    let client = cp.client();
    ensure_namespace(&client, SYSTEM_NAMESPACE, &[]).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let config_file = dir.path().join(".dockerconfigjson");
    std::fs::write(&config_file, dockerconfig(PASSWORD_1)).expect("write config");
    let selector = &format!("{TEST_LABEL}=ha");
    let ha = [
        ("REGCREDS_LEASE_NAME", "regcreds-ha"),
        ("REGCREDS_LEASE_DURATION_SECONDS", "4"),
    ];
    let mut a = spawn_with(
        cp.kubeconfig_path(),
        &config_file,
        selector,
        dir.path().join("a.log"),
        &[&ha[..], &[("REGCREDS_POD_NAME", "replica-a")]].concat(),
    );
    a.wait_log("acquired the lease", TIMEOUT).await;
    let mut b = spawn_with(
        cp.kubeconfig_path(),
        &config_file,
        selector,
        dir.path().join("b.log"),
        &[&ha[..], &[("REGCREDS_POD_NAME", "replica-b")]].concat(),
    );
    b.wait_log("standing by", TIMEOUT).await;

    let first = "ha-0";
    ensure_namespace(&client, first, &[(TEST_LABEL, "ha")]).await;
    wait_for("secret from the leader", TIMEOUT, || async {
        (secret_password(&client, first).await.as_deref() == Some(PASSWORD_1)).then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(a.log_has("created secret image-pull-secret in namespace ha-0"));
    assert!(
        !b.log_has("created secret") && !b.log_has("acquired the lease"),
        "the standby wrote nothing"
    );

    // The leader dies without releasing the lease (a node failure): the standby takes over.
    a.kill();
    let killed = std::time::Instant::now();
    b.wait_log("acquired the lease", TIMEOUT).await;
    let failover = killed.elapsed();
    assert!(
        failover <= Duration::from_secs(4 + 6),
        "failover took {failover:?} with a 4 s lease"
    );
    let second = "ha-1";
    ensure_namespace(&client, second, &[(TEST_LABEL, "ha")]).await;
    wait_for("secret from the new leader", TIMEOUT, || async {
        (secret_password(&client, second).await.as_deref() == Some(PASSWORD_1)).then_some(())
    })
    .await;
    println!("failover after leader death: {failover:?}");
    b.kill();
    let namespaces = Api::<Namespace>::all(client.clone());
    for ns in [first, second] {
        let _ = namespaces.delete(ns, &Default::default()).await;
    }
}

/// `kubectl rollout restart` after the credential changed: the new process converges every namespace.
#[tokio::test]
async fn a_restart_with_a_new_credential_converges_every_namespace() {
    let _serial = SERIAL.lock().await;
    let cp = ControlPlane::shared().await;
    let client = cp.client();
    ensure_namespace(&client, SYSTEM_NAMESPACE, &[]).await;
    let names: Vec<String> = (0..5).map(|i| format!("restart-{i}")).collect();
    for ns in &names {
        ensure_namespace(&client, ns, &[(TEST_LABEL, "restart")]).await;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let config_file = dir.path().join(".dockerconfigjson");
    let selector = &format!("{TEST_LABEL}=restart");
    for (round, password) in [PASSWORD_1, PASSWORD_2].into_iter().enumerate() {
        std::fs::write(&config_file, dockerconfig(password)).expect("write config");
        let log = dir.path().join(format!("round-{round}.log"));
        let regcreds = spawn_regcreds(cp.kubeconfig_path(), &config_file, selector, log);
        for ns in &names {
            wait_for(
                &format!("{ns} has round {round}'s credential"),
                TIMEOUT,
                || async { (secret_password(&client, ns).await.as_deref() == Some(password)).then_some(()) },
            )
            .await;
        }
        regcreds.stop().await;
    }
    let namespaces = Api::<Namespace>::all(client.clone());
    for ns in &names {
        let _ = namespaces.delete(ns, &Default::default()).await;
    }
}

/// Issue 16: `kubectl rollout restart` with two replicas after the credential changed. The old leader
/// releases the Lease on SIGTERM once it has stopped writing, so the new pod takes over in about a second
/// rather than after the lease duration, and the old sibling (same revision) lets it go first instead of
/// writing the stale credential back.
#[tokio::test]
async fn a_rollout_restart_hands_the_lease_to_the_new_pod_at_once_and_converges_to_the_new_credential() {
    let _serial = SERIAL.lock().await;
    let cp = ControlPlane::shared().await;
    let client = cp.client();
    ensure_namespace(&client, SYSTEM_NAMESPACE, &[]).await;
    let names: Vec<String> = (0..3).map(|i| format!("rollout-{i}")).collect();
    for ns in &names {
        ensure_namespace(&client, ns, &[(TEST_LABEL, "rollout")]).await;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    // Each pod sees the credential of its own revision (as with env from a Secret).
    let (old_config, new_config) = (dir.path().join("old.json"), dir.path().join("new.json"));
    std::fs::write(&old_config, dockerconfig(PASSWORD_1)).expect("old");
    std::fs::write(&new_config, dockerconfig(PASSWORD_2)).expect("new");
    // A lease long enough that waiting for it to expire could not pass the bound below.
    let lease = [
        ("REGCREDS_LEASE_NAME", "regcreds-rollout"),
        ("REGCREDS_LEASE_DURATION_SECONDS", "30"),
    ];
    let selector = &format!("{TEST_LABEL}=rollout");
    let replica = |pod: &'static str, config: &Path, log: &str| {
        spawn_with(
            cp.kubeconfig_path(),
            config,
            selector,
            dir.path().join(log),
            &[&lease[..], &[("REGCREDS_POD_NAME", pod)]].concat(),
        )
    };
    let mut a = replica("regcreds-7d9f8b6c4-x2k5p", &old_config, "a.log");
    a.wait_log("acquired the lease", TIMEOUT).await;
    let mut b = replica("regcreds-7d9f8b6c4-w8q4z", &old_config, "b.log");
    for ns in &names {
        wait_for(&format!("{ns} has the old credential"), TIMEOUT, || async {
            (secret_password(&client, ns).await.as_deref() == Some(PASSWORD_1)).then_some(())
        })
        .await;
    }
    // The rollout: a pod of the new revision starts (and stands by), then the old leader gets SIGTERM.
    let c = replica("regcreds-5c7b9d6f8-bdfgh", &new_config, "c.log");
    for standby in [&b, &c] {
        standby.wait_log("standing by", TIMEOUT).await;
    }
    let sigterm = std::time::Instant::now();
    a.terminate();
    let status = a.wait_exit(Duration::from_secs(30)).await;
    assert!(status.success(), "old leader exit {status:?}");
    let exited = sigterm.elapsed();
    // The mechanism: the Lease was handed back before the old process exited.
    let held = Api::<k8s_openapi::api::coordination::v1::Lease>::namespaced(client.clone(), SYSTEM_NAMESPACE)
        .get("regcreds-rollout")
        .await
        .expect("lease");
    let holder = held.spec.and_then(|s| s.holder_identity);
    assert_ne!(
        holder.as_deref(),
        Some("regcreds-7d9f8b6c4-x2k5p"),
        "released before exit"
    );
    assert!(a.log_has("released the lease"));
    while !c.log_has("acquired the lease") {
        if sigterm.elapsed() > TIMEOUT {
            let all: Vec<String> = [&a, &b, &c].iter().map(|r| r.logs()).collect();
            panic!(
                "the new pod did not take over; logs a, b, c:\n{}",
                all.join("\n----\n")
            );
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let handover = sigterm.elapsed();
    for ns in &names {
        wait_for(&format!("{ns} has the new credential"), TIMEOUT, || async {
            (secret_password(&client, ns).await.as_deref() == Some(PASSWORD_2)).then_some(())
        })
        .await;
    }
    let converged = sigterm.elapsed();
    println!(
        "rollout restart: old leader exited after {exited:?}, new pod leads after {handover:?}, \
         {} namespaces on the new credential after {converged:?} (lease duration 30 s)",
        names.len()
    );
    assert!(
        handover < Duration::from_secs(8),
        "hand-over took {handover:?}; waiting for the 30 s lease to expire is what release avoids"
    );
    assert!(
        !b.log_has("acquired the lease"),
        "the old sibling never took over"
    );
    // The rollout goes on: the old standby gets SIGTERM too, and stops cleanly at once.
    b.terminate();
    let status = b.wait_exit(Duration::from_secs(10)).await;
    assert!(status.success(), "standby exit {status:?}");
    drop(c);
    let namespaces = Api::<Namespace>::all(client.clone());
    for ns in &names {
        let _ = namespaces.delete(ns, &Default::default()).await;
    }
}
