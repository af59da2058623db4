//! The chart's kubelet plugin in ServiceAccount token mode (`kubeletPlugin.tokenAttributes`, issue #27):
//! exactly the kubelet's fields, annotation keys derived from the served providers unless given, what the
//! kubelet would refuse refused naming the value, quay and ACR workload identity served only in this mode,
//! and the RBAC grant that lets the kubelets request tokens for the audience (a SubjectAccessReview
//! against the test control plane).
//!
//! The rest of what the chart renders: `deploy_kubelet_plugin.rs`; the `tokenAttributes` the install
//! script writes: `kubelet_plugin_install.rs`.
//!
//! Without helm these checks print a note and pass (under `CI` they fail).

use std::{collections::BTreeSet, path::Path, process::Command};

use regcreds_testkit::{
    ControlPlane,
    manifests::{
        ACR_WI, KNOWN_ENV, PLUGIN, QUAY, arr, config_head, dry_run, dry_run_pod, env_value, helm_lint,
        helm_or_note, init_container, kind, kubectl, kubectl_apply, kubelet_config_problems, name,
        namespace_enforcing, render_chart_err, render_chart_in, render_plugin, run, s, the, token_mode,
    },
};
use serde_json::{Value, json};

// === ServiceAccount token mode (kubeletPlugin.tokenAttributes) ===

/// The provider entry's `tokenAttributes` the chart writes for `sets` (see [`token_mode`]), after checking
/// that the kubelet accepts the config it is part of.
fn token_attributes(helm: &Path, sets: &[&str]) -> Value {
    let sets = token_mode(sets);
    let sets: Vec<&str> = sets.iter().map(String::as_str).collect();
    let head = config_head(&render_plugin(helm, &sets));
    assert_eq!(
        kubelet_config_problems(&head),
        Vec::<String>::new(),
        "{sets:?}: {head}"
    );
    head.pointer("/providers/0/tokenAttributes")
        .cloned()
        .unwrap_or_else(|| panic!("no tokenAttributes with {sets:?}: {head}"))
}

/// The plugin's ClusterRole and ClusterRoleBinding (the kubelets' grant of the token audience).
fn node_grant(objects: &[Value]) -> Vec<Value> {
    objects
        .iter()
        .filter(|o| {
            kind(o).starts_with("ClusterRole")
                && s(o, "/metadata/labels/app.kubernetes.io~1component") == "kubelet-plugin"
        })
        .cloned()
        .collect()
}

