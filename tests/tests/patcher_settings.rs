//! Issue 16: imagepullsecret-patcher's settings are honoured, not ignored, against a real control plane:
//! `CONFIG_RUNONCE` makes one pass and exits (0, or 1 if a namespace failed) like a Job would need;
//! `CONFIG_MANAGEDONLY` touches only managed Secrets — also with `CONFIG_FORCE=true`, as that tool's
//! example manifest sets it. (`CONFIG_LOOP_DURATION`: rbac.rs, with that tool's RBAC; invalid values of
//! every setting: crates/regcreds/tests/cli_config.rs.)

use std::{collections::BTreeMap, path::Path, process::ExitStatus, time::Duration};

use k8s_openapi::{
    ByteString,
    api::{
        admissionregistration::v1::{ValidatingAdmissionPolicy, ValidatingAdmissionPolicyBinding},
        core::v1::Secret,
    },
};
use kube::{
    Api, Client, ResourceExt,
    api::{ObjectMeta, PostParams},
};
use regcreds_propagator::MANAGED_BY_LABEL;
use regcreds_testkit::{
    ControlPlane, Regcreds, TEST_LABEL, delete_namespaces, ensure_namespace, pull_secret_refs, secret,
    users_opaque_secret, wait_for,
};

static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
const SECRET_NAME: &str = "image-pull-secret";
const DOC: &str = r#"{"auths":{"patcher.example":{"username":"puller","password":"patcher-pw"}}}"#;

/// imagepullsecret-patcher's variables, as its manifests set them, for namespaces labelled `test`.
fn patcher_env(test: &str, extra: &[(&'static str, &'static str)]) -> Vec<(&'static str, String)> {
    let mut env = vec![
        ("CONFIG_DOCKERCONFIGJSON", DOC.to_string()),
        ("CONFIG_ALLSERVICEACCOUNT", "true".into()),
        ("REGCREDS_NAMESPACE_SELECTOR", format!("{TEST_LABEL}={test}")),
    ];
    env.extend(extra.iter().map(|(k, v)| (*k, v.to_string())));
    env
}

/// Runs regcreds with `env` and waits for it to exit by itself (a run-once Job).
async fn run_to_completion(
    kubeconfig: &Path,
    env: &[(&'static str, String)],
    log: &Path,
) -> (ExitStatus, String) {
    let mut regcreds = Regcreds::spawn(kubeconfig, env, log.to_path_buf());
    let status = wait_for("regcreds to exit by itself", Duration::from_secs(90), || {
        let exited = regcreds.exited();
        async move { exited }
    })
    .await;
    (status, regcreds.logs())
}

fn password(secret: &Secret) -> Option<String> {
    let bytes = &secret.data.as_ref()?.get(".dockerconfigjson")?.0;
    let doc: serde_json::Value = serde_json::from_slice(bytes).ok()?;
    doc["auths"]["patcher.example"]["password"]
        .as_str()
        .map(String::from)
}

async fn create_secret(client: &Client, ns: &str, secret: Secret) -> Secret {
    Api::<Secret>::namespaced(client.clone(), ns)
        .create(&PostParams::default(), &secret)
        .await
        .expect("create secret")
}

#[tokio::test]
async fn config_runonce_makes_one_pass_then_exits_0_or_1_when_a_namespace_failed() {
    let _serial = SERIAL.lock().await;
    let cp = ControlPlane::shared().await;
    let client = cp.client();
    let test = "runonce";
    let names = ["runonce-0", "runonce-1"];
    for ns in names {
        ensure_namespace(&client, ns, &[(TEST_LABEL, test)]).await;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let env = patcher_env(test, &[("CONFIG_RUNONCE", "true")]);
    let (status, logs) = run_to_completion(cp.kubeconfig_path(), &env, &dir.path().join("first.log")).await;
    assert_eq!(status.code(), Some(0), "{logs}");
    for ns in names {
        let secret = secret(&client, ns, SECRET_NAME).await.expect("secret written");
        assert_eq!(password(&secret).as_deref(), Some("patcher-pw"));
        let refs = pull_secret_refs(&client, ns, "default").await.expect("sa");
        assert!(refs.contains(&SECRET_NAME.to_string()), "{ns}: {refs:?}");
    }
    assert!(logs.contains("one pass over every namespace done"), "{logs}");

    // A namespace where Secrets cannot be written (an admission policy denies them): the pass goes on
    // with the others, names it, and exits 1.
    let bad = "runonce-denied";
    deny_secrets_in_namespaces_labelled(&client, DENY_LABEL).await;
    ensure_namespace(&client, bad, &[(TEST_LABEL, test), (DENY_LABEL, "true")]).await;
    wait_for("the policy denies Secrets", Duration::from_secs(30), || async {
        let probe = Secret {
            metadata: ObjectMeta {
                name: Some("probe".into()),
                ..Default::default()
            },
            ..Default::default()
        };
        let api = Api::<Secret>::namespaced(client.clone(), bad);
        match api.create(&PostParams::default(), &probe).await {
            Err(kube::Error::Api(status)) if status.message.contains("denied request") => Some(()),
            Ok(_) => {
                let _ = api.delete("probe", &Default::default()).await;
                None
            }
            Err(_) => None,
        }
    })
    .await;
    let (status, logs) = run_to_completion(cp.kubeconfig_path(), &env, &dir.path().join("second.log")).await;
    assert_eq!(status.code(), Some(1), "{logs}");
    assert!(logs.contains(bad), "the failing namespace is named: {logs}");
    assert!(secret(&client, bad, SECRET_NAME).await.is_none());
    assert!(!logs.contains("patcher-pw"));
    delete_namespaces(&client, &[names[0], names[1], bad]).await;
}

const DENY_LABEL: &str = "regcreds-e2e/deny-secrets";

/// A ValidatingAdmissionPolicy refusing every Secret write in namespaces labelled `label=true`.
async fn deny_secrets_in_namespaces_labelled(client: &Client, label: &str) {
    let policy: ValidatingAdmissionPolicy = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "regcreds-e2e-deny-secrets"},
        "spec": {
            "failurePolicy": "Fail",
            "matchConstraints": {"resourceRules": [{
                "apiGroups": [""], "apiVersions": ["v1"], "operations": ["CREATE", "UPDATE"],
                "resources": ["secrets"],
            }]},
            "validations": [{"expression": "false", "message": "no Secrets in this namespace"}],
        },
    }))
    .expect("policy");
    let binding: ValidatingAdmissionPolicyBinding = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "regcreds-e2e-deny-secrets"},
        "spec": {
            "policyName": "regcreds-e2e-deny-secrets",
            "validationActions": ["Deny"],
            "matchResources": {"namespaceSelector": {"matchLabels": {label: "true"}}},
        },
    }))
    .expect("binding");
    let ignore_exists = |result: Result<(), kube::Error>| match result {
        Err(kube::Error::Api(status)) if status.code == 409 => {}
        other => other.expect("create"),
    };
    ignore_exists(
        Api::<ValidatingAdmissionPolicy>::all(client.clone())
            .create(&PostParams::default(), &policy)
            .await
            .map(drop),
    );
    ignore_exists(
        Api::<ValidatingAdmissionPolicyBinding>::all(client.clone())
            .create(&PostParams::default(), &binding)
            .await
            .map(drop),
    );
}

