//! The chart's plugin mode (issue #27): `kubeletPlugin.enabled` renders a DaemonSet that installs the
//! regcreds binary and a generated `CredentialProviderConfig` on every node, `secretMode.enabled=false`
//! leaves the Secret-mode objects out.
//!
//! - off by default: no DaemonSet, nothing changes for Secret mode;
//! - the DaemonSet is as hardened as a hostPath writer can be: only the install container is root, and it
//!   has no capabilities, no privilege escalation, a read-only root filesystem and no API token;
//! - the install script (`files/kubelet-plugin-install.sh`) is run here as in the pod — busybox applets
//!   only, exactly those the DaemonSet's `tools` init container links — against temporary directories,
//!   and the file it writes is checked the way the kubelet checks it (`manifests::kubelet_config_problems`:
//!   strict decoding, then `validateCredentialProviderConfig` of
//!   `k8s.io/kubernetes@v1.37.2/pkg/credentialprovider/plugin/config.go`);
//! - matchImages derived from the providers' values, and settings that cannot work refused naming the
//!   value;
//! - ServiceAccount token mode (`kubeletPlugin.tokenAttributes`): exactly the kubelet's fields, annotation
//!   keys derived from the served providers unless given, what the kubelet would refuse refused naming the
//!   value, quay and ACR workload identity served only in this mode, and the RBAC grant that lets the
//!   kubelets request tokens for the audience (a SubjectAccessReview against the test control plane);
//! - server-side dry runs against the test control plane: admitted in a namespace enforcing the
//!   "privileged" Pod Security level, refused (hostPath) under "baseline" and "restricted".
//!
//! Without helm these checks print a note and pass (under `CI` they fail); without busybox the script runs
//! under `/bin/sh` with the system's tools (a note says so).

use std::{
    collections::{BTreeMap, BTreeSet},
    os::unix::fs::{PermissionsExt, symlink},
    path::{Path, PathBuf},
    process::Command,
};

use regcreds_testkit::{
    ControlPlane,
    manifests::{
        CHART, KNOWN_ENV, ONE_PROVIDER, arr, chart_ci_values, dry_run, helm_lint, helm_or_note,
        helm_template, in_path, kind, kubectl, kubectl_apply, kubelet_config_problems, name, parse, repo,
        run, s, the,
    },
};
use serde_json::{Value, json};

// === rendering ===

/// `sets` on top of [`ONE_PROVIDER`] (Docker Hub) and `kubeletPlugin.enabled=true`.
const PLUGIN: [&str; 3] = [
    "providers.dockerhub.enabled=true",
    "providers.dockerhub.existingSecret=regcreds-dockerhub",
    "kubeletPlugin.enabled=true",
];

/// The chart rendered in `namespace` with `sets`.
fn render_in(helm: &Path, namespace: &str, sets: &[&str]) -> Vec<Value> {
    let yaml = helm_template(helm, namespace, &[], sets).unwrap_or_else(|e| panic!("{e}"));
    parse(&yaml, &format!("chart with {sets:?}"))
}

/// The chart with the plugin on, Docker Hub and `sets`.
fn render(helm: &Path, sets: &[&str]) -> Vec<Value> {
    let sets: Vec<&str> = PLUGIN.iter().chain(sets).copied().collect();
    render_in(helm, "regcreds", &sets)
}

/// The error of rendering `sets` (panics if they render).
fn render_err(helm: &Path, sets: &[&str]) -> String {
    match helm_template(helm, "regcreds", &[], sets) {
        Ok(_) => panic!("helm template {sets:?} rendered; expected an error"),
        Err(e) => e,
    }
}

/// The plugin's ConfigMap (the one carrying the install script).
fn plugin_config_map(objects: &[Value]) -> &Value {
    objects
        .iter()
        .find(|o| kind(o) == "ConfigMap" && o.pointer("/data/install.sh").is_some())
        .expect("the plugin's ConfigMap")
}

/// Init container `wanted` of a workload.
fn init_container<'a>(workload: &'a Value, wanted: &str) -> &'a Value {
    arr(workload, "/spec/template/spec/initContainers")
        .iter()
        .find(|c| s(c, "/name") == wanted)
        .unwrap_or_else(|| panic!("{} has no init container {wanted}", name(workload)))
}