#[test]
fn token_mode_is_off_by_default_and_writes_the_kubelets_fields_only_when_set() {
    let Some(helm) = helm_or_note() else { return };
    let objects = render_plugin(&helm, &[]);
    assert_eq!(
        config_head(&objects).pointer("/providers/0/tokenAttributes"),
        None
    );
    assert!(
        node_grant(&objects).is_empty(),
        "no grant for the kubelets without token mode"
    );

    // One provider: the annotation it cannot mint without is required (the kubelet refuses the pull
    // itself, naming it); explicit lists win, even empty ones.
    let ecr = ["providers.ecr.enabled=true", "providers.ecr.regions={eu-west-1}"];
    assert_eq!(
        token_attributes(&helm, &ecr),
        json!({
            "serviceAccountTokenAudience": "sts.amazonaws.com",
            "cacheType": "ServiceAccount",
            "requireServiceAccount": true,
            "requiredServiceAccountAnnotationKeys": ["eks.amazonaws.com/role-arn"],
        })
    );
    let role = [
        "kubeletPlugin.env[0].name=REGCREDS_ECR_ROLE_ANNOTATION",
        "kubeletPlugin.env[0].value=example.com/ecr-role",
    ];
    assert_eq!(
        token_attributes(&helm, &[&ecr[..], &role[..]].concat())["requiredServiceAccountAnnotationKeys"],
        json!(["example.com/ecr-role"]),
        "the annotation regcreds is told to read"
    );
    let without_service_account = [
        &ecr[..],
        &["kubeletPlugin.tokenAttributes.requireServiceAccount=false"],
    ]
    .concat();
    assert_eq!(
        token_attributes(&helm, &without_service_account),
        json!({
            "serviceAccountTokenAudience": "sts.amazonaws.com",
            "cacheType": "ServiceAccount",
            "requireServiceAccount": false,
            "optionalServiceAccountAnnotationKeys": ["eks.amazonaws.com/role-arn"],
        }),
        "without requireServiceAccount nothing can be required"
    );
    let explicit = [
        &ecr[..],
        &["kubeletPlugin.tokenAttributes.requiredServiceAccountAnnotationKeys={example.com/team}"],
    ]
    .concat();
    let ta = token_attributes(&helm, &explicit);
    assert_eq!(
        ta["requiredServiceAccountAnnotationKeys"],
        json!(["example.com/team"])
    );
    assert_eq!(
        ta["optionalServiceAccountAnnotationKeys"],
        json!(["eks.amazonaws.com/role-arn"]),
        "the list not given is still derived"
    );
    let moved = [
        &ecr[..],
        &["kubeletPlugin.tokenAttributes.optionalServiceAccountAnnotationKeys={eks.amazonaws.com/role-arn}"],
    ]
    .concat();
    let ta = token_attributes(&helm, &moved);
    assert_eq!(ta.get("requiredServiceAccountAnnotationKeys"), None, "{ta}");
    assert_eq!(
        ta["optionalServiceAccountAnnotationKeys"],
        json!(["eks.amazonaws.com/role-arn"])
    );

    // ACR alone: client-id required, tenant-id too unless the values name the tenant.
    assert_eq!(
        token_attributes(&helm, &ACR_WI)["requiredServiceAccountAnnotationKeys"],
        json!([
            "azure.workload.identity/client-id",
            "azure.workload.identity/tenant-id"
        ])
    );
    let ta = token_attributes(&helm, &[&ACR_WI[..], &["providers.acr.tenantId=t"]].concat());
    assert_eq!(
        ta["requiredServiceAccountAnnotationKeys"],
        json!(["azure.workload.identity/client-id"])
    );
    assert_eq!(
        ta["optionalServiceAccountAnnotationKeys"],
        json!(["azure.workload.identity/tenant-id"])
    );

    // Several providers: every key optional, so that a pod without one still gets the others' answers.
    let several = [
        &ecr[..],
        &ACR_WI[..],
        &QUAY[..],
        &[
            "providers.dockerhub.enabled=true",
            "providers.gcr.enabled=true",
            "providers.gcr.useMetadata=true",
            "kubeletPlugin.env[0].name=REGCREDS_GCR_WORKLOAD_IDENTITY_PROVIDER",
            "kubeletPlugin.env[0].value=//iam.googleapis.com/projects/1/locations/global/workloadIdentityPools/p/providers/k",
            "kubeletPlugin.env[1].name=REGCREDS_QUAY_ROBOT_ANNOTATION",
            "kubeletPlugin.env[1].value=regcreds.dev/quay-robot",
        ],
    ]
    .concat();
    let ta = token_attributes(&helm, &several);
    assert_eq!(ta.get("requiredServiceAccountAnnotationKeys"), None, "{ta}");
    assert_eq!(
        ta["optionalServiceAccountAnnotationKeys"],
        json!([
            "eks.amazonaws.com/role-arn",
            "azure.workload.identity/client-id",
            "azure.workload.identity/tenant-id",
            "iam.gke.io/gcp-service-account",
            "regcreds.dev/quay-robot",
        ])
    );
    // Providers without a pod identity add nothing.
    let hub_only = ["providers.dockerhub.enabled=true"];
    let ta = token_attributes(&helm, &hub_only);
    assert_eq!(ta.get("requiredServiceAccountAnnotationKeys"), None, "{ta}");
    assert_eq!(ta.get("optionalServiceAccountAnnotationKeys"), None, "{ta}");

    // The grant the NodeRestriction admission plugin wants for the audience, with rbac.create only.
    let sets = token_mode(&ecr);
    let sets: Vec<&str> = sets.iter().map(String::as_str).collect();
    let objects = render_plugin(&helm, &sets);
    let grant = node_grant(&objects);
    let role = the(&grant, "ClusterRole", "token mode");
    assert_eq!(
        role["rules"],
        json!([{
            "apiGroups": [""],
            "resources": ["sts.amazonaws.com"],
            "verbs": ["request-serviceaccounts-token-audience"],
        }])
    );
    let binding = the(&grant, "ClusterRoleBinding", "token mode");
    assert_eq!(s(binding, "/roleRef/name"), name(role));
    assert_eq!(
        binding["subjects"],
        json!([{"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": "system:nodes"}])
    );
    let without_rbac = render_plugin(&helm, &[&sets[..], &["rbac.create=false"]].concat());
    assert!(
        node_grant(&without_rbac).is_empty(),
        "rbac.create=false: yours to grant"
    );
    helm_lint(&helm, &[], &[&PLUGIN[..], &sets[..]].concat()).unwrap_or_else(|e| panic!("{e}"));
}

