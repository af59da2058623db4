//! Verify before propagate: a credential the registry refuses never reaches a namespace.
//!
//! ```text
//!  TestRegistry (distribution, TLS, token auth): puller may pull demo/hello:v1;
//!                                                app-bot logs in and gets a token that grants nothing
//!                                                (what users report of ghcr.io with App tokens)
//!     ▲ Gate: token request with pull scope, HEAD manifest of the probe image
//!  regcreds run (dockerconfigjson file, REGCREDS_CHECK_IMAGES=<registry>/demo/hello:v1)
//!     └──▶ kube-apiserver: Secrets in labelled namespaces, Events, /metrics
//! ```
//!
//! The file provider re-reads its file every second, so a test swaps the credential by rewriting it.
//! Every version of the Secret the API server ever held is recorded by a watch, so "never received"
//! is checked on the whole history, not on a last look.

use std::{
    path::PathBuf,
    sync::{Arc, Mutex},
    time::Duration,
};

use base64::Engine;
use futures::StreamExt;
use k8s_openapi::api::core::v1::{Event, Namespace, Secret, ServiceAccount};
use kube::{
    Api, Client,
    api::{ListParams, PostParams},
    runtime::{WatchStreamExt, watcher},
};
use rand::distr::{Alphanumeric, SampleString};
use regcreds_testkit::{
    ControlPlane, Regcreds, metric_value, regcreds_command,
    registry::{RegistryOptions, TestRegistry},
    wait_for,
};

const PULLER: &str = "puller";
const PULLER_PASSWORD: &str = "puller-Pa55word-verify";
const ROTATED_PASSWORD: &str = "rotated-Pa55word-verify";
const APP: &str = "app-bot";
const APP_PASSWORD: &str = "app-bot-Pa55word-verify";
const SECRET: &str = "verified-pull";
/// Where regcreds says it runs: its Events go here.
const HOME: &str = "default";
const TIMEOUT: Duration = Duration::from_secs(60);

/// Waits until `series` of `regcreds`' `/metrics` is at least `at_least`.
async fn wait_for_metric(regcreds: &Regcreds, series: &str, at_least: f64) {
    wait_for(&format!("{series} >= {at_least}"), TIMEOUT, || async {
        let value = metric_value(&regcreds.metrics()?, series)?;
        (value >= at_least).then_some(())
    })
    .await;
}

struct World {
    client: Client,
    kubeconfig: PathBuf,
    registry: TestRegistry,
    dir: tempfile::TempDir,
    /// `regcreds-verify=<this>` selects this test's namespaces.
    run_id: String,
}

impl World {
    async fn start() -> Self {
        let cp = ControlPlane::shared().await;
        let registry = TestRegistry::start(RegistryOptions {
            tls: true,
            users: &[(PULLER, PULLER_PASSWORD), (APP, APP_PASSWORD)],
            token_auth: true,
        })
        .await;
        registry.deny_pulls(APP);
        Self {
            client: cp.client(),
            kubeconfig: cp.kubeconfig_path().to_path_buf(),
            registry,
            dir: tempfile::tempdir().expect("tempdir"),
            run_id: Alphanumeric.sample_string(&mut rand::rng(), 8).to_lowercase(),
        }
    }

    fn config_file(&self) -> PathBuf {
        self.dir.path().join("config.json")
    }

    /// Rewrites the file the provider re-reads every second.
    fn write_credential(&self, user: &str, password: &str) {
        let auth = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
        let doc = serde_json::json!({
            "auths": { self.registry.host(): { "username": user, "password": password, "auth": auth } }
        });
        std::fs::write(self.config_file(), doc.to_string()).expect("write config.json");
    }

    fn spawn(&self) -> Regcreds {
        let ca = self.registry.cert_dir().join("ca.crt");
        let token_host = self.registry.token_host().expect("token registry");
        let mut cmd = regcreds_command(&self.kubeconfig);
        cmd.env("REGCREDS_INSTANCE", format!("verify-{}", self.run_id))
            .env("REGCREDS_NAMESPACE", HOME)
            .env("REGCREDS_POD_NAME", format!("regcreds-verify-{}", self.run_id))
            .env("REGCREDS_LEADER_ELECTION", "false")
            .env(
                "REGCREDS_NAMESPACE_SELECTOR",
                format!("regcreds-verify={}", self.run_id),
            )
            .env("REGCREDS_LOG_FORMAT", "json")
            .env("REGCREDS_DOCKERCONFIGJSON_PATH", self.config_file())
            .env("REGCREDS_DOCKERCONFIGJSON_SECRET_NAME", SECRET)
            .env("REGCREDS_DOCKERCONFIGJSON_SCHEDULE", "*/1 * * * * *")
            .env("REGCREDS_CHECK_IMAGES", self.registry.image_name())
            .env("REGCREDS_CHECK_CA_FILE", &ca)
            .env("REGCREDS_CHECK_INSECURE_HOSTS", token_host);
        Regcreds::start(cmd, self.dir.path().join("regcreds.log"))
    }

