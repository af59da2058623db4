//! The chart's plugin mode (issue #27): `kubeletPlugin.enabled` renders a DaemonSet that installs the
//! regcreds binary and a generated `CredentialProviderConfig` on every node, `secretMode.enabled=false`
//! leaves the Secret-mode objects out. What the chart renders:
//!
//! - off by default: no DaemonSet, nothing changes for Secret mode;
//! - the DaemonSet is as hardened as a hostPath writer can be: only the install container is root, and it
//!   has no capabilities, no privilege escalation, a read-only root filesystem and no API token;
//! - matchImages derived from the providers' values, and settings that cannot work refused naming the
//!   value;
//! - server-side dry runs against the test control plane: admitted in a namespace enforcing the
//!   "privileged" Pod Security level, refused (hostPath) under "baseline" and "restricted".
//!
//! The install script run as in the pod, and the example config for nodes set up by hand:
//! `kubelet_plugin_install.rs`. ServiceAccount token mode (`kubeletPlugin.tokenAttributes`) and its RBAC
//! grant: `kubelet_plugin_token_mode.rs`. The rendering helpers they share: `manifests::kubelet_plugin`.
//!
//! Without helm these checks print a note and pass (under `CI` they fail).

use std::{
    collections::{BTreeMap, BTreeSet},
    path::Path,
};

use regcreds_testkit::{
    ControlPlane,
    manifests::{
        KNOWN_ENV, ONE_PROVIDER, PLUGIN, arr, chart_ci_values, config_head, dry_run, dry_run_pod, env,
        env_value, helm_lint, helm_or_note, helm_template, init_container, kind, name, namespace_enforcing,
        parse, plugin_config_map, render_chart_err, render_chart_in, render_plugin, repo, s, the,
    },
};
use serde_json::{Value, json};

/// Every container and init container of a workload's pod.
fn all_containers(workload: &Value) -> Vec<&Value> {
    arr(workload, "/spec/template/spec/initContainers")
        .iter()
        .chain(arr(workload, "/spec/template/spec/containers"))
        .collect()
}

/// The `matchImages` the chart derives for `sets` (on top of [`PLUGIN`]).
fn match_images(helm: &Path, sets: &[&str]) -> Vec<String> {
    let head = config_head(&render_plugin(helm, sets));
    arr(&head, "/providers/0/matchImages")
        .iter()
        .map(|m| m.as_str().expect("string").to_string())
        .collect()
}

// === off by default ===

#[test]
fn the_plugin_is_off_by_default_and_nothing_of_it_is_rendered() {
    let Some(helm) = helm_or_note() else { return };
    let mut rendered = vec![(
        "one provider".to_string(),
        render_chart_in(&helm, "regcreds", &ONE_PROVIDER),
    )];
    for values in chart_ci_values() {
        let yaml = helm_template(&helm, "regcreds", std::slice::from_ref(&values), &[])
            .unwrap_or_else(|e| panic!("{e}"));
        rendered.push((values.display().to_string(), parse(&yaml, "ci values")));
    }
    for (what, objects) in rendered {
        assert!(
            !objects.iter().any(|o| kind(o) == "DaemonSet"),
            "{what}: no DaemonSet without kubeletPlugin.enabled"
        );
        assert!(
            !objects.iter().any(|o| name(o).ends_with("-kubelet-plugin")),
            "{what}: nothing of the plugin"
        );
        the(&objects, "Deployment", &what);
    }
}

// === the DaemonSet ===