#[test]
fn quay_and_acr_workload_identity_serve_the_kubelet_only_in_token_mode() {
    let Some(helm) = helm_or_note() else { return };
    for provider in [&QUAY[..], &ACR_WI[..]] {
        // Without tokenAttributes: refused as the only provider (deploy_kubelet_plugin.rs,
        // settings_that_cannot_work_...), and skipped next to another one.
        let objects = render_plugin(&helm, provider);
        let install = init_container(the(&objects, "DaemonSet", "plugin"), "install");
        let listed = env_value(install, "PLUGIN_ENV");
        assert!(
            !listed.contains("QUAY") && !listed.contains("ACR"),
            "{provider:?} without token mode: {listed}"
        );
        // With it: served, alone and with Secret mode off.
        let sets = token_mode(&[provider, &["secretMode.enabled=false"]].concat());
        let sets: Vec<&str> = sets.iter().map(String::as_str).collect();
        let objects = render_plugin(&helm, &sets);
        let kinds: BTreeSet<&str> = objects.iter().map(kind).collect();
        assert_eq!(
            kinds,
            BTreeSet::from(["ClusterRole", "ClusterRoleBinding", "ConfigMap", "DaemonSet"]),
            "{provider:?}"
        );
        let install = init_container(the(&objects, "DaemonSet", "plugin"), "install");
        let listed: Vec<&str> = env_value(install, "PLUGIN_ENV").split(' ').collect();
        for var in &listed {
            assert!(KNOWN_ENV.contains(var), "{var}: not a variable regcreds reads");
        }
        if provider == QUAY {
            assert_eq!(
                listed,
                ["REGCREDS_QUAY_ROBOT", "REGCREDS_QUAY_REGISTRY"],
                "the pod's token comes with each request: no token file"
            );
            assert_eq!(env_value(install, "RC_ENV_REGCREDS_QUAY_ROBOT"), "org+bot");
            assert_eq!(env_value(install, "RC_ENV_REGCREDS_QUAY_REGISTRY"), "quay.io");
            let head = config_head(&objects);
            assert_eq!(arr(&head, "/providers/0/matchImages"), [json!("quay.io")]);
        } else {
            assert_eq!(listed, ["REGCREDS_ACR_REGISTRY", "REGCREDS_ACR_AUTH"]);
            assert_eq!(
                env_value(install, "RC_ENV_REGCREDS_ACR_AUTH"),
                "workload-identity"
            );
        }
    }
    // Both, listed in kubeletPlugin.providers: each one's registry in matchImages, in the listed order.
    let sets = token_mode(&[&QUAY[..], &ACR_WI[..], &["kubeletPlugin.providers={quay,acr}"]].concat());
    let sets: Vec<&str> = sets.iter().map(String::as_str).collect();
    let head = config_head(&render_plugin(&helm, &sets));
    assert_eq!(
        arr(&head, "/providers/0/matchImages"),
        [json!("quay.io"), json!("r.azurecr.io")]
    );
}

