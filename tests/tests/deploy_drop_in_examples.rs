//! The drop-in examples: `deploy/examples/upmc-registry-creds` and
//! `deploy/examples/imagepullsecret-patcher` are the upstream projects' manifests with only the image
//! swapped — upstream names, variables, input Secrets and RBAC — and a real apiserver accepts them. (The
//! image runs `regcreds run` without arguments for them: `image.rs` checks the Dockerfile's `CMD`.)

use std::collections::BTreeSet;

use regcreds_testkit::{
    ControlPlane,
    manifests::{
        arr, assert_files_are_mounted, assert_grants, container, dry_run, env, env_names, expand, grants,
        kind, kustomize, name, s, the,
    },
};
use serde_json::{Value, json};

/// The examples, each a copy of an upstream project's manifests.
const EXAMPLES: &[&str] = &[
    "deploy/examples/upmc-registry-creds",
    "deploy/examples/imagepullsecret-patcher",
];

/// The container runs regcreds' image with what upstream passes: no command, no args (the image's
/// `CMD` is `run`).
fn assert_regcreds_image_without_args(c: &Value, what: &str) {
    assert!(
        s(c, "/image").starts_with("ghcr.io/regcreds/regcreds:"),
        "{what}: image {}",
        s(c, "/image")
    );
    assert!(
        c.get("args").is_none() && c.get("command").is_none(),
        "{what}: upstream passes no args"
    );
}

/// Every secretKeyRef of `deployment` names a Secret and key present in `objects` (examples ship
/// their input Secrets).
fn assert_secret_refs_resolve(objects: &[Value], deployment: &Value, what: &str) {
    for c in arr(deployment, "/spec/template/spec/containers") {
        for e in arr(c, "/env") {
            let Some(r) = e.pointer("/valueFrom/secretKeyRef") else {
                continue;
            };
            let (secret, key) = (s(r, "/name"), s(r, "/key"));
            let found = objects
                .iter()
                .find(|o| kind(o) == "Secret" && name(o) == secret)
                .unwrap_or_else(|| {
                    panic!(
                        "{what}: {} reads Secret {secret}, which the example does not ship",
                        s(e, "/name")
                    )
                });
            let has_key = found.pointer(&format!("/stringData/{key}")).is_some()
                || found.pointer(&format!("/data/{key}")).is_some();
            assert!(
                has_key,
                "{what}: {} reads key {key:?} that Secret {secret} lacks",
                s(e, "/name")
            );
        }
    }
}

#[test]
fn the_upmc_example_keeps_upstream_names_and_only_the_narrow_rbac() {
    let what = EXAMPLES[0];
    let objects = kustomize(what);
    let deployment = the(&objects, "Deployment", what);
    assert_eq!(
        (name(deployment), s(deployment, "/metadata/namespace")),
        ("registry-creds", "kube-system")
    );
    let c = container(deployment, "registry-creds");
    assert_regcreds_image_without_args(c, what);
    let names = env_names(c);
    for upstream in [
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "awsaccount",
        "awsregion",
        "aws_assume_role",
        "DOCKER_PRIVATE_REGISTRY_PASSWORD",
        "DOCKER_PRIVATE_REGISTRY_SERVER",
        "DOCKER_PRIVATE_REGISTRY_USER",
        "ACR_PASSWORD",
        "ACR_URL",
        "ACR_CLIENT_ID",
        "gcrurl",
    ] {
        assert!(
            names.contains(&upstream),
            "{what}: upstream variable {upstream} missing"
        );
    }
    let secrets: BTreeSet<&str> = objects.iter().filter(|o| kind(o) == "Secret").map(name).collect();
    let upstream_secrets = [
        "registry-creds-acr",
        "registry-creds-dpr",
        "registry-creds-ecr",
        "registry-creds-gcr",
    ];
    assert_eq!(
        secrets,
        upstream_secrets.into_iter().collect(),
        "{what}: input Secrets"
    );
    assert_secret_refs_resolve(&objects, deployment, what);
    let narrow = expand(&[
        ("", "namespaces", &["list", "watch"]),
        ("", "secrets", &["create", "get", "update", "patch"]),
        ("", "serviceaccounts", &["get", "update", "patch"]),
    ]);
    let granted = grants(the(&objects, "ClusterRole", what));
    assert_grants(&granted, &narrow, what);
    let sa = the(&objects, "ServiceAccount", what);
    assert_eq!(
        s(deployment, "/spec/template/spec/serviceAccountName"),
        name(sa),
        "{what}: runs as the bound SA"
    );
}

#[test]
fn the_imagepullsecret_patcher_example_differs_from_upstream_only_in_the_image() {
    let what = EXAMPLES[1];
    let objects = kustomize(what);
    let deployment = the(&objects, "Deployment", what);
    let c = container(deployment, "imagepullsecret-patcher");
    assert_regcreds_image_without_args(c, what);
    for (var, value) in [
        ("CONFIG_FORCE", "true"),
        ("CONFIG_ALLSERVICEACCOUNT", "true"),
        ("CONFIG_DOCKERCONFIGJSONPATH", "/app/secrets/.dockerconfigjson"),
    ] {
        let e = env(c, var).unwrap_or_else(|| panic!("{what}: {var} missing"));
        assert_eq!(s(e, "/value"), value, "{what}: {var}");
    }
    assert_files_are_mounted(deployment, what);
    let source = objects
        .iter()
        .find(|o| kind(o) == "Secret" && name(o) == "image-pull-secret-src");
    let source = source.unwrap_or_else(|| panic!("{what}: no source Secret image-pull-secret-src"));
    assert_eq!(s(source, "/type"), "kubernetes.io/dockerconfigjson");
    let upstream = expand(&[
        ("", "secrets", &["list", "patch", "create", "get", "delete"]),
        (
            "",
            "serviceaccounts",
            &["list", "patch", "create", "get", "delete"],
        ),
        ("", "namespaces", &["list", "get"]),
    ]);
    let granted = grants(the(&objects, "ClusterRole", what));
    assert_grants(&granted, &upstream, what);
    assert_eq!(
        deployment.pointer("/spec/template/spec/automountServiceAccountToken"),
        Some(&json!(true)),
        "{what}: upstream PR #9"
    );
}

#[tokio::test]
async fn the_drop_in_examples_pass_a_server_side_dry_run() {
    let cp = ControlPlane::shared().await;
    for dir in EXAMPLES {
        dry_run(cp, &kustomize(dir), dir).await;
    }
}
