//! The Helm chart (`deploy/helm/regcreds`): it lints, every `ci/*.yaml` values file renders hardened,
//! least-privilege manifests that a real apiserver accepts under the "restricted" Pod Security Standard,
//! and settings that cannot work are refused at render time. Without helm these checks print a note and
//! pass (under `CI` they fail). The chart's platform conventions are in `chart_conventions.rs`, its
//! variables in `deploy_variables.rs`.

use regcreds_testkit::{
    ControlPlane,
    manifests::{
        assert_least_privilege, assert_locked_down, chart_ci_values, dry_run, helm_lint, helm_or_note,
        helm_template, parse, restricted_namespace, the,
    },
};

#[test]
fn the_chart_lints_and_every_ci_values_file_renders_hardened_least_privilege_manifests() {
    let Some(helm) = helm_or_note() else { return };
    for values in chart_ci_values() {
        let what = format!(
            "chart with {}",
            values.file_name().expect("file").to_string_lossy()
        );
        helm_lint(&helm, std::slice::from_ref(&values), &[]).unwrap_or_else(|e| panic!("{what}: {e}"));
        let yaml = helm_template(&helm, "regcreds", std::slice::from_ref(&values), &[])
            .unwrap_or_else(|e| panic!("{e}"));
        let objects = parse(&yaml, &what);
        assert_locked_down(&objects, the(&objects, "Deployment", &what), &what);
        assert_least_privilege(&objects, &what);
    }
}

#[test]
fn the_chart_refuses_settings_that_cannot_work() {
    let Some(helm) = helm_or_note() else { return };
    let cases: &[(&[&str], &str)] = &[
        (&[], "enable at least one provider"),
        (
            &[
                "providers.dockerhub.enabled=true",
                "providers.dockerhub.existingSecret=x",
                "replicaCount=2",
                "leaderElection.enabled=false",
            ],
            "needs leaderElection.enabled=true",
        ),
        (
            &[
                "providers.static.enabled=true",
                "providers.static.existingSecret=x",
            ],
            "providers.static.server is required",
        ),
        (
            &["providers.ecr.enabled=true"],
            "providers.ecr.regions needs at least one region",
        ),
        (
            &[
                "providers.acr.enabled=true",
                "providers.acr.registry=r.azurecr.io",
            ],
            "providers.acr.existingSecret is required",
        ),
        (
            &[
                "providers.acr.enabled=true",
                "providers.acr.registry=r.azurecr.io",
                "providers.acr.auth=sideways",
            ],
            "auth",
        ),
        (
            &["providers.ghcr.enabled=true", "providers.ghcr.existingSecret=x"],
            "providers.ghcr.appId and providers.ghcr.installationId are required",
        ),
        (
            &[
                "providers.ghcr.enabled=true",
                "providers.ghcr.appId=1",
                "providers.ghcr.installationId=2",
            ],
            "providers.ghcr.existingSecret is required",
        ),
        (
            &[
                "providers.ghcr.enabled=true",
                "providers.ghcr.appId=1",
                "providers.ghcr.installationId=2",
                "providers.ghcr.existingSecret=gh",
                "checks.images={registry.example.com/team/app:1}",
            ],
            "providers.ghcr needs a probe image on ghcr.io in checks.images (REGCREDS_CHECK_IMAGES)",
        ),
        (
            &[
                "providers.ghcr.enabled=true",
                "providers.ghcr.appId=1",
                "providers.ghcr.installationId=2",
                "providers.ghcr.existingSecret=gh",
                "providers.ghcr.registry=containers.ghe.example",
                "checks.images={ghcr.io/my-org/app:1}",
            ],
            "providers.ghcr needs a probe image on containers.ghe.example",
        ),
        (
            &["providers.quay.enabled=true"],
            "providers.quay.robot is required",
        ),
        // values.schema.json: a misspelt key is an error, not a silently ignored setting.
        (
            &[
                "providers.dockerhub.enabled=true",
                "providers.dockerhub.existingsecret=x",
            ],
            "existingsecret",
        ),
        (&["logFormat=yaml"], "logFormat"),
    ];
    for (sets, message) in cases {
        match helm_template(&helm, "regcreds", &[], sets) {
            Ok(_) => panic!("helm template {sets:?} rendered; expected an error containing {message:?}"),
            Err(e) => assert!(
                e.contains(message),
                "helm template {sets:?}: expected {message:?} in\n{e}"
            ),
        }
    }
}

#[tokio::test]
async fn the_chart_renders_for_a_server_side_dry_run_under_the_restricted_pod_standard() {
    let Some(helm) = helm_or_note() else { return };
    let cp = ControlPlane::shared().await;
    // Its own namespace, restricted like deploy/base's, so no other test's labels matter.
    let namespace = "regcreds-helm";
    restricted_namespace(cp, namespace).await;
    for values in chart_ci_values() {
        let what = format!("chart with {}", values.display());
        let yaml = helm_template(&helm, namespace, &[values], &[]).unwrap_or_else(|e| panic!("{e}"));
        dry_run(cp, &parse(&yaml, &what), &what).await;
    }
}