#[test]
fn token_mode_settings_the_kubelet_would_refuse_are_refused_naming_the_value() {
    let Some(helm) = helm_or_note() else { return };
    let ecr = ["providers.ecr.enabled=true", "providers.ecr.regions={eu-west-1}"];
    let ta = "kubeletPlugin.tokenAttributes";
    let with = |extra: &[&str]| -> Vec<String> { token_mode(&[&ecr[..], extra].concat()) };
    let cases: Vec<(Vec<String>, String)> = vec![
        // values.schema.json: required fields, types, enum, key syntax, duplicates, unknown fields.
        (
            ecr.iter()
                .chain(&PLUGIN)
                .chain(&["kubeletPlugin.tokenAttributes.serviceAccountTokenAudience=sts.amazonaws.com"])
                .map(|s| s.to_string())
                .collect(),
            "at '/kubeletPlugin/tokenAttributes': missing properties 'cacheType', 'requireServiceAccount'"
                .into(),
        ),
        (
            with(&[&format!("{ta}.serviceAccountTokenAudience=")]),
            "/kubeletPlugin/tokenAttributes/serviceAccountTokenAudience".into(),
        ),
        (
            with(&[&format!("{ta}.cacheType=Pod")]),
            "/kubeletPlugin/tokenAttributes/cacheType".into(),
        ),
        (
            with(&[&format!("{ta}.requireServiceAccount=yes")]),
            "/kubeletPlugin/tokenAttributes/requireServiceAccount".into(),
        ),
        (
            with(&[&format!("{ta}.cachetype=Token")]),
            "'cachetype' not allowed".into(),
        ),
        (
            with(&[&format!("{ta}.optionalServiceAccountAnnotationKeys={{a/b/c}}")]),
            "/kubeletPlugin/tokenAttributes/optionalServiceAccountAnnotationKeys/0".into(),
        ),
        (
            with(&[&format!(
                "{ta}.requiredServiceAccountAnnotationKeys={{x.io/a,x.io/a}}"
            )]),
            "/kubeletPlugin/tokenAttributes/requiredServiceAccountAnnotationKeys".into(),
        ),
        // The template: combinations, and what the schema cannot say.
        (
            with(&[
                &format!("{ta}.requireServiceAccount=false"),
                &format!("{ta}.requiredServiceAccountAnnotationKeys={{example.com/team}}"),
            ]),
            format!(
                "{ta}.requiredServiceAccountAnnotationKeys [\"example.com/team\"] needs requireServiceAccount=true"
            ),
        ),
        (
            with(&[
                &format!("{ta}.requiredServiceAccountAnnotationKeys={{example.com/team}}"),
                &format!("{ta}.optionalServiceAccountAnnotationKeys={{example.com/team}}"),
            ]),
            format!(
                "{ta}: [\"example.com/team\"] in both requiredServiceAccountAnnotationKeys and optionalServiceAccountAnnotationKeys"
            ),
        ),
        (
            with(&[&format!(
                "{ta}.optionalServiceAccountAnnotationKeys={{{}/n}}",
                "a.".repeat(127) + "b"
            )]),
            format!(
                "{ta}.optionalServiceAccountAnnotationKeys: \"{}/n\" is not an annotation key",
                "a.".repeat(127) + "b"
            ),
        ),
        (
            with(&[
                "kubeletPlugin.env[0].name=REGCREDS_ECR_ROLE_ANNOTATION",
                "kubeletPlugin.env[0].value=not/an/annotation",
            ]),
            "kubeletPlugin.env REGCREDS_ECR_ROLE_ANNOTATION=\"not/an/annotation\" is not an annotation key"
                .into(),
        ),
        (
            with(&[
                "kubeletPlugin.env[0].name=REGCREDS_ECR_ROLE_ANNOTATION",
                "kubeletPlugin.env[0].valueFrom.secretKeyRef.name=s",
                "kubeletPlugin.env[0].valueFrom.secretKeyRef.key=k",
            ]),
            "kubeletPlugin.env sets REGCREDS_ECR_ROLE_ANNOTATION from a Secret".into(),
        ),
        (
            token_mode(&[&QUAY[..], &[&format!("{ta}.requireServiceAccount=false")]].concat()),
            format!("{ta}.requireServiceAccount=false, but the plugin serves providers.quay"),
        ),
        (
            token_mode(&[&ACR_WI[..], &[&format!("{ta}.requireServiceAccount=false")]].concat()),
            format!("{ta}.requireServiceAccount=false, but the plugin serves providers.acr"),
        ),
    ];
    for (sets, message) in cases {
        let sets: Vec<&str> = sets.iter().map(String::as_str).collect();
        let sets: Vec<&str> = PLUGIN.iter().copied().chain(sets).collect();
        let e = render_chart_err(&helm, &sets);
        assert!(
            e.contains(&message),
            "helm template {sets:?}: expected {message:?} in\n{e}"
        );
    }
}

