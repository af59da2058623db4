//! Server-side dry runs of rendered objects against a [`ControlPlane`], with the Pod each workload
//! would create, so admission (Pod Security "restricted" where enforced) sees the real pod.

use std::{collections::BTreeSet, path::Path, process::Command};

use serde_json::{Value, json};

use super::{kind, kubectl, name, run, s};
use crate::{ControlPlane, ensure_namespace};

/// Field manager of the tests' server-side applies.
pub const FIELD_MANAGER: &str = "regcreds-deploy-manifests-test";

/// `kubectl apply --server-side` of `objects` (as one List), with `--dry-run=server` if `dry_run`.
pub fn kubectl_apply(kubeconfig: &Path, objects: &[Value], dry_run: bool) -> Result<String, String> {
    let list = json!({"apiVersion": "v1", "kind": "List", "items": objects});
    let mut cmd = Command::new(kubectl());
    cmd.arg("--kubeconfig").arg(kubeconfig).args([
        "apply",
        "--server-side",
        "--field-manager",
        FIELD_MANAGER,
    ]);
    if dry_run {
        cmd.arg("--dry-run=server");
    }
    cmd.args(["-f", "-"]);
    run(cmd, Some(&list.to_string()))
}

/// Kinds whose CRDs a bare control plane does not have (the chart's optional ServiceMonitor).
pub fn needs_missing_crd(o: &Value) -> bool {
    s(o, "/apiVersion").starts_with("monitoring.coreos.com/")
}

/// Creates every namespace the objects live in (for real: a dry-run Namespace does not exist for the
/// dry run of what is inside it), and the ServiceAccounts (the ServiceAccount admission plugin
/// rejects Pods naming a missing one). Everything else is only dry-run.
pub async fn prepare(cp: &ControlPlane, objects: &[Value], what: &str) {
    apply_for_real(cp, objects, "Namespace", what);
    let referenced: BTreeSet<&str> = objects
        .iter()
        .map(|o| s(o, "/metadata/namespace"))
        .filter(|n| !n.is_empty())
        .collect();
    for namespace in referenced {
        ensure_namespace(&cp.client(), namespace, &[]).await;
    }
    apply_for_real(cp, objects, "ServiceAccount", what);
}

/// `kubectl apply --server-side` of the objects of kind `wanted`, not a dry run.
fn apply_for_real(cp: &ControlPlane, objects: &[Value], wanted: &str, what: &str) {
    let of_kind: Vec<Value> = objects.iter().filter(|o| kind(o) == wanted).cloned().collect();
    if !of_kind.is_empty() {
        kubectl_apply(cp.kubeconfig_path(), &of_kind, false).unwrap_or_else(|e| panic!("{what}: {e}"));
    }
}

/// Server-side dry run of every object; then a dry-run Pod from each Deployment's and Job's template,
/// so admission (Pod Security "restricted" where the namespace enforces it) sees the real pod.
pub async fn dry_run(cp: &ControlPlane, objects: &[Value], what: &str) {
    prepare(cp, objects, what).await;
    let (skipped, applied): (Vec<Value>, Vec<Value>) = objects.iter().cloned().partition(needs_missing_crd);
    for o in &skipped {
        eprintln!(
            "NOTE: {what}: {} {} not dry-run (its CRD is not installed)",
            kind(o),
            name(o)
        );
    }
    let out = kubectl_apply(cp.kubeconfig_path(), &applied, true).unwrap_or_else(|e| panic!("{what}: {e}"));
    assert_eq!(
        out.matches("(server dry run)").count(),
        applied.len(),
        "{what}: one result line per object:\n{out}"
    );
    for workload in objects
        .iter()
        .filter(|o| kind(o) == "Deployment" || kind(o) == "Job")
    {
        dry_run_pod(cp, workload).unwrap_or_else(|e| {
            panic!(
                "{what}: the {} {}'s pod is not admitted: {e}",
                kind(workload),
                name(workload)
            )
        });
    }
}

/// Pod Security admission is active: a privileged pod is refused in a "restricted" namespace.
/// Without this the restricted dry runs would prove nothing.
pub async fn assert_pod_security_is_enforced(cp: &ControlPlane, namespace: &str) {
    let pod = json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "privileged-dry-run", "namespace": namespace},
        "spec": {"containers": [{"name": "c", "image": "busybox", "securityContext": {"privileged": true}}]},
    });
    match kubectl_apply(cp.kubeconfig_path(), &[pod], true) {
        Ok(out) => panic!("a privileged pod was admitted in {namespace}: {out}"),
        Err(e) => assert!(
            e.contains("PodSecurity") || e.contains("restricted"),
            "unexpected refusal: {e}"
        ),
    }
}

/// A server-side dry run of the Pod a workload (Deployment, Job, DaemonSet) would create from its
/// template, in its namespace. Returns kubectl's output, or its error.
pub fn dry_run_pod(cp: &ControlPlane, workload: &Value) -> Result<String, String> {
    let pod = json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": format!("{}-dry-run", name(workload)),
            "namespace": s(workload, "/metadata/namespace"),
            "labels": workload.pointer("/spec/template/metadata/labels"),
        },
        "spec": workload.pointer("/spec/template/spec"),
    });
    kubectl_apply(cp.kubeconfig_path(), &[pod], true)
}

/// Creates `namespace` enforcing Pod Security `level` (already existing is fine).
pub fn namespace_enforcing(cp: &ControlPlane, namespace: &str, level: &str) {
    let ns = json!({
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {"name": namespace, "labels": {
            "pod-security.kubernetes.io/enforce": level,
            "pod-security.kubernetes.io/enforce-version": "latest",
        }},
    });
    kubectl_apply(cp.kubeconfig_path(), &[ns], false).unwrap_or_else(|e| panic!("{e}"));
}

/// Creates `namespace` enforcing the "restricted" Pod Security Standard (already existing is fine) and
/// checks that admission really enforces it.
pub async fn restricted_namespace(cp: &ControlPlane, namespace: &str) {
    namespace_enforcing(cp, namespace, "restricted");
    assert_pod_security_is_enforced(cp, namespace).await;
}
