//! The whole promise, end to end: a credential regcreds mints and propagates really pulls a private
//! image from a real registry, and `regcreds check` (and the controller's own periodic check) tells a
//! working credential from a refused or unreachable one.
//!
//! ```text
//!  TestRegistry (distribution, htpasswd, TLS, demo/hello:v1)
//!     ▲ skopeo inspect --authfile <.dockerconfigjson read back from the API server>
//!     │
//!  regcreds run (static | ecr ◀── moto_ecr.py | ghcr, quay ◀── fake_github_quay.py) ──▶ kube-apiserver ──▶ Secret + default SA in a fresh namespace
//!     └── /metrics: regcreds_registry_check{provider,registry,outcome}
//!  regcreds check ──▶ ok / unauthorized / unreachable, exit 0 / 1
//! ```

use regcreds_fakes::github_quay as fake;
use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    process::Output,
    time::Duration,
};

use fake::{FakeGithubQuay, SA_JWT, generate_app_key};
use k8s_openapi::api::core::v1::{Namespace, Secret, ServiceAccount};
use kube::{Api, Client, api::PostParams};
use rand::distr::{Alphanumeric, SampleString};
use regcreds_testkit::{
    ControlPlane, Regcreds, free_port,
    moto::{self, Moto},
    regcreds_clean_command,
    registry::{RegistryOptions, TestRegistry},
    wait_for,
};

const USER: &str = "puller";
const PASSWORD: &str = "right-Pa55word-e2e";
const WRONG_PASSWORD: &str = "wrong-Pa55word-e2e";
const ROTATED_PASSWORD: &str = "rotated-Pa55word-e2e";
const ECR_PASSWORD: &str = "ecr-token-Pa55word-e2e";
/// The static provider's default Secret name (upmc's `dpr-secret`).
const STATIC_SECRET: &str = "dpr-secret";
/// The ECR provider's default Secret name.
const ECR_SECRET: &str = "awsecr-cred";
const TIMEOUT: Duration = Duration::from_secs(60);
/// One regcreds at a time on this binary's control plane: an instance withdraws its Secrets from
/// namespaces outside its selector.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

// === helpers ===

async fn private_registry(users: &[(&str, &str)]) -> TestRegistry {
    TestRegistry::start(RegistryOptions {
        tls: true,
        users,
        token_auth: false,
    })
    .await
}

/// A namespace name nobody uses yet; regcreds is scoped to exactly it through the label the
/// apiserver puts on every namespace.
fn fresh_namespace_name(prefix: &str) -> String {
    let suffix = Alphanumeric.sample_string(&mut rand::rng(), 6).to_lowercase();
    format!("{prefix}-{suffix}")
}

fn scope_to(namespace: &str) -> String {
    format!("kubernetes.io/metadata.name={namespace}")
}

async fn create_namespace(client: &Client, name: &str) {
    let mut namespace = Namespace::default();
    namespace.metadata.name = Some(name.into());
    Api::<Namespace>::all(client.clone())
        .create(&PostParams::default(), &namespace)
        .await
        .unwrap_or_else(|e| panic!("creating namespace {name}: {e}"));
}

async fn delete_namespace(client: &Client, name: &str) {
    let _ = Api::<Namespace>::all(client.clone())
        .delete(name, &Default::default())
        .await;
}

/// A file holding the registry's CA, for `REGCREDS_CHECK_CA_FILE`.
fn ca_file(registry: &TestRegistry) -> PathBuf {
    registry.cert_dir().join("ca.crt")
}

/// `regcreds <args>` with exactly `env` (plus PATH) and its output.
fn regcreds(args: &[&str], env: &[(&str, String)]) -> Output {
    regcreds_clean_command()
        .args(args)
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .envs(env.iter().cloned())
        .output()
        .expect("regcreds runs")
}

/// `regcreds run` against the shared control plane, scoped to `namespace`, with `env` (leader election
/// off, JSON logs to `log`).
fn spawn_run(cp: &ControlPlane, namespace: &str, env: &[(&str, String)], log: PathBuf) -> Regcreds {
    let mut env = env.to_vec();
    env.push(("REGCREDS_NAMESPACE_SELECTOR", scope_to(namespace)));
    Regcreds::spawn(cp.kubeconfig_path(), &env, log)
}

/// SIGTERM and wait: regcreds must shut down cleanly.
async fn stop(regcreds: Regcreds) {
    let status = regcreds.stop().await;
    assert!(status.success(), "exit status {status:?}");
}