    async fn namespace(&self, prefix: &str) -> String {
        let name = format!("{prefix}-{}", self.run_id);
        let mut namespace = Namespace::default();
        namespace.metadata.name = Some(name.clone());
        namespace.metadata.labels = Some([("regcreds-verify".to_string(), self.run_id.clone())].into());
        Api::<Namespace>::all(self.client.clone())
            .create(&PostParams::default(), &namespace)
            .await
            .unwrap_or_else(|e| panic!("creating namespace {name}: {e}"));
        name
    }

    /// The password of the Secret's one entry, once the Secret exists.
    async fn propagated_password(&self, namespace: &str) -> String {
        let secrets = Api::<Secret>::namespaced(self.client.clone(), namespace);
        wait_for(&format!("Secret {namespace}/{SECRET}"), TIMEOUT, || async {
            password_of(&secrets.get_opt(SECRET).await.ok()??)
        })
        .await
    }

    async fn wait_for_password(&self, namespace: &str, expected: &str) {
        let secrets = Api::<Secret>::namespaced(self.client.clone(), namespace);
        wait_for(
            &format!("{namespace}/{SECRET} with {expected:?}"),
            TIMEOUT,
            || async {
                let secret = secrets.get_opt(SECRET).await.ok()??;
                (password_of(&secret)? == expected).then_some(())
            },
        )
        .await;
    }

    /// Every password the Secret held in `namespace` from now on, as the API server saw it.
    fn record_history(&self, namespace: &str) -> Arc<Mutex<Vec<String>>> {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let secrets = Api::<Secret>::namespaced(self.client.clone(), namespace);
        let config = watcher::Config::default().fields(&format!("metadata.name={SECRET}"));
        let record = seen.clone();
        tokio::spawn(async move {
            let mut stream = watcher(secrets, config).applied_objects().boxed();
            while let Some(Ok(secret)) = stream.next().await {
                if let Some(password) = password_of(&secret) {
                    record.lock().expect("history").push(password);
                }
            }
        });
        seen
    }

    async fn refused_events(&self, pod: &str) -> Vec<String> {
        Api::<Event>::namespaced(self.client.clone(), HOME)
            .list(&ListParams::default().fields(&format!("involvedObject.name={pod}")))
            .await
            .expect("list events")
            .items
            .into_iter()
            .filter(|e| e.reason.as_deref() == Some("CredentialRefused"))
            .filter_map(|e| e.message)
            .collect()
    }

    fn pod(&self) -> String {
        format!("regcreds-verify-{}", self.run_id)
    }

    async fn delete_namespaces(&self, names: &[&str]) {
        let api = Api::<Namespace>::all(self.client.clone());
        for name in names {
            let _ = api.delete(name, &Default::default()).await;
        }
    }
}

fn password_of(secret: &Secret) -> Option<String> {
    let bytes = &secret.data.as_ref()?.get(".dockerconfigjson")?.0;
    let doc: serde_json::Value = serde_json::from_slice(bytes).ok()?;
    let entry = doc["auths"].as_object()?.values().next()?;
    Some(entry["password"].as_str()?.to_string())
}

fn count(haystack: &str, needle: &str) -> usize {
    haystack.matches(needle).count()
}

fn assert_no_password(text: &str, what: &str) {
    for password in [PULLER_PASSWORD, ROTATED_PASSWORD, APP_PASSWORD] {
        assert!(!text.contains(password), "a password leaked into {what}:\n{text}");
    }
}

