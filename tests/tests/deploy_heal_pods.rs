//! Pod healing's extra RBAC comes only with the switch: the kustomize example `deploy/examples/heal-pods`
//! and the chart's `healPods.enabled` add exactly the pod rule (list, watch, delete) and turn healing on
//! with variables `regcreds run` declares; the base, the overlays and the chart by default do neither.

use regcreds_testkit::{
    ControlPlane,
    manifests::{
        Grants, assert_grants, assert_least_privilege, assert_locked_down, container, declares, dry_run, env,
        env_names, expand, grants, helm_or_note, helm_template, installed, kustomize, overlay_dirs, parse,
        regcreds_cluster_grants, regcreds_help, s, the,
    },
};
use serde_json::Value;

/// What pod healing adds to the ClusterRole, and nothing else.
fn heal_pods_grants() -> Grants {
    expand(&[("", "pods", &["list", "watch", "delete"])])
}

/// The Deployment turns healing on, every `REGCREDS_HEAL_*` it sets is declared by `regcreds run`, and
/// the ClusterRole grants exactly the base's rules plus the pod rule.
fn assert_heals_with_least_privilege(objects: &[Value], what: &str) {
    let deployment = the(objects, "Deployment", what);
    assert_locked_down(objects, deployment, what);
    let c = container(deployment, "regcreds");
    assert_eq!(
        env(c, "REGCREDS_HEAL_PODS").map(|e| s(e, "/value")),
        Some("true"),
        "{what}"
    );
    let help = regcreds_help("run");
    for name in env_names(c)
        .into_iter()
        .filter(|n| n.starts_with("REGCREDS_HEAL_"))
    {
        assert!(declares(&help, name), "{what}: {name} is not declared");
    }
    let cluster = grants(the(&installed(objects), "ClusterRole", what));
    let expected: Grants = regcreds_cluster_grants()
        .union(&heal_pods_grants())
        .cloned()
        .collect();
    assert_grants(&cluster, &expected, &format!("{what}: ClusterRole"));
}

#[test]
fn the_heal_pods_component_turns_healing_on_and_adds_only_the_pod_rule() {
    let what = "deploy/examples/heal-pods";
    let objects = kustomize(what);
    assert_heals_with_least_privilege(&objects, what);
    // The provider of the overlay it extends is still there.
    let c = container(the(&objects, "Deployment", what), "regcreds");
    assert!(env(c, "REGCREDS_STATIC_SERVER").is_some(), "{what}");
    let base_and_overlays: Vec<String> = std::iter::once("deploy/base".to_string())
        .chain(overlay_dirs())
        .collect();
    for dir in base_and_overlays {
        let objects = kustomize(&dir);
        let c = container(the(&objects, "Deployment", &dir), "regcreds");
        assert!(env(c, "REGCREDS_HEAL_PODS").is_none(), "{dir}: healing is opt-in");
    }
}

#[test]
fn the_chart_grants_pod_rights_only_with_heal_pods_enabled() {
    let Some(helm) = helm_or_note() else { return };
    let provider = [
        "providers.dockerhub.enabled=true",
        "providers.dockerhub.existingSecret=x",
    ];
    let on: Vec<&str> = provider
        .iter()
        .copied()
        .chain([
            "healPods.enabled=true",
            "healPods.rate=0.5",
            "healPods.namespaceBurst=3",
        ])
        .collect();
    let what = "chart with healPods.enabled=true";
    let objects = parse(
        &helm_template(&helm, "regcreds", &[], &on).unwrap_or_else(|e| panic!("{e}")),
        what,
    );
    assert_heals_with_least_privilege(&objects, what);
    let c = container(the(&objects, "Deployment", what), "regcreds");
    assert_eq!(env(c, "REGCREDS_HEAL_RATE").map(|e| s(e, "/value")), Some("0.5"));
    assert_eq!(
        env(c, "REGCREDS_HEAL_NAMESPACE_BURST").map(|e| s(e, "/value")),
        Some("3")
    );

    let off = parse(
        &helm_template(&helm, "regcreds", &[], &provider).unwrap_or_else(|e| panic!("{e}")),
        "chart",
    );
    assert_least_privilege(&off, "chart without healPods");
    let c = container(the(&off, "Deployment", "chart"), "regcreds");
    assert!(env_names(c).iter().all(|n| !n.starts_with("REGCREDS_HEAL_")));
    for bad in ["healPods.rate=0", "healPods.burst=0", "healPods.enable=true"] {
        let sets: Vec<&str> = provider.iter().copied().chain([bad]).collect();
        assert!(
            helm_template(&helm, "regcreds", &[], &sets).is_err(),
            "values.schema.json refuses {bad}"
        );
    }
}

#[tokio::test]
async fn the_heal_pods_example_passes_a_server_side_dry_run() {
    let cp = ControlPlane::shared().await;
    let what = "deploy/examples/heal-pods";
    dry_run(cp, &kustomize(what), what).await;
}
