//! `regcreds run` as a process, the way a Deployment runs it: environment in, Secrets out, probes and
//! metrics on the admin port, rotation of a mounted dockerconfigjson without a restart, clean SIGTERM.

use std::{
    io::{Read, Write},
    net::TcpStream,
    path::Path,
    process::{Child, Command, Stdio},
    time::Duration,
};

use k8s_openapi::api::core::v1::{Namespace, Secret, ServiceAccount};
use kube::{Api, Client, api::PostParams};
use regcreds_testkit::{ControlPlane, free_port, regcreds_binary, wait_for};

const PASSWORD_1: &str = "first-Pa55word-xyz";
const PASSWORD_2: &str = "second-Pa55word-xyz";
const TIMEOUT: Duration = Duration::from_secs(60);
/// One regcreds at a time: an instance withdraws its Secrets from namespaces outside its own selector,
/// which would include another test's namespaces.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Kills a regcreds child when a test ends early (a failed assertion), so none is left running.
struct KillOnDrop(u32);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = Command::new("kill").args(["-KILL", &self.0.to_string()]).status();
    }
}
/// regcreds' own namespace: holds the Lease, and is never written to.
const SYSTEM_NAMESPACE: &str = "regcreds-system";

async fn ensure_namespace(client: &Client, name: &str, labels: &[(&str, &str)]) {
    let mut namespace = Namespace::default();
    namespace.metadata.name = Some(name.into());
    namespace.metadata.labels = Some(
        labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    );
    match Api::<Namespace>::all(client.clone())
        .create(&PostParams::default(), &namespace)
        .await
    {
        Ok(_) => {}
        Err(kube::Error::Api(status)) if status.code == 409 => {}
        Err(error) => panic!("creating namespace {name}: {error}"),
    }
}

fn dockerconfig(password: &str) -> String {
    format!(r#"{{"auths":{{"registry.example:5000":{{"username":"puller","password":"{password}"}}}}}}"#)
}

/// `GET path` on the admin port: (status code, body).
fn http_get(port: u16, path: &str) -> Option<(u16, String)> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream
        .write_all(format!("GET {path} HTTP/1.1\r\nhost: localhost\r\n\r\n").as_bytes())
        .ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    let status = response.split_whitespace().nth(1)?.parse().ok()?;
    Some((
        status,
        response
            .split_once("\r\n\r\n")
            .map(|(_, b)| b.to_string())
            .unwrap_or_default(),
    ))
}

fn spawn_regcreds(kubeconfig: &Path, config_file: &Path, port: u16, selector: &str, log: &Path) -> Child {
    // NB: an instance of its own per test: an instance withdraws its Secrets from namespaces outside its
    // selector, and another test's namespaces (left behind when that test ran first) are outside it.
    let instance = selector.rsplit('=').next().unwrap_or("regcreds");
    spawn_with(
        kubeconfig,
        config_file,
        port,
        selector,
        log,
        &[("REGCREDS_INSTANCE", instance)],
    )
}

