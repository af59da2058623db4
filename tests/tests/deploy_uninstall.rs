//! Uninstall: the chart's pre-delete hook and the kustomize component `deploy/components/uninstall` run
//! `regcreds cleanup` as the Deployment's instance, hardened, with exactly the rights the cleanup needs,
//! and their pods are admitted under the "restricted" Pod Security Standard.

use regcreds_testkit::{
    ControlPlane,
    manifests::{
        Grants, arr, assert_grants, assert_least_privilege, assert_pod_hardened, chart_ci_values, container,
        declares, dry_run, env, env_names, expand, grants, helm_or_note, helm_template, is_hook, kind,
        kustomize, name, parse, regcreds_help, s, the,
    },
};
use serde_json::{Value, json};

/// What the cleanup hook needs cluster-wide, and nothing else: delete Secrets, remove references.
fn cleanup_cluster_grants() -> Grants {
    expand(&[
        ("", "secrets", &["list", "delete"]),
        ("", "serviceaccounts", &["get", "list", "patch"]),
    ])
}

/// What the cleanup hook needs in the release namespace: stop the Deployment, see its pods go, hold and
/// then delete the Lease (without leader election, no Lease).
fn cleanup_namespace_grants(leader_election: bool) -> Grants {
    let mut grants = expand(&[
        ("apps", "deployments", &["get"]),
        ("apps", "deployments/scale", &["patch"]),
        ("", "pods", &["list"]),
    ]);
    if leader_election {
        grants.extend(expand(&[(
            "coordination.k8s.io",
            "leases",
            &["get", "list", "watch", "create", "patch", "delete"],
        )]));
    }
    grants
}

/// The chart's uninstall hook: pre-delete objects that delete themselves, RBAC before the Job, exactly
/// the cleanup's rights (the Deployment's only by name), bound to the hook's own ServiceAccount, a
/// hardened Job running `cleanup --deployment=<the Deployment> --stop` as the Deployment's instance, whose
/// pods the Deployment's selector does not match.
fn assert_cleanup_hook_least_privilege(objects: &[Value], help: &str, what: &str) {
    let hooks: Vec<Value> = objects.iter().filter(|o| is_hook(o)).cloned().collect();
    let deployment = the(objects, "Deployment", what);
    let job = the(&hooks, "Job", what);
    let sa = the(&hooks, "ServiceAccount", what);
    let weight = |o: &Value| -> i64 {
        s(o, "/metadata/annotations/helm.sh~1hook-weight")
            .parse()
            .unwrap_or_else(|_| panic!("{what}: {} {} has no hook weight", kind(o), name(o)))
    };
    for hook in &hooks {
        let at = format!("{what}: {} {}", kind(hook), name(hook));
        assert_eq!(
            s(hook, "/metadata/annotations/helm.sh~1hook"),
            "pre-delete",
            "{at}"
        );
        let policy = s(hook, "/metadata/annotations/helm.sh~1hook-delete-policy");
        for needed in ["before-hook-creation", "hook-succeeded"] {
            assert!(policy.contains(needed), "{at}: delete policy {policy:?}");
        }
        if kind(hook) != "Job" {
            assert!(weight(hook) < weight(job), "{at}: created before the Job");
        }
    }
    assert_grants(
        &grants(the(&hooks, "ClusterRole", what)),
        &cleanup_cluster_grants(),
        &format!("{what}: hook ClusterRole"),
    );
    let role = the(&hooks, "Role", what);
    let leader_election = env(container(deployment, "regcreds"), "REGCREDS_LEADER_ELECTION")
        .is_some_and(|e| s(e, "/value") == "true");
    assert_grants(
        &grants(role),
        &cleanup_namespace_grants(leader_election),
        &format!("{what}: hook Role"),
    );
    for rule in arr(role, "/rules") {
        if s(rule, "/apiGroups/0") == "apps" {
            assert_eq!(
                rule.get("resourceNames"),
                Some(&json!([name(deployment)])),
                "{what}: the hook may touch only this release's Deployment: {rule}"
            );
        }
    }
    for binding in ["ClusterRoleBinding", "RoleBinding"] {
        let subjects = arr(the(&hooks, binding, what), "/subjects");
        assert_eq!(subjects.len(), 1, "{what}: hook {binding}");
        assert_eq!(s(&subjects[0], "/name"), name(sa), "{what}: hook {binding}");
        assert_eq!(
            s(&subjects[0], "/namespace"),
            s(sa, "/metadata/namespace"),
            "{what}: hook {binding}"
        );
    }
    let pod = job.pointer("/spec/template/spec").expect("pod spec");
    let c = container(job, "cleanup");
    assert_pod_hardened(pod, c, Some(65532), what);
    assert_eq!(
        s(pod, "/serviceAccountName"),
        name(sa),
        "{what}: the hook's own ServiceAccount"
    );
    assert_eq!(
        s(c, "/image"),
        s(container(deployment, "regcreds"), "/image"),
        "{what}: image"
    );
    assert_eq!(
        c.get("args"),
        Some(&json!([
            "cleanup",
            format!("--deployment={}", name(deployment)),
            "--stop"
        ])),
        "{what}: args"
    );
    for (var, field) in [
        ("REGCREDS_NAMESPACE", "metadata.namespace"),
        ("REGCREDS_POD_NAME", "metadata.name"),
    ] {
        let e = env(c, var).unwrap_or_else(|| panic!("{what}: {var} is not set on the hook"));
        assert_eq!(s(e, "/valueFrom/fieldRef/fieldPath"), field, "{what}: {var}");
    }
    for var in [
        "REGCREDS_INSTANCE",
        "REGCREDS_LEASE_NAME",
        "REGCREDS_LEADER_ELECTION",
    ] {
        assert_eq!(
            env(c, var).map(|e| s(e, "/value")),
            env(container(deployment, "regcreds"), var).map(|e| s(e, "/value")),
            "{what}: {var} as the Deployment's"
        );
    }
    for var in env_names(c) {
        assert!(
            declares(help, var),
            "{what}: the hook sets {var}, which `regcreds cleanup` does not declare"
        );
    }
    assert!(
        arr(c, "/env")
            .iter()
            .all(|e| e.pointer("/valueFrom/secretKeyRef").is_none()),
        "{what}: the hook needs no credential"
    );
    assert_selector_misses(deployment, job, &format!("{what} (hook)"));
}