#[test]
fn the_daemonset_is_as_hardened_as_a_host_path_writer_can_be() {
    let Some(helm) = helm_or_note() else { return };
    let objects = render_plugin(&helm, &["commonLabels.team=platform"]);
    helm_lint(&helm, &[], &PLUGIN).unwrap_or_else(|e| panic!("{e}"));
    let ds = the(&objects, "DaemonSet", "plugin");
    let deployment = the(&objects, "Deployment", "plugin");
    let pod = ds.pointer("/spec/template/spec").expect("pod spec");
    assert_eq!(s(ds, "/metadata/namespace"), "regcreds");

    // Its pods are not the Deployment's: neither selector selects the other's pods.
    let selects = |selector: &Value, labels: &Value| {
        selector
            .as_object()
            .expect("matchLabels")
            .iter()
            .all(|(k, v)| labels.get(k) == Some(v))
    };
    let ds_labels = ds.pointer("/spec/template/metadata/labels").expect("labels");
    let dep_labels = deployment
        .pointer("/spec/template/metadata/labels")
        .expect("labels");
    let ds_selector = ds.pointer("/spec/selector/matchLabels").expect("selector");
    let dep_selector = deployment
        .pointer("/spec/selector/matchLabels")
        .expect("selector");
    assert!(selects(ds_selector, ds_labels), "the DaemonSet selects its pods");
    assert!(
        !selects(dep_selector, ds_labels),
        "the Deployment's selector skips them"
    );
    assert!(!selects(ds_selector, dep_labels), "and the other way round");
    for o in [ds, plugin_config_map(&objects)] {
        assert_eq!(
            s(o, "/metadata/labels/team"),
            "platform",
            "{}: commonLabels",
            name(o)
        );
    }
    assert_eq!(s(ds_labels, "/team"), "platform", "commonLabels on the pods");

    // The pod: no API token, no host namespaces, RuntimeDefault seccomp.
    assert_eq!(pod.get("automountServiceAccountToken"), Some(&json!(false)));
    for host in ["hostNetwork", "hostPID", "hostIPC"] {
        assert_ne!(pod.get(host), Some(&json!(true)), "{host}");
    }
    assert_eq!(s(pod, "/securityContext/seccompProfile/type"), "RuntimeDefault");
    assert_eq!(
        arr(pod, "/tolerations"),
        [json!({"operator": "Exists"})],
        "every node that pulls images"
    );
    assert_eq!(s(pod, "/nodeSelector/kubernetes.io~1os"), "linux");

    // Every container: no escalation, no capabilities, read-only root, resources; only `install` is root.
    let names: Vec<&str> = all_containers(ds).iter().map(|c| s(c, "/name")).collect();
    assert_eq!(names, ["install", "pause"]);
    // One image, regcreds', running its own subcommands: nothing else to pull or mirror.
    for (c, subcommand) in all_containers(ds).iter().zip(["install", "pause"]) {
        let deployment_container = &arr(deployment, "/spec/template/spec/containers")[0];
        assert_eq!(
            s(c, "/image"),
            s(deployment_container, "/image"),
            "{}",
            s(c, "/name")
        );
        assert_eq!(
            arr(c, "/command"),
            [json!("/regcreds"), json!("kubelet-plugin"), json!(subcommand)]
        );
    }
    for c in all_containers(ds) {
        let what = format!("container {}", s(c, "/name"));
        let sc = c.get("securityContext").expect("securityContext");
        assert_eq!(sc.get("allowPrivilegeEscalation"), Some(&json!(false)), "{what}");
        assert_eq!(sc.get("readOnlyRootFilesystem"), Some(&json!(true)), "{what}");
        assert_ne!(sc.get("privileged"), Some(&json!(true)), "{what}");
        assert_eq!(arr(sc, "/capabilities/drop"), [json!("ALL")], "{what}");
        assert!(arr(sc, "/capabilities/add").is_empty(), "{what}");
        assert_eq!(s(sc, "/seccompProfile/type"), "RuntimeDefault", "{what}");
        for bound in ["requests", "limits"] {
            for resource in ["cpu", "memory"] {
                assert!(
                    c.pointer(&format!("/resources/{bound}/{resource}")).is_some(),
                    "{what}: {bound}.{resource}"
                );
            }
        }
        if s(c, "/name") == "install" {
            assert_eq!(
                sc.get("runAsUser"),
                Some(&json!(0)),
                "{what}: root, to own the host files"
            );
        } else {
            assert_eq!(sc.get("runAsNonRoot"), Some(&json!(true)), "{what}");
            assert_eq!(sc.get("runAsUser"), Some(&json!(65532)), "{what}");
            assert!(
                arr(c, "/volumeMounts")
                    .iter()
                    .all(|m| !s(m, "/name").starts_with("host-"))
            );
        }
    }

    // Exactly two hostPath volumes, the kubelet's directories, mounted at the same paths into `install`.
    let host_paths: BTreeMap<&str, &str> = arr(pod, "/volumes")
        .iter()
        .filter_map(|v| Some((s(v, "/name"), v.pointer("/hostPath/path")?.as_str()?)))
        .collect();
    assert_eq!(
        host_paths,
        BTreeMap::from([
            ("host-bin", "/var/lib/regcreds/bin"),
            ("host-config", "/var/lib/regcreds")
        ])
    );
    for v in arr(pod, "/volumes")
        .iter()
        .filter(|v| v.get("hostPath").is_some())
    {
        assert_eq!(s(v, "/hostPath/type"), "DirectoryOrCreate");
    }
    let install = init_container(ds, "install");
    for (volume, path) in &host_paths {
        assert!(
            arr(install, "/volumeMounts")
                .iter()
                .any(|m| s(m, "/name") == *volume && s(m, "/mountPath") == *path),
            "{volume} at {path}"
        );
    }
    assert_eq!(env_value(install, "PLUGIN_BIN_DIR"), "/var/lib/regcreds/bin");
    assert_eq!(env_value(install, "PLUGIN_CONFIG_DIR"), "/var/lib/regcreds");
    // The regcreds image's binary, at the path the Dockerfile puts it.
    let deployment_image = arr(deployment, "/spec/template/spec/containers")[0]
        .get("image")
        .and_then(Value::as_str);
    assert_eq!(
        s(install, "/image"),
        deployment_image.expect("the Deployment's image")
    );
    assert_eq!(env_value(install, "PLUGIN_SOURCE"), "/regcreds");
    let dockerfile = std::fs::read_to_string(repo().join("Dockerfile")).expect("Dockerfile");
    assert!(
        dockerfile.contains(" /regcreds\n"),
        "the Dockerfile installs /regcreds"
    );

    // Credentials reach the install container by secretKeyRef only; the ConfigMap holds none.
    for e in arr(install, "/env") {
        let var = s(e, "/name");
        if var.contains("USER") || var.contains("PASSWORD") || var.contains("SECRET") || var.ends_with("KEY")
        {
            assert!(
                e.pointer("/valueFrom/secretKeyRef/name").is_some(),
                "{var} must come from a Secret: {e}"
            );
        }
    }
    let cm = plugin_config_map(&objects);
    let keys: Vec<&str> = cm
        .get("data")
        .and_then(Value::as_object)
        .expect("data")
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(keys, ["config-head.yaml"]);
    assert_eq!(
        config_head(&objects).pointer("/providers/0/env"),
        None,
        "no env values in the ConfigMap"
    );

    // A change of the config rolls the pods.
    let checksum = |objects: &[Value]| {
        s(
            the(objects, "DaemonSet", "plugin"),
            "/spec/template/metadata/annotations/checksum~1config",
        )
        .to_string()
    };
    assert_ne!(
        checksum(&objects),
        checksum(&render_plugin(&helm, &["kubeletPlugin.defaultCacheDuration=1h"]))
    );

    // The plugin's variables are ones regcreds reads (manifests::KNOWN_ENV, checked against the binary by
    // deploy_variables.rs), for every provider that plugin mode serves.
    let all = render_plugin(
        &helm,
        &[
            "providers.static.enabled=true",
            "providers.static.server=reg.example:5000",
            "providers.static.existingSecret=st",
            "providers.dockerconfigjson.enabled=true",
            "providers.dockerconfigjson.existingSecret=dcj",
            "providers.ecr.enabled=true",
            "providers.ecr.regions={eu-west-1}",
            "providers.ecr.existingSecret=aws",
            "providers.ecr.sessionTokenKey=AWS_SESSION_TOKEN",
            "providers.gcr.enabled=true",
            "providers.gcr.existingSecret=g",
            "providers.acr.enabled=true",
            "providers.acr.registry=r.azurecr.io",
            "providers.acr.tenantId=t",
            "providers.acr.clientId=c",
            "providers.acr.existingSecret=a",
            "providers.ghcr.enabled=true",
            "providers.ghcr.appId=1",
            "providers.ghcr.installationId=2",
            "providers.ghcr.existingSecret=gh",
            "checks.images={ghcr.io/my-org/app:1}",
            "kubeletPlugin.matchImages={registry.example.com}",
        ],
    );
    let install = init_container(the(&all, "DaemonSet", "all providers"), "install");
    let listed: Vec<&str> = env_value(install, "PLUGIN_ENV").split(' ').collect();
    let unknown: Vec<&&str> = listed.iter().filter(|n| !KNOWN_ENV.contains(n)).collect();
    assert!(
        unknown.is_empty(),
        "variables regcreds does not read: {unknown:?}"
    );
    for var in &listed {
        assert!(env(install, &format!("RC_ENV_{var}")).is_some(), "RC_ENV_{var}");
    }
    for secret in [
        "REGCREDS_STATIC_PASSWORD",
        "REGCREDS_DOCKERCONFIGJSON",
        "REGCREDS_DOCKERHUB_PASSWORD",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "REGCREDS_GCR_KEY",
        "REGCREDS_ACR_CLIENT_SECRET",
        "REGCREDS_GHCR_PRIVATE_KEY",
    ] {
        let e = env(install, &format!("RC_ENV_{secret}")).unwrap_or_else(|| panic!("{secret}"));
        assert!(e.pointer("/valueFrom/secretKeyRef").is_some(), "{secret}: {e}");
    }
}