/// The `.dockerconfigjson` of Secret `name`, once it exists.
async fn wait_for_dockerconfig(client: &Client, namespace: &str, name: &str) -> Vec<u8> {
    let secrets = Api::<Secret>::namespaced(client.clone(), namespace);
    wait_for(&format!("Secret {namespace}/{name}"), TIMEOUT, || async {
        let secret = secrets.get_opt(name).await.ok()??;
        assert_eq!(secret.type_.as_deref(), Some("kubernetes.io/dockerconfigjson"));
        Some(secret.data?.get(".dockerconfigjson")?.0.clone())
    })
    .await
}

async fn wait_for_pull_secret_on_default_sa(client: &Client, namespace: &str, name: &str) {
    let accounts = Api::<ServiceAccount>::namespaced(client.clone(), namespace);
    wait_for("default ServiceAccount patched", TIMEOUT, || async {
        let sa = accounts.get_opt("default").await.ok()??;
        sa.image_pull_secrets?
            .iter()
            .any(|r| r.name == name)
            .then_some(())
    })
    .await;
}

/// The same dockerconfigjson with every entry's password (and `auth`) replaced.
fn with_password(dockerconfig: &[u8], password: &str) -> Vec<u8> {
    let mut doc: serde_json::Value = serde_json::from_slice(dockerconfig).expect("dockerconfigjson");
    let auths = doc["auths"].as_object_mut().expect("auths");
    for entry in auths.values_mut() {
        let user = entry["username"].as_str().expect("username").to_string();
        entry["password"] = password.into();
        entry["auth"] = base64_encode(&format!("{user}:{password}")).into();
    }
    serde_json::to_vec(&doc).expect("json")
}

fn base64_encode(text: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(text)
}

fn write_authfile(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, bytes).expect("write authfile");
    path
}