/// The Deployment's selector does not match the cleanup Job's pod: `cleanup --stop` waits for the
/// Deployment's pods to go, and would wait for itself.
fn assert_selector_misses(deployment: &Value, job: &Value, what: &str) {
    let selector = deployment
        .pointer("/spec/selector/matchLabels")
        .and_then(Value::as_object)
        .expect("selector");
    let labels = job.pointer("/spec/template/metadata/labels").expect("labels");
    assert!(
        !selector.iter().all(|(k, v)| labels.get(k) == Some(v)),
        "{what}: the Deployment's selector matches the Job's pod"
    );
}

#[test]
fn the_chart_cleans_up_on_uninstall_with_a_hardened_least_privilege_hook_unless_turned_off() {
    let Some(helm) = helm_or_note() else { return };
    let help = regcreds_help("cleanup");
    for values in chart_ci_values() {
        let what = format!(
            "chart with {}",
            values.file_name().expect("file").to_string_lossy()
        );
        let yaml = helm_template(&helm, "regcreds", std::slice::from_ref(&values), &[])
            .unwrap_or_else(|e| panic!("{e}"));
        assert_cleanup_hook_least_privilege(&parse(&yaml, &what), &help, &what);
    }
    let hub = [
        "providers.dockerhub.enabled=true",
        "providers.dockerhub.existingSecret=hub",
    ];
    let render = |extra: &[&str]| -> Vec<Value> {
        let sets: Vec<&str> = hub.iter().chain(extra).copied().collect();
        parse(
            &helm_template(&helm, "regcreds", &[], &sets).unwrap_or_else(|e| panic!("{e}")),
            "chart",
        )
    };
    // The release's own instance, Lease and Secret names.
    let named = render(&[
        "instance=hub-instance",
        "leaderElection.leaseName=hub-lease",
        "providers.dockerhub.secretName=hub-pull",
    ]);
    assert_cleanup_hook_least_privilege(&named, &help, "chart with instance and lease name");
    let job = container(the(&named, "Job", "chart"), "cleanup");
    assert_eq!(
        env(job, "REGCREDS_CLEANUP_SECRET_NAMES").map(|e| s(e, "/value")),
        Some("hub-pull")
    );
    let single = render(&["leaderElection.enabled=false"]);
    assert_cleanup_hook_least_privilege(&single, &help, "chart without leader election");
    let off = render(&["cleanupOnUninstall=false"]);
    assert!(
        off.iter().all(|o| !is_hook(o) && kind(o) != "Job"),
        "cleanupOnUninstall=false renders no hook"
    );
    assert!(
        helm_template(
            &helm,
            "regcreds",
            &[],
            &[hub[0], hub[1], "cleanupOnUninstall=maybe"]
        )
        .is_err(),
        "values.schema.json: cleanupOnUninstall is a boolean"
    );
}

#[test]
fn the_uninstall_component_stops_the_deployment_and_runs_cleanup_as_its_instance_with_its_rights() {
    let what = "deploy/examples/uninstall";
    let objects = kustomize(what);
    // Nothing but the Job is added: the base's RBAC already allows the cleanup.
    assert_least_privilege(&objects, what);
    let deployment = the(&objects, "Deployment", what);
    assert_eq!(deployment.pointer("/spec/replicas"), Some(&json!(0)), "{what}");
    let job = the(&objects, "Job", what);
    let pod = job.pointer("/spec/template/spec").expect("pod spec");
    let c = container(job, "cleanup");
    assert_pod_hardened(pod, c, Some(65532), what);
    let regcreds = container(deployment, "regcreds");
    assert_eq!(
        s(c, "/image"),
        s(regcreds, "/image"),
        "{what}: the Deployment's image"
    );
    assert_eq!(
        c.get("env"),
        regcreds.get("env"),
        "{what}: the Deployment's environment"
    );
    assert_eq!(
        s(pod, "/serviceAccountName"),
        s(deployment, "/spec/template/spec/serviceAccountName"),
        "{what}: the Deployment's ServiceAccount"
    );
    assert_eq!(
        s(job, "/metadata/namespace"),
        s(deployment, "/metadata/namespace")
    );
    assert_eq!(
        c.get("args"),
        Some(&json!(["cleanup", format!("--deployment={}", name(deployment))])),
        "{what}: args"
    );
    assert_selector_misses(deployment, job, what);
    let help = regcreds_help("cleanup");
    for flag in ["--deployment", "--lease-wait-seconds", "--dry-run", "--stop"] {
        assert!(help.contains(flag), "`regcreds cleanup` has {flag}");
    }
}

#[tokio::test]
async fn the_uninstall_example_passes_a_server_side_dry_run_under_the_restricted_pod_standard() {
    let cp = ControlPlane::shared().await;
    let what = "deploy/examples/uninstall";
    dry_run(cp, &kustomize(what), what).await;
}
