//! regcreds with the permissions it ships, not admin: the kustomize base's ServiceAccount and RBAC let it
//! do its whole job and nothing more; upmc registry-creds' narrower rules (no list/watch on Secrets and
//! ServiceAccounts, no Leases, no Events) still propagate, in poll mode, said once in the log.

use std::{
    path::{Path, PathBuf},
    process::Command,
    time::Duration,
};

use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Pod, Secret, ServiceAccount};
use kube::{
    Api, Client,
    api::{ListParams, PostParams},
};
use regcreds_testkit::{
    ControlPlane, Regcreds, TEST_LABEL, ensure_namespace,
    manifests::{kubectl, repo},
    regcreds_command, wait_for,
};

const TIMEOUT: Duration = Duration::from_secs(60);
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// `kubectl apply` of a kustomization or file, as the admin.
fn apply(cp: &ControlPlane, args: &[&str]) {
    let out = Command::new(kubectl())
        .current_dir(repo())
        .arg("--kubeconfig")
        .arg(cp.kubeconfig_path())
        .arg("apply")
        .args(args)
        .output()
        .expect("kubectl runs");
    assert!(
        out.status.success(),
        "kubectl apply {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The identity a pod with ServiceAccount `namespace/name` has.
async fn service_account_kubeconfig(cp: &ControlPlane, namespace: &str, name: &str) -> PathBuf {
    // RBAC matches a ServiceAccount subject by this user name; its groups are not needed here.
    let user = format!("system:serviceaccount:{namespace}:{name}");
    cp.kubeconfig_as(&user, &[]).await.expect("kubeconfig")
}

const STATIC_PROVIDER: &[(&str, &str)] = &[
    ("DOCKER_PRIVATE_REGISTRY_SERVER", "registry.example:5000"),
    ("DOCKER_PRIVATE_REGISTRY_USER", "puller"),
    ("DOCKER_PRIVATE_REGISTRY_PASSWORD", "rbac-test-password"),
];

fn spawn(kubeconfig: &Path, own_namespace: &str, test: &str, log: PathBuf) -> Regcreds {
    spawn_with(kubeconfig, own_namespace, test, log, STATIC_PROVIDER)
}

/// `regcreds run` as the shipped manifests run it (leader election on, plain logs), for the namespaces
/// of `test`.
fn spawn_with(
    kubeconfig: &Path,
    own_namespace: &str,
    test: &str,
    log: PathBuf,
    env: &[(&str, &str)],
) -> Regcreds {
    let mut cmd = regcreds_command(kubeconfig);
    cmd.envs(env.iter().copied())
        .env("REGCREDS_NAMESPACE", own_namespace)
        .env("REGCREDS_POD_NAME", "regcreds-test")
        .env("REGCREDS_NAMESPACE_SELECTOR", format!("{TEST_LABEL}={test}"))
        .env("REGCREDS_RESYNC_SECONDS", "10");
    Regcreds::start(cmd, log)
}

async fn labelled_namespace(client: &Client, name: &str, test: &str) {
    ensure_namespace(client, name, &[(TEST_LABEL, test)]).await;
}

async fn wait_propagated(client: &Client, ns: &str) {
    wait_secret_and_reference(client, ns, "dpr-secret", "default").await;
}

async fn wait_secret_and_reference(client: &Client, ns: &str, secret: &str, account: &str) {
    let secrets = Api::<Secret>::namespaced(client.clone(), ns);
    let accounts = Api::<ServiceAccount>::namespaced(client.clone(), ns);
    wait_for(&format!("{secret} in {ns}"), TIMEOUT, || async {
        secrets.get_opt(secret).await.ok().flatten().map(drop)
    })
    .await;
    wait_for(
        &format!("serviceaccount {ns}/{account} references {secret}"),
        TIMEOUT,
        || async {
            let sa = accounts.get_opt(account).await.ok()??;
            sa.image_pull_secrets?
                .iter()
                .any(|r| r.name == secret)
                .then_some(())
        },
    )
    .await;
}

#[tokio::test]
async fn with_the_shipped_rbac_regcreds_does_its_whole_job_and_is_forbidden_outside_it() {
    let _serial = SERIAL.lock().await;
    let cp = ControlPlane::shared().await;
    let client = cp.client();
    apply(cp, &["-k", "deploy/base"]);
    let kubeconfig = service_account_kubeconfig(cp, "regcreds", "regcreds").await;
    labelled_namespace(&client, "rbac-shipped-0", "rbac-shipped").await;

    let dir = tempfile::tempdir().expect("tempdir");
    let log = dir.path().join("regcreds.log");
    let regcreds = spawn(&kubeconfig, "regcreds", "rbac-shipped", log.clone());
    wait_propagated(&client, "rbac-shipped-0").await;
    let late = "rbac-shipped-late";
    labelled_namespace(&client, late, "rbac-shipped").await;
    wait_propagated(&client, late).await;
    regcreds.stop().await;
    let logs = std::fs::read_to_string(&log).expect("log");
    assert!(
        logs.contains("acquired the lease"),
        "leader election works with the shipped Role: {logs}"
    );
    assert!(
        !logs.contains("missing permission") && !logs.contains("RBAC does not allow"),
        "{logs}"
    );

    // Outside its job the same identity is refused.
    let (as_regcreds, _) = regcreds_testkit::counting_client(&kubeconfig)
        .await
        .expect("client");
    let forbidden = |r: Result<_, kube::Error>| matches!(r, Err(kube::Error::Api(s)) if s.code == 403);
    assert!(forbidden(
        Api::<ConfigMap>::all(as_regcreds.clone())
            .list(&ListParams::default())
            .await
            .map(drop)
    ));
    assert!(forbidden(
        Api::<Pod>::all(as_regcreds.clone())
            .list(&ListParams::default())
            .await
            .map(drop)
    ));
    assert!(forbidden(
        Api::<Namespace>::all(as_regcreds.clone())
            .delete("rbac-shipped-0", &Default::default())
            .await
            .map(drop)
    ));
    let mut ns = Namespace::default();
    ns.metadata.name = Some("rbac-should-not-exist".into());
    assert!(forbidden(
        Api::<Namespace>::all(as_regcreds)
            .create(&PostParams::default(), &ns)
            .await
            .map(drop)
    ));
}

#[tokio::test]
async fn with_upmc_style_rbac_regcreds_still_propagates_without_drift_watches_and_says_so_once() {
    let _serial = SERIAL.lock().await;
    let cp = ControlPlane::shared().await;
    let client = cp.client();
    apply(cp, &["-f", "deploy/examples/upmc-registry-creds/rbac.yaml"]);
    let kubeconfig = service_account_kubeconfig(cp, "kube-system", "registry-creds").await;
    labelled_namespace(&client, "rbac-upmc-0", "rbac-upmc").await;

    let dir = tempfile::tempdir().expect("tempdir");
    let log = dir.path().join("regcreds.log");
    let regcreds = spawn(&kubeconfig, "kube-system", "rbac-upmc", log.clone());
    wait_propagated(&client, "rbac-upmc-0").await;
    let late = "rbac-upmc-late";
    labelled_namespace(&client, late, "rbac-upmc").await;
    wait_propagated(&client, late).await;

    // Drift is still repaired, by the periodic get instead of a watch.
    Api::<Secret>::namespaced(client.clone(), late)
        .delete("dpr-secret", &Default::default())
        .await
        .expect("delete");
    wait_propagated(&client, late).await;
    regcreds.stop().await;
    let logs = std::fs::read_to_string(&log).expect("log");
    assert_eq!(
        logs.matches("running without drift watches").count(),
        1,
        "said once: {logs}"
    );
    assert_eq!(
        logs.matches("running without leader").count(),
        1,
        "said once: {logs}"
    );
    assert!(!logs.contains("rbac-test-password"));
}

#[tokio::test]
async fn with_imagepullsecret_patcher_rbac_regcreds_polls_namespaces_and_patches_every_service_account() {
    let _serial = SERIAL.lock().await;
    let cp = ControlPlane::shared().await;
    let client = cp.client();
    apply(cp, &["-f", "deploy/examples/imagepullsecret-patcher/1_rbac.yaml"]);
    let kubeconfig =
        service_account_kubeconfig(cp, "imagepullsecret-patcher", "imagepullsecret-patcher").await;
    labelled_namespace(&client, "rbac-patcher-0", "rbac-patcher").await;
    let mut builder = ServiceAccount::default();
    builder.metadata.name = Some("builder".into());
    Api::<ServiceAccount>::namespaced(client.clone(), "rbac-patcher-0")
        .create(&PostParams::default(), &builder)
        .await
        .expect("serviceaccount");

    let dir = tempfile::tempdir().expect("tempdir");
    let source = dir.path().join(".dockerconfigjson");
    std::fs::write(
        &source,
        r#"{"auths":{"registry.example":{"username":"u","password":"patcher-pw"}}}"#,
    )
    .expect("source");
    let log = dir.path().join("regcreds.log");
    let source = source.to_str().expect("utf8 path");
    let env = [
        ("CONFIG_DOCKERCONFIGJSONPATH", source),
        ("CONFIG_ALLSERVICEACCOUNT", "true"),
        ("CONFIG_FORCE", "true"),
        // Issue 16: the patcher's loop period becomes the period of the namespace listing.
        ("CONFIG_LOOP_DURATION", "3s"),
    ];
    let regcreds = spawn_with(
        &kubeconfig,
        "imagepullsecret-patcher",
        "rbac-patcher",
        log.clone(),
        &env,
    );
    for account in ["default", "builder"] {
        wait_secret_and_reference(&client, "rbac-patcher-0", "image-pull-secret", account).await;
    }
    let late = "rbac-patcher-late";
    labelled_namespace(&client, late, "rbac-patcher").await;
    wait_secret_and_reference(&client, late, "image-pull-secret", "default").await;
    regcreds.stop().await;
    let logs = std::fs::read_to_string(&log).expect("log");
    assert_eq!(
        logs.matches("does not allow watch on namespaces").count(),
        1,
        "said once: {logs}"
    );
    assert!(
        logs.contains("listing them every 3s instead"),
        "CONFIG_LOOP_DURATION sets the listing period: {logs}"
    );
    assert!(!logs.contains("patcher-pw"));
}
