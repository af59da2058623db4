//! `regcreds run` as a process, the way a Deployment runs it: environment in, Secrets out, probes and
//! metrics on the admin port, rotation of a mounted dockerconfigjson without a restart, clean SIGTERM.

use std::{
    collections::BTreeMap,
    io::{Read, Write},
    net::TcpStream,
    path::Path,
    process::{Child, Command, Stdio},
    time::Duration,
};

use k8s_openapi::api::core::v1::{Namespace, Secret, ServiceAccount};
use kube::{Api, Client, api::PostParams};
use regcreds_testkit::{ControlPlane, regcreds_binary, wait_for};

const PASSWORD_1: &str = "first-Pa55word-xyz";
const PASSWORD_2: &str = "second-Pa55word-xyz";
const TIMEOUT: Duration = Duration::from_secs(60);

fn dockerconfig(password: &str) -> String {
    format!(r#"{{"auths":{{"registry.example:5000":{{"username":"puller","password":"{password}"}}}}}}"#)
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
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
    Command::new(regcreds_binary())
        .arg("run")
        .env_clear()
        .env("KUBECONFIG", kubeconfig)
        .env("CONFIG_DOCKERCONFIGJSONPATH", config_file)
        .env("REGCREDS_DOCKERCONFIGJSON_SCHEDULE", "*/1 * * * * *")
        .env("REGCREDS_ADMIN_ADDR", format!("127.0.0.1:{port}"))
        .env("REGCREDS_NAMESPACE", "regcreds-system")
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
    let cp = ControlPlane::shared().await;
    let client = cp.client();
    let dir = tempfile::tempdir().expect("tempdir");
    let config_file = dir.path().join(".dockerconfigjson");
    std::fs::write(&config_file, dockerconfig(PASSWORD_1)).expect("write config");
    let ns = "run-binary-0";
    let mut namespace = Namespace::default();
    namespace.metadata.name = Some(ns.into());
    namespace.metadata.labels = Some(BTreeMap::from([(
        "regcreds-e2e/test".to_string(),
        "run-binary".to_string(),
    )]));
    Api::<Namespace>::all(client.clone())
        .create(&PostParams::default(), &namespace)
        .await
        .expect("namespace");

    let port = free_port();
    let log = dir.path().join("regcreds.log");
    let mut child = spawn_regcreds(
        cp.kubeconfig_path(),
        &config_file,
        port,
        "regcreds-e2e/test=run-binary",
        &log,
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

    let (status, metrics) = http_get(port, "/metrics").expect("metrics");
    assert_eq!(status, 200);
    assert!(
        metrics.contains("regcreds_provider_mints_total{provider=\"dockerconfigjson\"}"),
        "{metrics}"
    );
    assert!(
        metrics.contains("regcreds_provider_last_success_timestamp_seconds"),
        "{metrics}"
    );

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
    for secret in [PASSWORD_1, PASSWORD_2] {
        assert!(!logs.contains(secret), "password in logs");
        assert!(!metrics.contains(secret), "password in metrics");
    }
    Api::<Namespace>::all(client.clone())
        .delete(ns, &Default::default())
        .await
        .expect("delete namespace");
}