// === against the API server ===

/// Whether `user` in group `system:nodes` may request ServiceAccount tokens for `audience` (the
/// NodeRestriction admission plugin's question, `validateNodeServiceAccountAudience`), by a
/// SubjectAccessReview.
fn node_may_request_audience(cp: &ControlPlane, audience: &str) -> bool {
    let review = json!({
        "apiVersion": "authorization.k8s.io/v1",
        "kind": "SubjectAccessReview",
        "spec": {
            "user": "system:node:regcreds-test-node",
            "groups": ["system:nodes", "system:authenticated"],
            "resourceAttributes": {
                "group": "",
                "resource": audience,
                "verb": "request-serviceaccounts-token-audience",
                "namespace": "default",
                "name": "default",
            },
        },
    });
    let mut cmd = Command::new(kubectl());
    cmd.arg("--kubeconfig")
        .arg(cp.kubeconfig_path())
        .args(["create", "-o", "json", "-f", "-"]);
    let out = run(cmd, Some(&review.to_string())).unwrap_or_else(|e| panic!("{e}"));
    let review: Value = serde_json::from_str(&out).expect("SubjectAccessReview");
    review.pointer("/status/allowed") == Some(&json!(true))
}

#[tokio::test]
async fn the_token_audience_grant_lets_every_kubelet_request_tokens_for_that_audience_only() {
    let Some(helm) = helm_or_note() else { return };
    let cp = ControlPlane::shared().await;
    let namespace = "regcreds-kubelet-plugin";
    namespace_enforcing(cp, namespace, "privileged");
    // An audience with the characters the clouds' audiences have (ACR: api://AzureADTokenExchange).
    let audience = "api://regcreds-test.example/token-exchange";
    let audience_set = format!("kubeletPlugin.tokenAttributes.serviceAccountTokenAudience={audience}");
    let sets = token_mode(
        &[
            &ACR_WI[..],
            &[
                audience_set.as_str(),
                "secretMode.enabled=false",
                "fullnameOverride=regcreds-token-grant-test",
            ],
        ]
        .concat(),
    );
    let sets: Vec<&str> = PLUGIN
        .iter()
        .copied()
        .chain(sets.iter().map(String::as_str))
        .collect();
    let objects = render_chart_in(&helm, namespace, &sets);
    dry_run(cp, &objects, "token mode").await;
    dry_run_pod(cp, the(&objects, "DaemonSet", "token mode"))
        .unwrap_or_else(|e| panic!("the DaemonSet's pod is not admitted: {e}"));

    let grant = node_grant(&objects);
    assert_eq!(grant.len(), 2, "{grant:#?}");
    assert!(
        !node_may_request_audience(cp, audience),
        "the kubelets may already request {audience}: the check below would prove nothing"
    );
    kubectl_apply(cp.kubeconfig_path(), &grant, false).unwrap_or_else(|e| panic!("{e}"));
    let allowed = node_may_request_audience(cp, audience);
    let other = node_may_request_audience(cp, "sts.amazonaws.com");
    let mut delete = Command::new(kubectl());
    delete
        .arg("--kubeconfig")
        .arg(cp.kubeconfig_path())
        .args(["delete", "--ignore-not-found", "-f", "-"]);
    let list = json!({"apiVersion": "v1", "kind": "List", "items": grant});
    run(delete, Some(&list.to_string())).unwrap_or_else(|e| panic!("{e}"));
    assert!(
        allowed,
        "the chart's grant lets a kubelet request tokens for {audience}"
    );
    assert!(!other, "and for no other audience");
}