#[test]
fn plugin_mode_alone_renders_the_daemonset_and_its_config_map_only() {
    let Some(helm) = helm_or_note() else { return };
    let objects = render_plugin(
        &helm,
        &[
            "secretMode.enabled=false",
            "replicaCount=2",
            "metrics.service.enabled=true",
            "metrics.podMonitor.enabled=true",
            "metrics.prometheusRule.enabled=true",
            "metrics.dashboard.enabled=true",
            "healPods.enabled=true",
            "networkPolicy.enabled=true",
            "networkPolicy.apiServer.cidrs={10.0.0.10/32}",
        ],
    );
    let kinds: BTreeSet<&str> = objects.iter().map(kind).collect();
    assert_eq!(kinds, BTreeSet::from(["ConfigMap", "DaemonSet"]), "{objects:#?}");
    assert_eq!(objects.len(), 2, "one ConfigMap: the plugin's");
    let extra = render_plugin(&helm, &["kubeletPlugin.namespace=kube-system"]);
    for o in extra.iter().filter(|o| name(o).ends_with("-kubelet-plugin")) {
        assert_eq!(s(o, "/metadata/namespace"), "kube-system", "{}", kind(o));
    }
}

// === matchImages ===

#[test]
fn match_images_are_derived_from_the_providers_values_or_taken_as_given() {
    let Some(helm) = helm_or_note() else { return };
    assert_eq!(
        match_images(&helm, &[]),
        ["docker.io"],
        "Docker Hub: the normalized host"
    );
    let static_server = [
        "providers.static.enabled=true",
        "providers.static.existingSecret=st",
        "kubeletPlugin.providers={static}",
    ];
    for (server, wanted) in [
        ("registry.example.com:5000", "registry.example.com:5000"),
        ("https://registry.example.com/team/", "registry.example.com/team"),
    ] {
        let server = format!("providers.static.server={server}");
        let sets: Vec<&str> = static_server.iter().copied().chain([server.as_str()]).collect();
        assert_eq!(match_images(&helm, &sets), [wanted], "{server}");
    }
    let ecr = ["providers.ecr.enabled=true", "kubeletPlugin.providers={ecr}"];
    let with = |extra: &[&'static str]| -> Vec<&'static str> {
        ecr.iter().copied().chain(extra.iter().copied()).collect()
    };
    assert_eq!(
        match_images(&helm, &with(&["providers.ecr.regions={eu-west-1,cn-north-1}"])),
        [
            "*.dkr.ecr.eu-west-1.amazonaws.com",
            "*.dkr.ecr.cn-north-1.amazonaws.com.cn"
        ]
    );
    let ecr_accounts = ["providers.ecr.regions={us-east-1}", "providers.ecr.public=true"];
    let mut sets = with(&ecr_accounts);
    let accounts = "providers.ecr.accounts=123456789012\\,210987654321";
    sets.push(accounts);
    assert_eq!(
        match_images(&helm, &sets),
        [
            "123456789012.dkr.ecr.us-east-1.amazonaws.com",
            "210987654321.dkr.ecr.us-east-1.amazonaws.com",
            "public.ecr.aws"
        ]
    );
    let gcr = [
        "providers.gcr.enabled=true",
        "providers.gcr.useMetadata=true",
        "kubeletPlugin.providers={gcr}",
    ];
    assert_eq!(match_images(&helm, &gcr), ["gcr.io"], "regcreds' default host");
    let mut sets = gcr.to_vec();
    sets.push("providers.gcr.hosts={europe-docker.pkg.dev,gcr.io}");
    assert_eq!(match_images(&helm, &sets), ["europe-docker.pkg.dev", "gcr.io"]);
    let acr = [
        "providers.acr.enabled=true",
        "providers.acr.auth=managed-identity",
        "providers.acr.registry=a.azurecr.io\\, b.azurecr.io",
        "kubeletPlugin.providers={acr}",
    ];
    assert_eq!(match_images(&helm, &acr), ["a.azurecr.io", "b.azurecr.io"]);
    let ghcr = [
        "providers.ghcr.enabled=true",
        "providers.ghcr.appId=1",
        "providers.ghcr.installationId=2",
        "providers.ghcr.existingSecret=gh",
        "checks.images={ghcr.io/my-org/app:1}",
        "kubeletPlugin.providers={ghcr}",
    ];
    assert_eq!(match_images(&helm, &ghcr), ["ghcr.io"]);
    assert_eq!(
        match_images(
            &helm,
            &["kubeletPlugin.matchImages={*.registry.example.com,registry.example.com:5000/team}"]
        ),
        ["*.registry.example.com", "registry.example.com:5000/team"],
        "as given, instead of docker.io"
    );
}

// === refusals ===

#[test]
fn settings_that_cannot_work_are_refused_naming_the_value() {
    let Some(helm) = helm_or_note() else { return };
    let dcj = [
        "providers.dockerconfigjson.enabled=true",
        "providers.dockerconfigjson.existingSecret=dcj",
        "kubeletPlugin.enabled=true",
    ];
    let hub = PLUGIN;
    let quay = ["providers.quay.enabled=true", "providers.quay.robot=org+bot"];
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (dcj.to_vec(), "kubeletPlugin.matchImages is required"),
        (
            [&quay[..], &["kubeletPlugin.enabled=true"]].concat(),
            "kubeletPlugin.enabled=true, but no enabled provider can serve the kubelet",
        ),
        (
            vec![
                "providers.acr.enabled=true",
                "providers.acr.registry=r.azurecr.io",
                "providers.acr.auth=workload-identity",
                "providers.acr.tenantId=t",
                "providers.acr.clientId=c",
                "kubeletPlugin.enabled=true",
            ],
            "no enabled provider can serve the kubelet",
        ),
        (
            [&hub[..], &["kubeletPlugin.providers={ecr}"]].concat(),
            "kubeletPlugin.providers lists ecr, but providers.ecr.enabled is false",
        ),
        (
            [&hub[..], &quay[..], &["kubeletPlugin.providers={quay}"]].concat(),
            "kubeletPlugin.providers lists quay, which cannot serve the kubelet",
        ),
        (
            [
                &hub[..],
                &[
                    "kubeletPlugin.env[0].name=REGCREDS_DOCKERHUB_PASSWORD",
                    "kubeletPlugin.env[0].value=x",
                ],
            ]
            .concat(),
            "kubeletPlugin.env sets REGCREDS_DOCKERHUB_PASSWORD, which the chart derives",
        ),
        (
            [&ONE_PROVIDER[..], &["secretMode.enabled=false"]].concat(),
            "secretMode.enabled=false leaves only the kubelet plugin: set kubeletPlugin.enabled=true",
        ),
        (
            [&hub[..], &quay[..], &["secretMode.enabled=false"]].concat(),
            "providers.quay is enabled but would serve nothing",
        ),
        // values.schema.json: what the kubelet would refuse, or a host path that is not one.
        (
            [&hub[..], &["kubeletPlugin.defaultCacheDuration=soon"]].concat(),
            "defaultCacheDuration",
        ),
        (
            [&hub[..], &["kubeletPlugin.defaultCacheDuration="]].concat(),
            "defaultCacheDuration",
        ),
        (
            [&hub[..], &["kubeletPlugin.name=a/b"]].concat(),
            "/kubeletPlugin/name",
        ),
        (
            [&hub[..], &["kubeletPlugin.name=.."]].concat(),
            "/kubeletPlugin/name",
        ),
        (
            [
                &hub[..],
                &["kubeletPlugin.matchImages={https://registry.example.com}"],
            ]
            .concat(),
            "matchImages",
        ),
        (
            [&hub[..], &["kubeletPlugin.hostBinDir=relative/bin"]].concat(),
            "hostBinDir",
        ),
        (
            [&hub[..], &["kubeletPlugin.hostConfigDir=/"]].concat(),
            "hostConfigDir",
        ),
        (
            [&hub[..], &["kubeletPlugin.hostConfigDir=/etc/../var"]].concat(),
            "hostConfigDir",
        ),
        (
            [&hub[..], &["kubeletPlugin.configFileName=config.conf"]].concat(),
            "configFileName",
        ),
        (
            [
                &hub[..],
                &["kubeletPlugin.env[0].name=1X", "kubeletPlugin.env[0].value=x"],
            ]
            .concat(),
            "env",
        ),
        ([&hub[..], &["kubeletPlugin.env[0].name=X"]].concat(), "env"),
        (
            [&hub[..], &["kubeletPlugin.providers={nexus}"]].concat(),
            "providers",
        ),
        (
            [&hub[..], &["kubeletPlugin.hostbindir=/x"]].concat(),
            "hostbindir",
        ),
    ];
    for (sets, message) in cases {
        let e = render_chart_err(&helm, &sets);
        assert!(
            e.contains(message),
            "helm template {sets:?}: expected {message:?} in\n{e}"
        );
    }
}