fn spawn_with(
    kubeconfig: &Path,
    config_file: &Path,
    port: u16,
    selector: &str,
    log: &Path,
    extra: &[(&str, &str)],
) -> Child {
    Command::new(regcreds_binary())
        .arg("run")
        .env_clear()
        .envs(extra.iter().copied())
        .env("KUBECONFIG", kubeconfig)
        .env("CONFIG_DOCKERCONFIGJSONPATH", config_file)
        .env("REGCREDS_DOCKERCONFIGJSON_SCHEDULE", "*/1 * * * * *")
        .env("REGCREDS_ADMIN_ADDR", format!("127.0.0.1:{port}"))
        .env("REGCREDS_NAMESPACE", SYSTEM_NAMESPACE)
        .env("REGCREDS_NAMESPACE_SELECTOR", selector)
        .env("REGCREDS_LOG_FORMAT", "json")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(log).expect("log file"))
        .spawn()
        .expect("regcreds starts")
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
    ensure_namespace(&client, ns, &[("regcreds-e2e/test", "run-binary")]).await;

    let port = free_port();
    let log = dir.path().join("regcreds.log");
    let mut child = spawn_regcreds(
        cp.kubeconfig_path(),
        &config_file,
        port,
        "regcreds-e2e/test=run-binary",
        &log,
    );
    let _kill_child = KillOnDrop(child.id());

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
        (http_get(port, "/readyz")?.0 == 200).then_some(())
    })
    .await;
    assert_eq!(http_get(port, "/healthz").map(|r| r.0), Some(200));

    // Kubernetes updates a mounted Secret in place; regcreds picks it up without a restart.
    std::fs::write(&config_file, dockerconfig(PASSWORD_2)).expect("rewrite config");
    wait_for("secret with the second password", TIMEOUT, || async {
        (secret_password(&client, ns).await.as_deref() == Some(PASSWORD_2)).then_some(())
    })
    .await;

    // A few more ticks with nothing new: they must not be logged at INFO (checked below).
    wait_for("five mints", TIMEOUT, || async {
        let (_, metrics) = http_get(port, "/metrics")?;
        (mint_count(&metrics)? >= 5.0).then_some(())
    })
    .await;
    let (status, metrics) = http_get(port, "/metrics").expect("metrics");
    assert_eq!(status, 200);
    assert!(
        metrics.contains("regcreds_provider_mints_total{provider=\"dockerconfigjson\"}"),
        "{metrics}"
    );
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
    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill");
    let status = wait_for("regcreds to exit", Duration::from_secs(20), || {
        let exited = child.try_wait().ok().flatten();
        async move { exited }
    })
    .await;
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

/// `regcreds_provider_mints_total` of the dockerconfigjson provider.
fn mint_count(metrics: &str) -> Option<f64> {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix("regcreds_provider_mints_total{provider=\"dockerconfigjson\"} "))
        .and_then(|v| v.trim().parse().ok())
}