/// Every container and init container of a workload's pod.
fn all_containers(workload: &Value) -> Vec<&Value> {
    arr(workload, "/spec/template/spec/initContainers")
        .iter()
        .chain(arr(workload, "/spec/template/spec/containers"))
        .collect()
}

/// A container's env entry `var`.
fn env<'a>(c: &'a Value, var: &str) -> Option<&'a Value> {
    arr(c, "/env").iter().find(|e| s(e, "/name") == var)
}

/// The literal value of a container's env entry `var` (panics when absent or not a literal).
fn env_value<'a>(c: &'a Value, var: &str) -> &'a str {
    env(c, var)
        .and_then(|e| e.get("value"))
        .and_then(Value::as_str)
        .unwrap_or_else(|| panic!("{var} has no literal value in {c}"))
}

/// The config file's head as rendered into the ConfigMap, parsed.
fn config_head(objects: &[Value]) -> Value {
    let head = s(plugin_config_map(objects), "/data/config-head.yaml");
    serde_saphyr::from_str(head).unwrap_or_else(|e| panic!("config-head.yaml is not YAML: {e}\n{head}"))
}

/// The `matchImages` the chart derives for `sets` (on top of [`PLUGIN`]).
fn match_images(helm: &Path, sets: &[&str]) -> Vec<String> {
    let head = config_head(&render(helm, sets));
    arr(&head, "/providers/0/matchImages")
        .iter()
        .map(|m| m.as_str().expect("string").to_string())
        .collect()
}

// === the example for nodes set up by hand ===

#[test]
fn the_example_config_passes_the_kubelets_checks_and_names_variables_regcreds_reads() {
    let path = repo().join("config/kubelet-credential-provider.yaml");
    let text = std::fs::read_to_string(&path).expect("config/kubelet-credential-provider.yaml");
    let config: Value = serde_saphyr::from_str(&text).expect("YAML");
    assert_eq!(kubelet_config_problems(&config), Vec::<String>::new());
    assert_eq!(s(&config, "/providers/0/name"), "regcreds");
    assert_eq!(arr(&config, "/providers/0/args"), [json!("credential-provider")]);
    for e in arr(&config, "/providers/0/env") {
        assert!(KNOWN_ENV.contains(&s(e, "/name")), "{e}");
    }
    // Its commented tokenAttributes block, uncommented, passes too.
    let uncommented = text
        .replace("\n    # tokenAttributes:", "\n    tokenAttributes:")
        .replace("\n    #   ", "\n      ");
    let config: Value = serde_saphyr::from_str(&uncommented).expect("YAML");
    assert_eq!(
        s(
            &config,
            "/providers/0/tokenAttributes/serviceAccountTokenAudience"
        ),
        "sts.amazonaws.com",
        "the commented example is there"
    );
    assert_eq!(kubelet_config_problems(&config), Vec::<String>::new());
}

// === off by default ===