// === against the API server ===

#[tokio::test]
async fn the_plugin_passes_a_server_side_dry_run_where_privileged_pods_are_allowed_and_only_there() {
    let Some(helm) = helm_or_note() else { return };
    let cp = ControlPlane::shared().await;
    let namespace = "regcreds-kubelet-plugin";
    namespace_enforcing(cp, namespace, "privileged");
    for sets in [
        PLUGIN.to_vec(),
        [
            &PLUGIN[..],
            &[
                "secretMode.enabled=false",
                "kubeletPlugin.seLinuxOptions.type=spc_t",
            ],
        ]
        .concat(),
    ] {
        let what = format!("chart with {sets:?}");
        let objects = render_chart_in(&helm, namespace, &sets);
        // Every object, and a pod of each Deployment and Job.
        dry_run(cp, &objects, &what).await;
        let ds = the(&objects, "DaemonSet", &what);
        dry_run_pod(cp, ds).unwrap_or_else(|e| panic!("{what}: the DaemonSet's pod is not admitted: {e}"));
    }
    // hostPath volumes are beyond "baseline" already: the README's advice to pick a privileged namespace.
    for level in ["baseline", "restricted"] {
        let namespace = format!("regcreds-kubelet-plugin-{level}");
        namespace_enforcing(cp, &namespace, level);
        let objects = render_chart_in(&helm, &namespace, &PLUGIN);
        let e = dry_run_pod(cp, the(&objects, "DaemonSet", level)).expect_err(level);
        assert!(e.contains("hostPath"), "{level}: {e}");
    }
}