fn log_has(path: &Path, needle: &str) -> bool {
    std::fs::read_to_string(path).is_ok_and(|logs| logs.contains(needle))
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
    let selector = "regcreds-e2e/test=ha";
    let ha = [
        ("REGCREDS_LEASE_NAME", "regcreds-ha"),
        ("REGCREDS_LEASE_DURATION_SECONDS", "4"),
    ];
    let (log_a, log_b) = (dir.path().join("a.log"), dir.path().join("b.log"));
    let mut a = spawn_with(
        cp.kubeconfig_path(),
        &config_file,
        free_port(),
        selector,
        &log_a,
        &[&ha[..], &[("REGCREDS_POD_NAME", "replica-a")]].concat(),
    );
    let _kill_a = KillOnDrop(a.id());
    wait_for("replica a leads", TIMEOUT, || async {
        log_has(&log_a, "acquired the lease").then_some(())
    })
    .await;
    let mut b = spawn_with(
        cp.kubeconfig_path(),
        &config_file,
        free_port(),
        selector,
        &log_b,
        &[&ha[..], &[("REGCREDS_POD_NAME", "replica-b")]].concat(),
    );
    let _kill_b = KillOnDrop(b.id());
    wait_for("replica b stands by", TIMEOUT, || async {
        log_has(&log_b, "standing by").then_some(())
    })
    .await;

    let first = "ha-0";
    ensure_namespace(&client, first, &[("regcreds-e2e/test", "ha")]).await;
    wait_for("secret from the leader", TIMEOUT, || async {
        (secret_password(&client, first).await.as_deref() == Some(PASSWORD_1)).then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(log_has(
        &log_a,
        "created secret image-pull-secret in namespace ha-0"
    ));
    assert!(
        !log_has(&log_b, "created secret") && !log_has(&log_b, "acquired the lease"),
        "the standby wrote nothing"
    );

    // The leader dies without releasing the lease (a node failure): the standby takes over.
    a.kill().expect("kill leader");
    let _ = a.wait();
    let killed = std::time::Instant::now();
    wait_for("replica b takes over", TIMEOUT, || async {
        log_has(&log_b, "acquired the lease").then_some(())
    })
    .await;
    let failover = killed.elapsed();
    assert!(
        failover <= Duration::from_secs(4 + 6),
        "failover took {failover:?} with a 4 s lease"
    );
    let second = "ha-1";
    ensure_namespace(&client, second, &[("regcreds-e2e/test", "ha")]).await;
    wait_for("secret from the new leader", TIMEOUT, || async {
        (secret_password(&client, second).await.as_deref() == Some(PASSWORD_1)).then_some(())
    })
    .await;
    println!("failover after leader death: {failover:?}");
    b.kill().expect("kill");
    let _ = b.wait();
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
        ensure_namespace(&client, ns, &[("regcreds-e2e/test", "restart")]).await;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let config_file = dir.path().join(".dockerconfigjson");
    let selector = "regcreds-e2e/test=restart";
    for (round, password) in [PASSWORD_1, PASSWORD_2].into_iter().enumerate() {
        std::fs::write(&config_file, dockerconfig(password)).expect("write config");
        let log = dir.path().join(format!("round-{round}.log"));
        let mut child = spawn_regcreds(cp.kubeconfig_path(), &config_file, free_port(), selector, &log);
        let _kill_child = KillOnDrop(child.id());
        for ns in &names {
            wait_for(
                &format!("{ns} has round {round}'s credential"),
                TIMEOUT,
                || async { (secret_password(&client, ns).await.as_deref() == Some(password)).then_some(()) },
            )
            .await;
        }
        Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .expect("kill");
        let _ = child.wait();
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
        ensure_namespace(&client, ns, &[("regcreds-e2e/test", "rollout")]).await;
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
    let selector = "regcreds-e2e/test=rollout";
    let replica = |pod: &'static str, config: &Path, log: &Path| {
        spawn_with(
            cp.kubeconfig_path(),
            config,
            free_port(),
            selector,
            log,
            &[&lease[..], &[("REGCREDS_POD_NAME", pod)]].concat(),
        )
    };
    let logs: Vec<_> = ["a", "b", "c"]
        .iter()
        .map(|r| dir.path().join(format!("{r}.log")))
        .collect();
    let mut a = replica("regcreds-7d9f8b6c4-x2k5p", &old_config, &logs[0]);
    let _kill_a = KillOnDrop(a.id());
    wait_for("old replica a leads", TIMEOUT, || async {
        log_has(&logs[0], "acquired the lease").then_some(())
    })
    .await;
    let b = replica("regcreds-7d9f8b6c4-w8q4z", &old_config, &logs[1]);
    let _kill_b = KillOnDrop(b.id());
    for ns in &names {
        wait_for(&format!("{ns} has the old credential"), TIMEOUT, || async {
            (secret_password(&client, ns).await.as_deref() == Some(PASSWORD_1)).then_some(())
        })
        .await;
    }
    // The rollout: a pod of the new revision starts (and stands by), then the old leader gets SIGTERM.
    let c = replica("regcreds-5c7b9d6f8-bdfgh", &new_config, &logs[2]);
    let _kill_c = KillOnDrop(c.id());
    for log in [&logs[1], &logs[2]] {
        wait_for("standing by", TIMEOUT, || async {
            log_has(log, "standing by").then_some(())
        })
        .await;
    }
    let sigterm = std::time::Instant::now();
    Command::new("kill")
        .args(["-TERM", &a.id().to_string()])
        .status()
        .expect("kill");
    let status = wait_for("old leader exits", Duration::from_secs(30), || {
        let exited = a.try_wait().ok().flatten();
        async move { exited }
    })
    .await;
    assert!(status.success(), "{status:?}");
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
    assert!(log_has(&logs[0], "released the lease"));
    while !log_has(&logs[2], "acquired the lease") {
        if sigterm.elapsed() > TIMEOUT {
            let all: Vec<String> = logs
                .iter()
                .map(|l| std::fs::read_to_string(l).unwrap_or_default())
                .collect();
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
        !log_has(&logs[1], "acquired the lease"),
        "the old sibling never took over"
    );
    // The rollout goes on: the old standby gets SIGTERM too, and stops cleanly at once.
    let mut b = b;
    Command::new("kill")
        .args(["-TERM", &b.id().to_string()])
        .status()
        .expect("kill");
    let status = wait_for("old standby exits", Duration::from_secs(10), || {
        let exited = b.try_wait().ok().flatten();
        async move { exited }
    })
    .await;
    assert!(status.success(), "standby exit {status:?}");
    let mut c = c;
    let _ = c.kill();
    let _ = c.wait();
    let namespaces = Api::<Namespace>::all(client.clone());
    for ns in &names {
        let _ = namespaces.delete(ns, &Default::default()).await;
    }
}
