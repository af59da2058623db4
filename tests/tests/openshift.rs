//! OpenShift: the chart's `openshift.enabled` and the kustomize component `deploy/components/openshift`
//! (`deploy/examples/openshift`, also combined with the uninstall component) leave UID, GID and
//! fsGroup to the platform and keep the rest of the hardening.
//!
//! OpenShift's SCC admission is not part of a kube-apiserver, so "restricted-like" here means: Pod
//! Security admission `restricted` enforced on the namespace, no fixed UID/GID/fsGroup in the rendered
//! pod, and the pod still admitted once a UID from an OpenShift-style range is filled in, as the
//! restricted-v2 SCC would.

use regcreds_testkit::{
    ControlPlane,
    manifests::{
        ONE_PROVIDER, assert_pod_hardened, assert_pod_security_is_enforced, container, dry_run, helm_lint,
        helm_or_note, kind, kubectl_apply, kustomize, kustomize_with, name, render_one_provider,
        restricted_namespace, s, the,
    },
};
use serde_json::{Value, json};

/// The Deployment's and the uninstall Job's pods: hardened, with no fixed UID, GID or fsGroup.
fn assert_left_to_the_platform(objects: &[Value], what: &str) {
    for (workload, container_name) in [("Deployment", "regcreds"), ("Job", "cleanup")] {
        let Some(o) = objects.iter().find(|o| kind(o) == workload) else {
            continue;
        };
        let pod = o.pointer("/spec/template/spec").expect("pod spec");
        assert_pod_hardened(
            pod,
            container(o, container_name),
            None,
            &format!("{what}: {workload}"),
        );
    }
}

#[test]
fn openshift_values_and_the_kustomize_component_leave_uid_gid_and_fs_group_to_the_platform() {
    let examples = kustomize("deploy/examples/openshift");
    assert_left_to_the_platform(&examples, "deploy/examples/openshift");
    // With the uninstall component too, listed first: the Job is patched as well.
    let with_uninstall = kustomize_with(
        &["deploy/overlays/static"],
        &["deploy/components/uninstall", "deploy/components/openshift"],
    );
    assert!(with_uninstall.iter().any(|o| kind(o) == "Job"));
    assert_left_to_the_platform(&with_uninstall, "openshift + uninstall");

    let Some(helm) = helm_or_note() else { return };
    let objects = render_one_provider(&helm, "regcreds", &["openshift.enabled=true"]);
    assert_left_to_the_platform(&objects, "chart openshift.enabled");
    helm_lint(
        &helm,
        &[],
        &[ONE_PROVIDER[0], ONE_PROVIDER[1], "openshift.enabled=true"],
    )
    .unwrap_or_else(|e| panic!("{e}"));
    // The same by hand: null removes a default.
    let by_hand = render_one_provider(
        &helm,
        "regcreds",
        &[
            "podSecurityContext.runAsUser=null",
            "podSecurityContext.runAsGroup=null",
            "podSecurityContext.fsGroup=null",
            "securityContext.runAsUser=null",
            "securityContext.runAsGroup=null",
        ],
    );
    assert_left_to_the_platform(&by_hand, "chart podSecurityContext nulls");
}

/// The pod of `workload` with a UID, GID and fsGroup from an OpenShift-style namespace range, as the
/// restricted-v2 SCC fills them in.
fn with_assigned_uid(workload: &Value) -> Value {
    let mut spec = workload.pointer("/spec/template/spec").expect("pod spec").clone();
    let uid = json!(1000680000);
    spec["securityContext"]["runAsUser"] = uid.clone();
    spec["securityContext"]["fsGroup"] = uid.clone();
    for c in spec["containers"].as_array_mut().expect("containers") {
        c["securityContext"]["runAsUser"] = uid.clone();
    }
    json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": format!("{}-scc-uid", name(workload)),
            "namespace": s(workload, "/metadata/namespace"),
        },
        "spec": spec,
    })
}

#[tokio::test]
async fn openshift_renderings_pass_a_server_side_dry_run_under_the_restricted_pod_standard() {
    let cp = ControlPlane::shared().await;
    // deploy/base's namespace "regcreds" enforces restricted; check that it still does.
    let examples = kustomize("deploy/examples/openshift");
    dry_run(cp, &examples, "deploy/examples/openshift").await;
    assert_pod_security_is_enforced(cp, "regcreds").await;
    let deployment = the(&examples, "Deployment", "examples/openshift");
    kubectl_apply(cp.kubeconfig_path(), &[with_assigned_uid(deployment)], true)
        .unwrap_or_else(|e| panic!("examples/openshift with an SCC-assigned UID: {e}"));

    let Some(helm) = helm_or_note() else { return };
    let namespace = "regcreds-openshift";
    restricted_namespace(cp, namespace).await;
    let objects = render_one_provider(&helm, namespace, &["openshift.enabled=true"]);
    dry_run(cp, &objects, "chart openshift.enabled").await;
    for workload in objects
        .iter()
        .filter(|o| kind(o) == "Deployment" || kind(o) == "Job")
    {
        kubectl_apply(cp.kubeconfig_path(), &[with_assigned_uid(workload)], true)
            .unwrap_or_else(|e| panic!("{} with an SCC-assigned UID: {e}", name(workload)));
    }
}