#[tokio::test]
async fn a_credential_the_registry_refuses_never_replaces_the_last_good_one_in_any_namespace() {
    let mut world = World::start().await;
    world.write_credential(PULLER, PULLER_PASSWORD);
    let first = world.namespace("verify-a").await;
    let running = world.spawn();
    assert_eq!(world.propagated_password(&first).await, PULLER_PASSWORD);
    let host = world.registry.host().to_string();
    let check = |outcome: &str| {
        format!(
            r#"regcreds_registry_check{{provider="dockerconfigjson",registry="{host}",outcome="{outcome}"}}"#
        )
    };
    wait_for_metric(&running, &check("ok"), 1.0).await;
    running
        .wait_log("registry lets the new credential pull the probe image", TIMEOUT)
        .await;

    // The file now holds an identity that logs in and gets a token, but may not pull.
    let history = world.record_history(&first);
    world.write_credential(APP, APP_PASSWORD);
    running
        .wait_log("refused the new credential for demo/hello:v1", TIMEOUT)
        .await;
    wait_for_metric(
        &running,
        r#"regcreds_provider_mint_failures_total{provider="dockerconfigjson",error="registry_refused"}"#,
        1.0,
    )
    .await;
    wait_for_metric(&running, &check("unauthorized"), 1.0).await;
    // A namespace created after the refusal gets the last good credential, not the refused one.
    let second = world.namespace("verify-b").await;
    assert_eq!(world.propagated_password(&second).await, PULLER_PASSWORD);
    // The provider re-reads the refused file every second; the registry is asked again only on backoff.
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(world.propagated_password(&first).await, PULLER_PASSWORD);

    let log = running.logs();
    let refusals = count(&log, "refused the new credential");
    assert!(
        // Backoff 2 s, 4 s, 8 s (±20%): at most 3 in these ~7 s, 4 on a slow machine; a refusal per
        // tick of the every-second schedule would be 7 or more.
        (1..=4).contains(&refusals),
        "{refusals} refusals logged in ~7 s of ticks every second: the backoff is not respected\n{log}"
    );
    let line = log
        .lines()
        .find(|l| l.contains("refused the new credential"))
        .expect("refusal line");
    for field in [
        format!(r#""registry":"{host}""#),
        r#""image":"demo/hello:v1""#.to_string(),
        r#""code":"UNAUTHORIZED""#.to_string(),
        "keeping the last good credential in every namespace".to_string(),
    ] {
        assert!(line.contains(&field), "missing {field} in {line}");
    }
    let events = world.refused_events(&world.pod()).await;
    assert!(
        events.iter().any(|note| note.contains(&host)
            && note.contains("demo/hello:v1")
            && note.contains("UNAUTHORIZED")),
        "no CredentialRefused Event naming registry, image and code: {events:?}"
    );

    // A different credential is checked at once, backoff or not, and goes through when it may pull.
    world.registry.set_user(PULLER, ROTATED_PASSWORD).await;
    world.write_credential(PULLER, ROTATED_PASSWORD);
    world.wait_for_password(&first, ROTATED_PASSWORD).await;
    world.wait_for_password(&second, ROTATED_PASSWORD).await;

    let seen = history.lock().expect("history").clone();
    assert!(!seen.is_empty(), "the watch saw nothing");
    assert!(
        !seen.iter().any(|p| p == APP_PASSWORD),
        "the refused credential reached {first}: {seen:?}"
    );
    let log = running.logs();
    assert_no_password(&log, "the log");
    assert_no_password(&events.join("\n"), "Events");
    assert_no_password(&running.metrics().unwrap_or_default(), "metrics");
    drop(running);
    world.delete_namespaces(&[&first, &second]).await;
}

#[tokio::test]
async fn with_no_last_good_credential_nothing_is_written_and_the_reason_is_said() {
    let world = World::start().await;
    world.write_credential(APP, APP_PASSWORD);
    let namespace = world.namespace("verify-none").await;
    let running = world.spawn();
    running
        .wait_log("nothing was written: no namespace receives a credential from this provider until the registry accepts one", TIMEOUT)
        .await;
    // Time for a propagator that would write anyway.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let secret = Api::<Secret>::namespaced(world.client.clone(), &namespace)
        .get_opt(SECRET)
        .await
        .expect("get Secret");
    assert!(secret.is_none(), "a refused credential was written: {secret:?}");
    let account = Api::<ServiceAccount>::namespaced(world.client.clone(), &namespace)
        .get_opt("default")
        .await
        .expect("get ServiceAccount");
    let refs = account.and_then(|a| a.image_pull_secrets).unwrap_or_default();
    assert!(
        !refs.iter().any(|r| r.name == SECRET),
        "the default ServiceAccount references a Secret that was never written: {refs:?}"
    );
    let ready = running.readyz();
    assert_ne!(ready, Some(200), "ready without a single admitted credential");
    assert_no_password(&running.logs(), "the log");
    drop(running);
    world.delete_namespaces(&[&namespace]).await;
}