#[test]
fn the_plugin_is_off_by_default_and_nothing_of_it_is_rendered() {
    let Some(helm) = helm_or_note() else { return };
    let mut rendered = vec![(
        "one provider".to_string(),
        render_in(&helm, "regcreds", &ONE_PROVIDER),
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
    let objects = render(&helm, &["commonLabels.team=platform"]);
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
    assert_eq!(names, ["tools", "install", "pause"]);
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
    assert_eq!(keys, ["config-head.yaml", "install.sh"]);
    assert_eq!(
        s(cm, "/data/install.sh"),
        std::fs::read_to_string(repo().join(CHART).join("files/kubelet-plugin-install.sh")).expect("script"),
        "the ConfigMap carries files/kubelet-plugin-install.sh as it is"
    );
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
        checksum(&render(&helm, &["kubeletPlugin.defaultCacheDuration=1h"]))
    );

    // The plugin's variables are ones regcreds reads (manifests::KNOWN_ENV, checked against the binary by
    // deploy_variables.rs), for every provider that plugin mode serves.
    let all = render(
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
    let objects = render(
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
    let extra = render(&helm, &["kubeletPlugin.namespace=kube-system"]);
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
        let e = render_err(&helm, &sets);
        assert!(
            e.contains(message),
            "helm template {sets:?}: expected {message:?} in\n{e}"
        );
    }
}

// === ServiceAccount token mode (kubeletPlugin.tokenAttributes) ===

/// The three fields the kubelet requires in `tokenAttributes`.
const TOKEN_MODE: [&str; 3] = [
    "kubeletPlugin.tokenAttributes.serviceAccountTokenAudience=sts.amazonaws.com",
    "kubeletPlugin.tokenAttributes.cacheType=ServiceAccount",
    "kubeletPlugin.tokenAttributes.requireServiceAccount=true",
];

/// Quay by robot federation (needs a ServiceAccount token).
const QUAY: [&str; 2] = ["providers.quay.enabled=true", "providers.quay.robot=org+bot"];

/// ACR with workload identity (needs a ServiceAccount token).
const ACR_WI: [&str; 3] = [
    "providers.acr.enabled=true",
    "providers.acr.registry=r.azurecr.io",
    "providers.acr.auth=workload-identity",
];

/// `sets` on top of [`PLUGIN`] with Docker Hub off and [`TOKEN_MODE`].
fn token_mode(sets: &[&str]) -> Vec<String> {
    ["providers.dockerhub.enabled=false"]
        .iter()
        .chain(&TOKEN_MODE)
        .chain(sets)
        .map(|s| s.to_string())
        .collect()
}

/// The provider entry's `tokenAttributes` the chart writes for `sets` (see [`token_mode`]), after checking
/// that the kubelet accepts the config it is part of.
fn token_attributes(helm: &Path, sets: &[&str]) -> Value {
    let sets = token_mode(sets);
    let sets: Vec<&str> = sets.iter().map(String::as_str).collect();
    let head = config_head(&render(helm, &sets));
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
    let objects = render(&helm, &[]);
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
    let objects = render(&helm, &sets);
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
    let without_rbac = render(&helm, &[&sets[..], &["rbac.create=false"]].concat());
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
        // Without tokenAttributes: refused as the only provider (settings_that_cannot_work_...), and
        // skipped next to another one.
        let objects = render(&helm, provider);
        let install = init_container(the(&objects, "DaemonSet", "plugin"), "install");
        let listed = env_value(install, "PLUGIN_ENV");
        assert!(
            !listed.contains("QUAY") && !listed.contains("ACR"),
            "{provider:?} without token mode: {listed}"
        );
        // With it: served, alone and with Secret mode off.
        let sets = token_mode(&[provider, &["secretMode.enabled=false"]].concat());
        let sets: Vec<&str> = sets.iter().map(String::as_str).collect();
        let objects = render(&helm, &sets);
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
    let head = config_head(&render(&helm, &sets));
    assert_eq!(
        arr(&head, "/providers/0/matchImages"),
        [json!("quay.io"), json!("r.azurecr.io")]
    );
}

#[test]
fn the_install_script_writes_token_attributes_the_kubelet_accepts() {
    let Some(helm) = helm_or_note() else { return };
    let sets = token_mode(
        &[
            &QUAY[..],
            &ACR_WI[..],
            &[
                "providers.dockerhub.enabled=true",
                "kubeletPlugin.tokenAttributes.serviceAccountTokenAudience=api://AzureADTokenExchange",
                "kubeletPlugin.env[0].name=REGCREDS_QUAY_ROBOT_ANNOTATION",
                "kubeletPlugin.env[0].value=regcreds.dev/quay-robot",
            ],
        ]
        .concat(),
    );
    let sets: Vec<&str> = sets.iter().map(String::as_str).collect();
    let objects = render(&helm, &sets);
    let secrets = BTreeMap::from([
        (("regcreds-dockerhub", "username"), "hubber"),
        (("regcreds-dockerhub", "password"), "dckr_pat_123"),
    ]);
    let host = tempfile::tempdir().expect("host");
    create_host_dirs(&objects, host.path());
    std::fs::write(host.path().join("regcreds"), b"bin").expect("binary");
    run_install(&objects, host.path(), &secrets).unwrap_or_else(|e| panic!("{e}"));
    let path = host
        .path()
        .join("var/lib/regcreds/credential-provider-config.yaml");
    let text = std::fs::read_to_string(&path).expect("config");
    let config: Value = serde_saphyr::from_str(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    assert_eq!(kubelet_config_problems(&config), Vec::<String>::new(), "{text}");
    let provider = &arr(&config, "/providers")[0];
    assert_eq!(
        provider["tokenAttributes"],
        json!({
            "serviceAccountTokenAudience": "api://AzureADTokenExchange",
            "cacheType": "ServiceAccount",
            "requireServiceAccount": true,
            "optionalServiceAccountAnnotationKeys": [
                "azure.workload.identity/client-id",
                "azure.workload.identity/tenant-id",
                "regcreds.dev/quay-robot",
            ],
        })
    );
    let names: Vec<&str> = arr(provider, "/env").iter().map(|e| s(e, "/name")).collect();
    assert_eq!(
        names,
        [
            "REGCREDS_DOCKERHUB_USER",
            "REGCREDS_DOCKERHUB_PASSWORD",
            "REGCREDS_ACR_REGISTRY",
            "REGCREDS_ACR_AUTH",
            "REGCREDS_QUAY_ROBOT",
            "REGCREDS_QUAY_REGISTRY",
            "REGCREDS_QUAY_ROBOT_ANNOTATION",
        ]
    );
    assert_eq!(
        arr(provider, "/matchImages"),
        [json!("docker.io"), json!("r.azurecr.io"), json!("quay.io")]
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
        let e = render_err(&helm, &sets);
        assert!(
            e.contains(&message),
            "helm template {sets:?}: expected {message:?} in\n{e}"
        );
    }
}

// === the install script, run as in the pod ===

/// The applets the DaemonSet's `tools` init container links into /tools.
fn linked_applets(ds: &Value) -> Vec<String> {
    let command = arr(init_container(ds, "tools"), "/command")
        .last()
        .and_then(Value::as_str)
        .expect("tools command");
    let list = command
        .split_once("for applet in ")
        .and_then(|(_, rest)| rest.split_once(';'))
        .expect("for applet in ...;")
        .0;
    list.split_whitespace().map(str::to_string).collect()
}

/// The install container's environment with its host paths under `host`, its PATH the `tools` directory,
/// and each secretKeyRef resolved from `secrets` ((Secret, key) → value), as the kubelet would.
fn install_env(
    install: &Value,
    host: &Path,
    tools: &Path,
    files: &Path,
    secrets: &BTreeMap<(&str, &str), &str>,
) -> Vec<(String, String)> {
    let on_host = |p: &str| host.join(p.trim_start_matches('/')).display().to_string();
    arr(install, "/env")
        .iter()
        .map(|e| {
            let var = s(e, "/name").to_string();
            let value = match var.as_str() {
                "PATH" => tools.display().to_string(),
                "PLUGIN_BIN_DIR" | "PLUGIN_CONFIG_DIR" | "PLUGIN_SOURCE" => on_host(s(e, "/value")),
                "PLUGIN_CONFIG_HEAD" => {
                    let in_pod = Path::new(s(e, "/value"));
                    files
                        .join(in_pod.file_name().expect("file"))
                        .display()
                        .to_string()
                }
                _ => match e.pointer("/valueFrom/secretKeyRef") {
                    Some(r) => secrets
                        .get(&(s(r, "/name"), s(r, "/key")))
                        .unwrap_or_else(|| panic!("no Secret {r} for the test"))
                        .to_string(),
                    None => s(e, "/value").to_string(),
                },
            };
            (var, value)
        })
        .collect()
}

/// Runs the install container's command from `objects` with `host` standing for the node's root:
/// the script and config head from the ConfigMap, busybox with exactly the linked applets (or the system's
/// `/bin/sh` and tools when there is no busybox). Returns stdout, or stderr as the error.
fn run_install(
    objects: &[Value],
    host: &Path,
    secrets: &BTreeMap<(&str, &str), &str>,
) -> Result<String, String> {
    run_install_with(objects, host, secrets, None)
}

/// [`run_install`], with `shell` instead of the linked `sh` when given. A busybox built with the
/// "standalone shell" (Debian's is) runs its applets whatever PATH says; another shell finds commands
/// through PATH only, so it shows that the script needs no command beyond the linked applets.
fn run_install_with(
    objects: &[Value],
    host: &Path,
    secrets: &BTreeMap<(&str, &str), &str>,
    shell: Option<&Path>,
) -> Result<String, String> {
    let ds = the(objects, "DaemonSet", "plugin");
    let install = init_container(ds, "install");
    let work = tempfile::tempdir().expect("temp dir");
    let (tools, files) = (work.path().join("tools"), work.path().join("files"));
    std::fs::create_dir_all(&tools).expect("tools");
    std::fs::create_dir_all(&files).expect("files");
    let cm = plugin_config_map(objects);
    for (file, content) in cm.get("data").and_then(Value::as_object).expect("data") {
        std::fs::write(files.join(file), content.as_str().expect("text")).expect("write");
    }
    let busybox = in_path("busybox");
    match &busybox {
        Some(busybox) => {
            for applet in linked_applets(ds) {
                symlink(busybox, tools.join(&applet)).expect("symlink");
            }
        }
        None => {
            eprintln!(
                "NOTE: no busybox in PATH: the install script runs under /bin/sh with the system's tools"
            );
            for dir in ["/usr/bin", "/bin"] {
                for applet in linked_applets(ds) {
                    let tool = Path::new(dir).join(&applet);
                    if tool.is_file() && !tools.join(&applet).exists() {
                        symlink(tool, tools.join(&applet)).expect("symlink");
                    }
                }
            }
        }
    }
    let command: Vec<&str> = arr(install, "/command")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert_eq!(command, ["/tools/sh", "/etc/regcreds/kubelet-plugin/install.sh"]);
    let mounted = arr(install, "/volumeMounts")
        .iter()
        .any(|m| s(m, "/name") == "files" && s(m, "/mountPath") == "/etc/regcreds/kubelet-plugin");
    assert!(
        mounted,
        "the ConfigMap is mounted where the command and PLUGIN_CONFIG_HEAD look"
    );
    let mut cmd = Command::new(shell.map_or_else(|| tools.join("sh"), Path::to_path_buf));
    cmd.arg(files.join("install.sh")).env_clear();
    for (var, value) in install_env(install, host, &tools, &files, secrets) {
        cmd.env(var, value);
    }
    run(cmd, None)
}

/// The directories the DaemonSet's hostPath volumes would create (`DirectoryOrCreate`), under `host`.
fn create_host_dirs(objects: &[Value], host: &Path) {
    let ds = the(objects, "DaemonSet", "plugin");
    for v in arr(ds, "/spec/template/spec/volumes") {
        if let Some(path) = v.pointer("/hostPath/path").and_then(Value::as_str) {
            std::fs::create_dir_all(host.join(path.trim_start_matches('/'))).expect("host dir");
        }
    }
}

/// Files under `dir` whose names start with a dot (the script's temporary files).
fn leftovers(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir)
        .expect("read dir")
        .map(|e| e.expect("entry").path())
        .filter(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with('.'))
        })
        .collect()
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).expect("metadata").permissions().mode() & 0o7777
}