#[tokio::test]
async fn config_managedonly_leaves_foreign_secrets_alone_even_with_config_force() {
    let _serial = SERIAL.lock().await;
    let cp = ControlPlane::shared().await;
    let client = cp.client();
    let test = "managedonly";
    let (foreign_ns, patchers_ns, empty_ns) =
        ("managedonly-foreign", "managedonly-patcher", "managedonly-empty");
    for ns in [foreign_ns, patchers_ns, empty_ns] {
        ensure_namespace(&client, ns, &[(TEST_LABEL, test)]).await;
    }
    let foreign = create_secret(&client, foreign_ns, users_opaque_secret(SECRET_NAME)).await;
    // What imagepullsecret-patcher itself created (its ownership annotation), with an old credential.
    create_secret(
        &client,
        patchers_ns,
        Secret {
            metadata: ObjectMeta {
                name: Some(SECRET_NAME.into()),
                annotations: Some(BTreeMap::from([(
                    "app.kubernetes.io/managed-by".to_string(),
                    "imagepullsecret-patcher".to_string(),
                )])),
                ..Default::default()
            },
            type_: Some("kubernetes.io/dockerconfigjson".into()),
            data: Some(BTreeMap::from([(
                ".dockerconfigjson".to_string(),
                ByteString(DOC.replace("patcher-pw", "old-pw").into_bytes()),
            )])),
            ..Default::default()
        },
    )
    .await;
    let dir = tempfile::tempdir().expect("tempdir");
    // The patcher's example manifest sets CONFIG_FORCE=true; CONFIG_MANAGEDONLY=true narrows it.
    let env = patcher_env(
        test,
        &[
            ("CONFIG_RUNONCE", "true"),
            ("CONFIG_FORCE", "true"),
            ("CONFIG_MANAGEDONLY", "true"),
        ],
    );
    let (status, logs) = run_to_completion(cp.kubeconfig_path(), &env, &dir.path().join("managed.log")).await;
    assert_eq!(status.code(), Some(0), "{logs}");
    assert!(
        logs.contains("CONFIG_MANAGEDONLY=true"),
        "said why force is off: {logs}"
    );
    let kept = secret(&client, foreign_ns, SECRET_NAME)
        .await
        .expect("foreign kept");
    assert_eq!(
        kept.resource_version(),
        foreign.resource_version(),
        "foreign Secret untouched"
    );
    let taken = secret(&client, patchers_ns, SECRET_NAME)
        .await
        .expect("patcher's");
    assert_eq!(
        password(&taken).as_deref(),
        Some("patcher-pw"),
        "the patcher's Secret is updated"
    );
    assert_eq!(
        taken.labels().get(MANAGED_BY_LABEL).map(String::as_str),
        Some("regcreds")
    );
    let created = secret(&client, empty_ns, SECRET_NAME).await.expect("created");
    assert_eq!(password(&created).as_deref(), Some("patcher-pw"));

    // Without CONFIG_MANAGEDONLY, CONFIG_FORCE=true takes the foreign Secret over: the setting matters.
    let env = patcher_env(test, &[("CONFIG_RUNONCE", "true"), ("CONFIG_FORCE", "true")]);
    let (status, logs) = run_to_completion(cp.kubeconfig_path(), &env, &dir.path().join("forced.log")).await;
    assert_eq!(status.code(), Some(0), "{logs}");
    let forced = secret(&client, foreign_ns, SECRET_NAME)
        .await
        .expect("taken over");
    assert_eq!(password(&forced).as_deref(), Some("patcher-pw"));
    delete_namespaces(&client, &[foreign_ns, patchers_ns, empty_ns]).await;
}
