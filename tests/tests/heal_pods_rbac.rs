//! Pod healing and RBAC, against the real control plane: with the shipped base RBAC (no rights on pods)
//! `REGCREDS_HEAL_PODS=true` says once that healing is off for lack of permission and regcreds keeps
//! propagating; with the `heal-pods` component's RBAC it turns healing on, watching pods without a
//! single Forbidden. (Healing itself needs pods that really fail to pull: `heal_pods.rs`, on a node.)

use std::{
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::Duration,
};

use k8s_openapi::api::core::v1::{Namespace, Secret, ServiceAccount};
use kube::{Api, Client, api::PostParams};
use regcreds_testkit::{ControlPlane, binaries, free_port, regcreds_binary, wait_for};

const TIMEOUT: Duration = Duration::from_secs(60);
const OFF: &str = "pod healing is off for lack of permission";
const ON: &str = "healing pods that cannot pull";

/// Kills a regcreds child when a test ends early, so none is left running.
struct KillOnDrop(u32);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-KILL", &self.0.to_string()])
            .stderr(Stdio::null())
            .status();
    }
}

fn kubectl() -> PathBuf {
    std::env::var_os("REGCREDS_KUBECTL")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            let venv = binaries::venv_dir().join("bin/kubectl");
            if venv.is_file() {
                venv
            } else {
                PathBuf::from("kubectl")
            }
        })
}

/// `kubectl apply -k <dir>` as the admin.
fn apply_kustomization(cp: &ControlPlane, dir: &str) {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("repo root");
    let out = Command::new(kubectl())
        .current_dir(repo)
        .arg("--kubeconfig")
        .arg(cp.kubeconfig_path())
        .args(["apply", "-k", dir])
        .output()
        .expect("kubectl runs");
    assert!(
        out.status.success(),
        "kubectl apply -k {dir}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// regcreds as the shipped ServiceAccount, with healing turned on.
fn spawn_as_regcreds(kubeconfig: &Path, selector: &str, log: &Path, admin_port: u16) -> Child {
    Command::new(regcreds_binary())
        .arg("run")
        .env_clear()
        .env("KUBECONFIG", kubeconfig)
        .env("REGCREDS_ADMIN_ADDR", format!("127.0.0.1:{admin_port}"))
        .env("REGCREDS_NAMESPACE", "regcreds")
        .env("REGCREDS_POD_NAME", "regcreds-heal-rbac")
        .env("REGCREDS_NAMESPACE_SELECTOR", selector)
        .env("REGCREDS_STATIC_SERVER", "registry.example:5000")
        .env("REGCREDS_STATIC_USER", "puller")
        .env("REGCREDS_STATIC_PASSWORD", "heal-rbac-password")
        .env("REGCREDS_HEAL_PODS", "true")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(log).expect("log"))
        .spawn()
        .expect("regcreds starts")
}

/// The value of an unlabelled metric on the admin endpoint.
async fn metric(port: u16, name: &str) -> Option<f64> {
    let body = reqwest::get(format!("http://127.0.0.1:{port}/metrics"))
        .await
        .ok()?
        .text()
        .await
        .ok()?;
    body.lines()
        .find_map(|line| line.strip_prefix(&format!("{name} ")))
        .and_then(|value| value.trim().parse().ok())
}

async fn labelled_namespace(client: &Client, name: &str, test: &str) {
    let mut ns = Namespace::default();
    ns.metadata.name = Some(name.into());
    ns.metadata.labels = Some([("regcreds-e2e/test".to_string(), test.to_string())].into());
    Api::<Namespace>::all(client.clone())
        .create(&PostParams::default(), &ns)
        .await
        .expect("namespace");
}

async fn wait_propagated(client: &Client, ns: &str) {
    let secrets = Api::<Secret>::namespaced(client.clone(), ns);
    let accounts = Api::<ServiceAccount>::namespaced(client.clone(), ns);
    wait_for(&format!("dpr-secret referenced in {ns}"), TIMEOUT, || async {
        secrets.get_opt("dpr-secret").await.ok()??;
        let sa = accounts.get_opt("default").await.ok()??;
        sa.image_pull_secrets?
            .iter()
            .any(|r| r.name == "dpr-secret")
            .then_some(())
    })
    .await;
}

fn stop(mut child: Child) {
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let _ = child.wait();
}

/// Runs regcreds as `regcreds/regcreds` until it has propagated to a fresh namespace and its healing
/// gauge says `enabled`; returns its log.
async fn run_until_propagated(cp: &ControlPlane, test: &str, enabled: f64) -> String {
    let client = cp.client();
    let user = "system:serviceaccount:regcreds:regcreds";
    let kubeconfig = cp.kubeconfig_as(user, &[]).await.expect("kubeconfig");
    let ns = format!("{test}-0");
    labelled_namespace(&client, &ns, test).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let log = dir.path().join("regcreds.log");
    let port = free_port();
    let child = spawn_as_regcreds(&kubeconfig, &format!("regcreds-e2e/test={test}"), &log, port);
    let _kill = KillOnDrop(child.id());
    wait_propagated(&client, &ns).await;
    wait_for(
        &format!("regcreds_pod_healing_enabled {enabled}"),
        TIMEOUT,
        || async { (metric(port, "regcreds_pod_healing_enabled").await == Some(enabled)).then_some(()) },
    )
    .await;
    // A few more seconds: a Forbidden watch would be retried and logged meanwhile.
    tokio::time::sleep(Duration::from_secs(3)).await;
    stop(child);
    std::fs::read_to_string(&log).expect("log")
}

#[tokio::test]
async fn healing_says_once_that_it_is_off_without_pod_rights_and_runs_with_the_heal_pods_component() {
    let cp = ControlPlane::shared().await;

    apply_kustomization(cp, "deploy/base");
    let logs = run_until_propagated(cp, "heal-rbac-off", 0.0).await;
    assert_eq!(logs.matches(OFF).count(), 1, "said once: {logs}");
    for verb in ["list pods", "watch pods", "delete pods"] {
        assert!(logs.contains(verb), "names the missing {verb}: {logs}");
    }
    assert!(!logs.contains(ON), "{logs}");
    assert!(!logs.contains("heal-rbac-password"));

    apply_kustomization(cp, "deploy/examples/heal-pods");
    let logs = run_until_propagated(cp, "heal-rbac-on", 1.0).await;
    assert_eq!(logs.matches(ON).count(), 1, "{logs}");
    assert!(!logs.contains(OFF), "{logs}");
    assert!(
        !logs.contains("watch failed") && !logs.contains("Forbidden") && !logs.contains("forbidden"),
        "healing's watches work with the component's RBAC: {logs}"
    );
}