#[test]
fn the_install_script_writes_the_binary_and_a_config_the_kubelet_accepts() {
    let Some(helm) = helm_or_note() else { return };
    let objects = render(
        &helm,
        &[
            "providers.static.enabled=true",
            "providers.static.server=registry.example.com:5000",
            "providers.static.existingSecret=st",
            "providers.ecr.enabled=true",
            "providers.ecr.regions={eu-west-1}",
            "providers.ghcr.enabled=true",
            "providers.ghcr.appId=1",
            "providers.ghcr.installationId=2",
            "providers.ghcr.existingSecret=gh",
            "checks.images={ghcr.io/my-org/app:1}",
            "kubeletPlugin.defaultCacheDuration=30m",
            "kubeletPlugin.env[0].name=HTTPS_PROXY",
            "kubeletPlugin.env[0].value=http://proxy.example:3128",
            "kubeletPlugin.env[1].name=PATH",
            "kubeletPlugin.env[1].valueFrom.secretKeyRef.name=odd",
            "kubeletPlugin.env[1].valueFrom.secretKeyRef.key=path",
        ],
    );
    let pem = "-----BEGIN RSA PRIVATE KEY-----\nMIIB\\x\"y\n-----END RSA PRIVATE KEY-----\n";
    let secrets = BTreeMap::from([
        (("st", "username"), "puller"),
        (("st", "password"), "p\"a\\ss: #word\twith tab"),
        (("regcreds-dockerhub", "username"), "hubber"),
        (("regcreds-dockerhub", "password"), "dckr_pat_123"),
        (("gh", "private-key.pem"), pem),
        (("odd", "path"), "/opt/bin:/usr/bin"),
    ]);
    let host = tempfile::tempdir().expect("host");
    create_host_dirs(&objects, host.path());
    let binary = host.path().join("regcreds");
    std::fs::write(&binary, b"\x7fELF not really").expect("binary");
    let out = run_install(&objects, host.path(), &secrets).unwrap_or_else(|e| panic!("{e}"));
    assert!(out.contains("written"), "{out}");

    let bin_dir = host.path().join("var/lib/regcreds/bin");
    let config_dir = host.path().join("var/lib/regcreds");
    let installed = bin_dir.join("regcreds");
    assert_eq!(
        std::fs::read(&installed).expect("installed"),
        b"\x7fELF not really"
    );
    assert_eq!(mode(&installed), 0o755, "executable by the kubelet");
    let config_path = config_dir.join("credential-provider-config.yaml");
    assert_eq!(mode(&config_path), 0o600, "root-only: it holds credentials");
    assert!(leftovers(&bin_dir).is_empty() && leftovers(&config_dir).is_empty());

    let text = std::fs::read_to_string(&config_path).expect("config");
    let config: Value = serde_saphyr::from_str(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    assert_eq!(kubelet_config_problems(&config), Vec::<String>::new(), "{text}");
    let provider = &arr(&config, "/providers")[0];
    assert_eq!(s(provider, "/name"), "regcreds");
    assert_eq!(s(provider, "/apiVersion"), "credentialprovider.kubelet.k8s.io/v1");
    assert_eq!(arr(provider, "/args"), [json!("credential-provider")]);
    assert_eq!(s(provider, "/defaultCacheDuration"), "30m");
    assert_eq!(
        arr(provider, "/matchImages"),
        [
            json!("registry.example.com:5000"),
            json!("docker.io"),
            json!("*.dkr.ecr.eu-west-1.amazonaws.com"),
            json!("ghcr.io")
        ]
    );
    let env: Vec<(&str, &str)> = arr(provider, "/env")
        .iter()
        .map(|e| (s(e, "/name"), s(e, "/value")))
        .collect();
    assert_eq!(
        env,
        [
            ("REGCREDS_STATIC_SERVER", "registry.example.com:5000"),
            ("REGCREDS_STATIC_USER", "puller"),
            ("REGCREDS_STATIC_PASSWORD", "p\"a\\ss: #word\twith tab"),
            ("REGCREDS_DOCKERHUB_USER", "hubber"),
            ("REGCREDS_DOCKERHUB_PASSWORD", "dckr_pat_123"),
            ("REGCREDS_ECR_REGIONS", "eu-west-1"),
            ("REGCREDS_GHCR_APP_ID", "1"),
            ("REGCREDS_GHCR_INSTALLATION_ID", "2"),
            ("REGCREDS_GHCR_PRIVATE_KEY", pem),
            ("REGCREDS_GHCR_PERMISSIONS", "packages:read"),
            ("REGCREDS_CHECK_IMAGES", "ghcr.io/my-org/app:1"),
            ("HTTPS_PROXY", "http://proxy.example:3128"),
            ("PATH", "/opt/bin:/usr/bin"),
        ]
    );

    // Again: nothing changes, nothing is left behind.
    let out = run_install(&objects, host.path(), &secrets).unwrap_or_else(|e| panic!("{e}"));
    assert!(out.contains("is up to date"), "{out}");
    assert_eq!(std::fs::read_to_string(&config_path).expect("config"), text);

    // Busybox in the pod has only the linked applets: a shell that looks commands up in PATH proves that
    // the script needs no other (Debian's busybox finds its applets without PATH).
    match ["/bin/dash", "/usr/bin/dash"]
        .into_iter()
        .map(Path::new)
        .find(|p| p.is_file())
    {
        Some(dash) => {
            let other = tempfile::tempdir().expect("host");
            create_host_dirs(&objects, other.path());
            std::fs::write(other.path().join("regcreds"), b"bin").expect("binary");
            run_install_with(&objects, other.path(), &secrets, Some(dash))
                .unwrap_or_else(|e| panic!("with the linked applets only: {e}"));
            let written = other
                .path()
                .join("var/lib/regcreds/credential-provider-config.yaml");
            assert_eq!(std::fs::read_to_string(written).expect("config"), text);
        }
        None => eprintln!("NOTE: no dash: the script's commands are not checked against the linked applets"),
    }

    // A value the kubelet's YAML cannot carry is refused; the installed config stays as it was.
    let mut bad = secrets.clone();
    bad.insert(("st", "password"), "windows\r\nline");
    let e = run_install(&objects, host.path(), &bad).expect_err("carriage return");
    assert!(
        e.contains("REGCREDS_STATIC_PASSWORD contains control characters"),
        "{e}"
    );
    assert_eq!(std::fs::read_to_string(&config_path).expect("config"), text);
    assert!(leftovers(&bin_dir).is_empty() && leftovers(&config_dir).is_empty());

    // Without variables the list is empty, which the kubelet accepts too; one directory for both works.
    let objects = render(
        &helm,
        &[
            "secretMode.enabled=false",
            "providers.dockerhub.enabled=false",
            "providers.gcr.enabled=true",
            "providers.gcr.useMetadata=true",
            "kubeletPlugin.hostBinDir=/etc/eks/image-credential-provider",
            "kubeletPlugin.hostConfigDir=/etc/eks/image-credential-provider",
            "kubeletPlugin.configFileName=regcreds.yaml",
        ],
    );
    let ds = the(&objects, "DaemonSet", "one directory");
    assert_eq!(
        arr(ds, "/spec/template/spec/volumes")
            .iter()
            .filter(|v| v.get("hostPath").is_some())
            .count(),
        1,
        "one hostPath volume, mounted once"
    );
    let host = tempfile::tempdir().expect("host");
    create_host_dirs(&objects, host.path());
    std::fs::write(host.path().join("regcreds"), b"bin").expect("binary");
    run_install(&objects, host.path(), &BTreeMap::new()).unwrap_or_else(|e| panic!("{e}"));
    let dir = host.path().join("etc/eks/image-credential-provider");
    let config: Value =
        serde_saphyr::from_str(&std::fs::read_to_string(dir.join("regcreds.yaml")).expect("config"))
            .expect("YAML");
    assert_eq!(kubelet_config_problems(&config), Vec::<String>::new());
    assert_eq!(
        arr(&config, "/providers/0/env"),
        [json!({"name": "REGCREDS_GCR_USE_METADATA", "value": "true"})]
    );
    assert!(dir.join("regcreds").is_file());
}

// === against the API server ===

/// Creates `namespace` enforcing Pod Security `level` (already existing is fine).
fn namespace_enforcing(cp: &ControlPlane, namespace: &str, level: &str) {
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

/// A dry-run Pod from the DaemonSet's template, in its namespace.
fn dry_run_daemonset_pod(cp: &ControlPlane, ds: &Value) -> Result<String, String> {
    let pod = json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": format!("{}-dry-run", name(ds)),
            "namespace": s(ds, "/metadata/namespace"),
            "labels": ds.pointer("/spec/template/metadata/labels"),
        },
        "spec": ds.pointer("/spec/template/spec"),
    });
    kubectl_apply(cp.kubeconfig_path(), &[pod], true)
}

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
        let objects = render_in(&helm, namespace, &sets);
        // Every object, and a pod of each Deployment and Job.
        dry_run(cp, &objects, &what).await;
        let ds = the(&objects, "DaemonSet", &what);
        dry_run_daemonset_pod(cp, ds)
            .unwrap_or_else(|e| panic!("{what}: the DaemonSet's pod is not admitted: {e}"));
    }
    // hostPath volumes are beyond "baseline" already: the README's advice to pick a privileged namespace.
    for level in ["baseline", "restricted"] {
        let namespace = format!("regcreds-kubelet-plugin-{level}");
        namespace_enforcing(cp, &namespace, level);
        let objects = render_in(&helm, &namespace, &PLUGIN);
        let e = dry_run_daemonset_pod(cp, the(&objects, "DaemonSet", level)).expect_err(level);
        assert!(e.contains("hostPath"), "{level}: {e}");
    }
}

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
    let objects = render_in(&helm, namespace, &sets);
    dry_run(cp, &objects, "token mode").await;
    dry_run_daemonset_pod(cp, the(&objects, "DaemonSet", "token mode"))
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