async fn wait_for_metric(regcreds: &Regcreds, line: &str) {
    wait_for(&format!("metric {line}"), TIMEOUT, || async {
        regcreds.metrics()?.lines().any(|l| l == line).then_some(())
    })
    .await;
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn assert_no_secret(text: &str, secrets: &[&str]) {
    for secret in secrets {
        assert!(!text.contains(secret), "a password leaked:\n{text}");
    }
}

// === static provider: propagate, pull, keep checking ===

#[tokio::test]
async fn a_propagated_static_credential_pulls_the_private_image_and_the_controller_notices_a_rotation() {
    let _serial = SERIAL.lock().await;
    let cp = ControlPlane::shared().await;
    let client = cp.client();
    let mut registry = private_registry(&[(USER, PASSWORD)]).await;
    let work = tempfile::tempdir().expect("tempdir");
    let namespace = fresh_namespace_name("registry-e2e");
    let log = work.path().join("regcreds.log");
    let env = [
        ("REGCREDS_STATIC_SERVER", registry.host().to_string()),
        ("REGCREDS_STATIC_USER", USER.to_string()),
        ("REGCREDS_STATIC_PASSWORD", PASSWORD.to_string()),
        ("REGCREDS_CHECK_CA_FILE", ca_file(&registry).display().to_string()),
        ("REGCREDS_CHECK_IMAGES", registry.image_name()),
        ("REGCREDS_CHECK_INTERVAL_SECONDS", "1".to_string()),
    ];
    let regcreds = spawn_run(cp, &namespace, &env, log.clone());
    create_namespace(&client, &namespace).await;

    let dockerconfig = wait_for_dockerconfig(&client, &namespace, STATIC_SECRET).await;
    wait_for_pull_secret_on_default_sa(&client, &namespace, STATIC_SECRET).await;
    let authfile = write_authfile(work.path(), "propagated.json", &dockerconfig);
    assert_eq!(
        registry.skopeo_inspect(&authfile).as_deref(),
        Ok(registry.image_digest()),
        "skopeo with the propagated Secret"
    );
    let wrong = write_authfile(
        work.path(),
        "wrong.json",
        &with_password(&dockerconfig, WRONG_PASSWORD),
    );
    let refused = registry
        .skopeo_inspect(&wrong)
        .expect_err("a wrong password must not pull");
    assert!(refused.contains("unauthorized"), "{refused}");

    // The controller checked what it propagated ...
    let host = registry.host().to_string();
    let series = |outcome: &str| {
        format!(r#"regcreds_registry_check{{provider="static",registry="{host}",outcome="{outcome}"}}"#)
    };
    wait_for_metric(&regcreds, &format!("{} 1", series("ok"))).await;
    // ... and keeps checking: a password changed at the registry shows up within the interval.
    registry.set_user(USER, ROTATED_PASSWORD).await;
    wait_for_metric(&regcreds, &format!("{} 1", series("unauthorized"))).await;
    wait_for_metric(&regcreds, &format!("{} 0", series("ok"))).await;
    let exposition = regcreds.metrics().expect("metrics");
    assert!(
        exposition.contains("regcreds_registry_check_timestamp_seconds{"),
        "{exposition}"
    );

    stop(regcreds).await;
    let logs = std::fs::read_to_string(&log).expect("logs");
    // The first check was the gate's, before the Secret was written; the rotation, a re-check's.
    assert!(
        logs.contains("registry lets the new credential pull the probe image"),
        "{logs}"
    );
    assert!(logs.contains("registry check failed"), "{logs}");
    assert_no_secret(&logs, &[PASSWORD, ROTATED_PASSWORD]);
    assert_no_secret(&exposition, &[PASSWORD, ROTATED_PASSWORD]);
    delete_namespace(&client, &namespace).await;
}

// === regcreds check ===

fn static_check_env(registry: &TestRegistry, server: &str, password: &str) -> Vec<(&'static str, String)> {
    vec![
        ("REGCREDS_STATIC_SERVER", server.to_string()),
        ("REGCREDS_STATIC_USER", USER.to_string()),
        ("REGCREDS_STATIC_PASSWORD", password.to_string()),
        ("REGCREDS_CHECK_CA_FILE", ca_file(registry).display().to_string()),
        ("REGCREDS_CHECK_TIMEOUT_SECONDS", "5".to_string()),
    ]
}

#[tokio::test]
async fn regcreds_check_tells_ok_from_unauthorized_from_unreachable() {
    let registry = private_registry(&[(USER, PASSWORD)]).await;
    let host = registry.host();
    let mut ok_env = static_check_env(&registry, host, PASSWORD);
    ok_env.push(("REGCREDS_CHECK_IMAGES", registry.image_name()));

    let ok = regcreds(&["check"], &ok_env);
    let text = stdout(&ok);
    assert_eq!(
        ok.status.code(),
        Some(0),
        "{text}{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    assert!(
        text.starts_with(&format!(
            "ok            static            {host}  via Basic auth, may pull demo/hello:v1"
        )),
        "{text}"
    );

    let refused = regcreds(&["check"], &static_check_env(&registry, host, WRONG_PASSWORD));
    let text = stdout(&refused);
    assert_eq!(refused.status.code(), Some(1), "{text}");
    assert!(
        text.starts_with(&format!("unauthorized  static            {host}  ")),
        "{text}"
    );
    assert!(text.contains("401"), "{text}");
    assert_no_secret(&text, &[WRONG_PASSWORD]);
    assert_no_secret(&String::from_utf8_lossy(&refused.stderr), &[WRONG_PASSWORD]);

    let closed = format!("127.0.0.1:{}", free_port());
    let unreachable = regcreds(&["check"], &static_check_env(&registry, &closed, PASSWORD));
    let text = stdout(&unreachable);
    assert_eq!(unreachable.status.code(), Some(1), "{text}");
    assert!(
        text.starts_with(&format!("unreachable   static            {closed}  ")),
        "{text}"
    );

    let mut bad = static_check_env(&registry, host, PASSWORD);
    bad.push(("REGCREDS_CHECK_IMAGES", "demo/hello:v1".to_string()));
    let invalid = regcreds(&["check"], &bad);
    assert_eq!(
        invalid.status.code(),
        Some(2),
        "a probe without a registry is a config problem"
    );
    assert!(String::from_utf8_lossy(&invalid.stderr).contains("REGCREDS_CHECK_IMAGES"));
}

// === ECR: moto mints, the registry accepts the token ===

/// The ecr provider against `moto`, its proxy endpoint checked with `registry`'s CA.
fn ecr_env(moto: &Moto, registry: &TestRegistry) -> Vec<(&'static str, String)> {
    let mut env = moto::ecr_env(&moto.url());
    env.extend([
        ("AWS_REGION", "us-east-1".to_string()),
        ("REGCREDS_CHECK_CA_FILE", ca_file(registry).display().to_string()),
    ]);
    env
}

#[tokio::test]
async fn an_ecr_token_minted_by_moto_is_propagated_and_pulls_from_the_registry() {
    let _serial = SERIAL.lock().await;
    let registry = private_registry(&[("AWS", ECR_PASSWORD)]).await;
    let proxy = format!("https://{}", registry.host());
    let work = tempfile::tempdir().expect("tempdir");
    let moto = Moto::start(
        0,
        &[("ECR_PROXY_ENDPOINT", &proxy), ("ECR_PASSWORD", ECR_PASSWORD)],
    );

    // `mint --show-secrets` prints a dockerconfigjson skopeo can use as it is.
    let mint = regcreds(
        &["mint", "--provider", "ecr", "--show-secrets"],
        &ecr_env(&moto, &registry),
    );
    assert!(mint.status.success(), "{}", String::from_utf8_lossy(&mint.stderr));
    let minted = write_authfile(work.path(), "minted.json", &mint.stdout);
    assert_eq!(
        registry.skopeo_inspect(&minted).as_deref(),
        Ok(registry.image_digest())
    );

    let mut check_env = ecr_env(&moto, &registry);
    check_env.push(("REGCREDS_CHECK_IMAGES", registry.image_name()));
    let check = regcreds(&["check", "--provider", "ecr"], &check_env);
    let text = stdout(&check);
    assert_eq!(
        check.status.code(),
        Some(0),
        "{text}{}",
        String::from_utf8_lossy(&check.stderr)
    );
    assert!(
        text.starts_with(&format!(
            "ok            ecr               {proxy}  via Basic auth, may pull demo/hello:v1"
        )),
        "{text}"
    );

    // And through the controller: the Secret in a fresh namespace pulls.
    let cp = ControlPlane::shared().await;
    let client = cp.client();
    let namespace = fresh_namespace_name("registry-ecr");
    let log = work.path().join("regcreds.log");
    let regcreds = spawn_run(cp, &namespace, &ecr_env(&moto, &registry), log.clone());
    create_namespace(&client, &namespace).await;
    let dockerconfig = wait_for_dockerconfig(&client, &namespace, ECR_SECRET).await;
    let keys: BTreeMap<String, serde_json::Value> = serde_json::from_value(
        serde_json::from_slice::<serde_json::Value>(&dockerconfig).expect("json")["auths"].clone(),
    )
    .expect("auths");
    assert_eq!(
        keys.keys().collect::<Vec<_>>(),
        vec![&proxy],
        "keyed by the proxyEndpoint"
    );
    let authfile = write_authfile(work.path(), "propagated.json", &dockerconfig);
    assert_eq!(
        registry.skopeo_inspect(&authfile).as_deref(),
        Ok(registry.image_digest())
    );
    stop(regcreds).await;
    assert_no_secret(&std::fs::read_to_string(&log).expect("logs"), &[ECR_PASSWORD]);
    delete_namespace(&client, &namespace).await;
}

// === ghcr and quay: the fake issues tokens the registry knows (issue 17) ===

const GHCR_USER: &str = "x-access-token";
const GHCR_TOKEN: &str = "ghs_E2eInstallationToken0123456789abcdef";
const QUAY_ROBOT: &str = "myorg+puller";
const QUAY_TOKEN: &str = "quay-e2e-robot-token-0123456789";
/// Both providers against `fake`, writing their entries for `registry`.
fn ghcr_quay_env(fake: &FakeGithubQuay, keys: &Path, registry: &TestRegistry) -> Vec<(&'static str, String)> {
    let ca = fake.ca_file().display().to_string();
    vec![
        ("REGCREDS_GHCR_APP_ID", "123456".to_string()),
        ("REGCREDS_GHCR_INSTALLATION_ID", "987654".to_string()),
        (
            "REGCREDS_GHCR_PRIVATE_KEY_FILE",
            keys.join("pkcs1.pem").display().to_string(),
        ),
        ("REGCREDS_GHCR_API_URL", fake.url.clone()),
        ("REGCREDS_GHCR_REGISTRY", registry.host().to_string()),
        ("REGCREDS_GHCR_CA_FILE", ca.clone()),
        ("REGCREDS_QUAY_ROBOT", QUAY_ROBOT.to_string()),
        ("REGCREDS_QUAY_REGISTRY", registry.host().to_string()),
        (
            "REGCREDS_QUAY_TOKEN_FILE",
            keys.join("sa-token").display().to_string(),
        ),
        ("REGCREDS_QUAY_FEDERATION_URL", fake.url.clone()),
        ("REGCREDS_QUAY_CA_FILE", ca),
        ("REGCREDS_CHECK_CA_FILE", ca_file(registry).display().to_string()),
        ("REGCREDS_CHECK_IMAGES", registry.image_name()),
    ]
}

#[tokio::test]
async fn ghcr_and_quay_tokens_minted_by_the_fakes_pull_from_the_registry_via_mint_check_and_run() {
    let _serial = SERIAL.lock().await;
    let registry = private_registry(&[(GHCR_USER, GHCR_TOKEN), (QUAY_ROBOT, QUAY_TOKEN)]).await;
    let host = registry.host().to_string();
    let work = tempfile::tempdir().expect("tempdir");
    let keys = work.path().join("keys");
    std::fs::create_dir(&keys).expect("keys dir");
    generate_app_key(&keys);
    std::fs::write(keys.join("sa-token"), SA_JWT).expect("token file");
    let public = keys.join("public.pem").display().to_string();
    let fake = FakeGithubQuay::start(&[
        ("FAKE_GITHUB_PUBLIC_KEY", &public),
        ("FAKE_GITHUB_TOKEN", GHCR_TOKEN),
        ("FAKE_QUAY_SA_TOKEN", SA_JWT),
        ("FAKE_QUAY_TOKEN", QUAY_TOKEN),
    ]);
    let env = ghcr_quay_env(&fake, &keys, &registry);

    // `mint --show-secrets` prints a dockerconfigjson skopeo can use as it is.
    for provider in ["ghcr", "quay"] {
        let mint = regcreds(&["mint", "--provider", provider, "--show-secrets"], &env);
        assert!(mint.status.success(), "{}", String::from_utf8_lossy(&mint.stderr));
        let minted = write_authfile(work.path(), &format!("{provider}-minted.json"), &mint.stdout);
        assert_eq!(
            registry.skopeo_inspect(&minted).as_deref(),
            Ok(registry.image_digest()),
            "{provider}: skopeo with the minted dockerconfigjson"
        );
    }

    // `regcreds check` proves both at the registry.
    let check = regcreds(&["check"], &env);
    let text = stdout(&check);
    assert_eq!(
        check.status.code(),
        Some(0),
        "{text}{}",
        String::from_utf8_lossy(&check.stderr)
    );
    for provider in ["ghcr", "quay"] {
        assert!(
            text.contains(&format!(
                "ok            {provider:<17} {host}  via Basic auth, may pull demo/hello:v1"
            )),
            "{text}"
        );
    }
    assert!(text.contains("ok: 2 of 2 credentials authenticate"), "{text}");

    // And through the controller: both Secrets in a fresh namespace pull, and the controller's own
    // check of what it propagated says ok.
    let cp = ControlPlane::shared().await;
    let client = cp.client();
    let namespace = fresh_namespace_name("registry-ghcr-quay");
    let log = work.path().join("regcreds.log");
    let mut run_env = env.clone();
    run_env.push(("REGCREDS_CHECK_INTERVAL_SECONDS", "1".to_string()));
    let regcreds = spawn_run(cp, &namespace, &run_env, log.clone());
    create_namespace(&client, &namespace).await;
    for (provider, user) in [("ghcr", GHCR_USER), ("quay", QUAY_ROBOT)] {
        let secret = format!("{provider}-secret");
        let dockerconfig = wait_for_dockerconfig(&client, &namespace, &secret).await;
        wait_for_pull_secret_on_default_sa(&client, &namespace, &secret).await;
        let doc: serde_json::Value = serde_json::from_slice(&dockerconfig).expect("json");
        assert_eq!(doc["auths"][&host]["username"], user, "{doc}");
        let authfile = write_authfile(work.path(), &format!("{provider}-propagated.json"), &dockerconfig);
        assert_eq!(
            registry.skopeo_inspect(&authfile).as_deref(),
            Ok(registry.image_digest()),
            "{provider}: skopeo with the propagated Secret"
        );
        wait_for_metric(
            &regcreds,
            &format!(r#"regcreds_registry_check{{provider="{provider}",registry="{host}",outcome="ok"}} 1"#),
        )
        .await;
    }
    stop(regcreds).await;
    assert_no_secret(
        &std::fs::read_to_string(&log).expect("logs"),
        &[GHCR_TOKEN, QUAY_TOKEN, SA_JWT],
    );
    delete_namespace(&client, &namespace).await;
}
