//! `deploy/base` and every `deploy/overlays/*` (the base plus one provider component each): rendered
//! with `kubectl kustomize`, the Deployment keeps its hardening and configures exactly one provider from
//! a required Secret, the RBAC is least privilege, and a real apiserver accepts it all (server-side dry
//! run, plus each Deployment's Pod under the "restricted" Pod Security Standard).
//!
//! The other `deploy/` suites: `deploy_provider_components.rs` (the components and how they combine),
//! `deploy_drop_in_examples.rs` (upmc registry-creds and imagepullsecret-patcher manifests),
//! `deploy_chart.rs`, `deploy_variables.rs`, `deploy_heal_pods.rs`, `deploy_uninstall.rs`, and
//! `chart_conventions.rs`. Shared helpers: `regcreds_testkit::manifests`.

use regcreds_testkit::{
    ControlPlane,
    manifests::{
        arr, assert_least_privilege, assert_locked_down, assert_pod_security_is_enforced, container, dry_run,
        kind, kustomize, name, overlay_dirs, providers, s, the,
    },
};
use serde_json::json;

#[test]
fn the_base_deployment_is_locked_down_and_its_rbac_is_least_privilege() {
    let objects = kustomize("deploy/base");
    let deployment = the(&objects, "Deployment", "base");
    assert_locked_down(&objects, deployment, "base");
    assert_least_privilege(&objects, "base");
    let c = container(deployment, "regcreds");
    assert!(
        s(c, "/image").starts_with("ghcr.io/regcreds/regcreds:"),
        "base image {}",
        s(c, "/image")
    );
    let ns = the(&objects, "Namespace", "base");
    assert_eq!(name(ns), "regcreds");
    assert_eq!(
        s(ns, "/metadata/labels/pod-security.kubernetes.io~1enforce"),
        "restricted"
    );
    for o in &objects {
        if kind(o) != "Namespace" && !kind(o).starts_with("Cluster") {
            assert_eq!(s(o, "/metadata/namespace"), "regcreds", "{} {}", kind(o), name(o));
        }
    }
}

#[test]
fn every_overlay_keeps_the_base_hardening_and_configures_one_provider_from_a_required_secret() {
    for dir in overlay_dirs() {
        let objects = kustomize(&dir);
        let deployment = the(&objects, "Deployment", &dir);
        assert_locked_down(&objects, deployment, &dir);
        assert_least_privilege(&objects, &dir);
        let c = container(deployment, "regcreds");
        let providers = providers(c);
        assert_eq!(providers.len(), 1, "{dir}: configures providers {providers:?}");
        for e in arr(c, "/env") {
            if let Some(r) = e.pointer("/valueFrom/secretKeyRef") {
                assert_eq!(
                    r.get("optional"),
                    Some(&json!(false)),
                    "{dir}: {} must not be optional",
                    s(e, "/name")
                );
            }
        }
        for v in arr(deployment, "/spec/template/spec/volumes") {
            if v.get("secret").is_some() {
                assert_eq!(
                    v.pointer("/secret/optional"),
                    Some(&json!(false)),
                    "{dir}: volume {}",
                    s(v, "/name")
                );
            }
        }
    }
}

#[tokio::test]
async fn the_base_and_every_overlay_pass_a_server_side_dry_run_and_the_restricted_pod_standard() {
    let cp = ControlPlane::shared().await;
    let base = kustomize("deploy/base");
    dry_run(cp, &base, "deploy/base").await;
    assert_pod_security_is_enforced(cp, "regcreds").await;
    for dir in overlay_dirs() {
        dry_run(cp, &kustomize(&dir), &dir).await;
    }
}
