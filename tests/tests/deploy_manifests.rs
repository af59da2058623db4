//! The shipped manifests — `deploy/base`, every `deploy/overlays/*`, the drop-in examples in
//! `deploy/examples/*` and the Helm chart — render, keep their security and RBAC promises, and are
//! accepted by a real apiserver (server-side dry run, plus a Pod dry run against the "restricted"
//! Pod Security Standard). Every overlay is the base plus its provider component
//! (`deploy/components/providers/*`), and the components combine: `deploy/examples/ecr-and-dockerhub`
//! and one component of every provider at once render each overlay's variables exactly once.
//!
//! Tools and shared helpers: `regcreds_testkit::manifests` (`kubectl` from `$REGCREDS_KUBECTL`, else
//! the test venv, else `PATH`; `helm` from `$REGCREDS_HELM`, else `<cache>/bin/helm`, else `PATH`, else
//! `~/go/bin/helm`). Without helm the chart checks print a note and pass. The chart's conventions
//! (monitors, NetworkPolicy, commonLabels, extraObjects, OpenShift) are in `chart_conventions.rs`.

use std::{
    collections::{BTreeMap, BTreeSet},
    path::Path,
    process::Command,
};

use regcreds_testkit::{
    ControlPlane,
    manifests::{
        CHART, arr, assert_pod_hardened, assert_pod_security_is_enforced, chart_ci_values, container,
        dry_run, env, env_names, helm_lint, helm_or_note, helm_template, kind, kubectl, kubectl_apply,
        kustomize, name, parse, repo, run, s, the,
    },
    versions::K8S_VERSION,
};
use serde_json::{Value, json};

// === tools (the rest in regcreds_testkit::manifests) ===

fn overlay_dirs() -> Vec<String> {
    let dir = repo().join("deploy/overlays");
    let mut dirs: Vec<String> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .map(|entry| entry.expect("directory entry").path())
        .filter(|p| p.join("kustomization.yaml").is_file())
        .map(|p| {
            format!(
                "deploy/overlays/{}",
                p.file_name().expect("dir name").to_string_lossy()
            )
        })
        .collect();
    dirs.sort();
    assert!(
        dirs.len() >= 6,
        "expected an overlay per provider, found {dirs:?}"
    );
    dirs
}

const EXAMPLES: &[&str] = &[
    "deploy/examples/upmc-registry-creds",
    "deploy/examples/imagepullsecret-patcher",
];

/// The provider components (`deploy/components/providers/<name>`), one per overlay of the same name.
fn provider_component_dirs() -> Vec<String> {
    let dir = repo().join("deploy/components/providers");
    let mut dirs: Vec<String> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .map(|entry| entry.expect("directory entry").path())
        .filter(|p| p.join("kustomization.yaml").is_file())
        .map(|p| {
            format!(
                "deploy/components/providers/{}",
                p.file_name().expect("dir name").to_string_lossy()
            )
        })
        .collect();
    dirs.sort();
    dirs
}

/// The last path segment of a `deploy/...` directory.
fn dir_name(dir: &str) -> &str {
    dir.rsplit('/').next().expect("a path")
}

/// A kustomization of `deploy/base` plus `components` (repository-relative directories), written to a
/// temporary directory under `<repo>/target` (kustomize loads resources outside its root, not files),
/// rendered and parsed.
fn kustomize_base_with(components: &[&str]) -> Vec<Value> {
    let dir = tempfile::Builder::new()
        .prefix("provider-components-")
        .tempdir_in(repo().join("target"))
        .expect("temp dir under target/");
    let depth = dir
        .path()
        .strip_prefix(repo())
        .expect("under the repository")
        .components()
        .count();
    let up = vec![".."; depth].join("/");
    let listed: String = components.iter().map(|c| format!("  - {up}/{c}\n")).collect();
    std::fs::write(
        dir.path().join("kustomization.yaml"),
        format!(
            "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources:\n  - {up}/deploy/base\ncomponents:\n{listed}"
        ),
    )
    .expect("kustomization");
    let mut cmd = Command::new(kubectl());
    cmd.arg("kustomize").arg(dir.path());
    let what = format!("base + {components:?}");
    parse(&run(cmd, None).unwrap_or_else(|e| panic!("{what}: {e}")), &what)
}

// === object helpers ===

/// A Helm hook (the chart's uninstall cleanup): not part of what runs, checked on its own.
fn is_hook(v: &Value) -> bool {
    v.pointer("/metadata/annotations/helm.sh~1hook").is_some()
}

/// The objects that are installed and stay: everything but Helm hooks.
fn installed(objects: &[Value]) -> Vec<Value> {
    objects.iter().filter(|o| !is_hook(o)).cloned().collect()
}

// === the promises ===

/// Every setting the binary reads (docs: the configuration surface of `regcreds run`), plus the AWS
/// SDK's own variables. A name outside this list in base/overlays/chart is a typo.
const KNOWN_ENV: &[&str] = &[
    "REGCREDS_LOG_FORMAT",
    "REGCREDS_LOG",
    "REGCREDS_NAMESPACE",
    "REGCREDS_POD_NAME",
    "REGCREDS_SERVICE_ACCOUNTS",
    "REGCREDS_EXCLUDE_NAMESPACES",
    "REGCREDS_NAMESPACE_SELECTOR",
    "REGCREDS_FORCE",
    "REGCREDS_TAKE_OVER",
    "REGCREDS_CONCURRENCY",
    "REGCREDS_HEAL_PODS",
    "REGCREDS_HEAL_AFTER_CREDENTIAL_CHANGE",
    "REGCREDS_HEAL_RATE",
    "REGCREDS_HEAL_BURST",
    "REGCREDS_HEAL_NAMESPACE_RATE",
    "REGCREDS_HEAL_NAMESPACE_BURST",
    "REGCREDS_ADMIN_ADDR",
    "REGCREDS_LEADER_ELECTION",
    "REGCREDS_LEASE_NAME",
    "REGCREDS_LEASE_DURATION_SECONDS",
    "REGCREDS_INSTANCE",
    "REGCREDS_RESYNC_SECONDS",
    "REGCREDS_WATCH_MODE",
    "REGCREDS_CHECK_INTERVAL_SECONDS",
    "REGCREDS_CHECK_TIMEOUT_SECONDS",
    "REGCREDS_CHECK_IMAGES",
    "REGCREDS_CHECK_INSECURE_HOSTS",
    "REGCREDS_CHECK_CA_FILE",
    "REGCREDS_STATIC_SERVER",
    "REGCREDS_STATIC_USER",
    "REGCREDS_STATIC_PASSWORD",
    "REGCREDS_STATIC_SECRET_NAME",
    "REGCREDS_STATIC_SCHEDULE",
    "REGCREDS_DOCKERCONFIGJSON",
    "REGCREDS_DOCKERCONFIGJSON_PATH",
    "REGCREDS_DOCKERCONFIGJSON_SECRET_NAME",
    "REGCREDS_DOCKERCONFIGJSON_SCHEDULE",
    "REGCREDS_DOCKERHUB_USER",
    "REGCREDS_DOCKERHUB_PASSWORD",
    "REGCREDS_DOCKERHUB_SECRET_NAME",
    "REGCREDS_DOCKERHUB_SCHEDULE",
    "REGCREDS_ECR_REGIONS",
    "REGCREDS_ECR_ACCOUNTS",
    "REGCREDS_ECR_ASSUME_ROLE",
    "REGCREDS_ECR_PUBLIC",
    "REGCREDS_ECR_SECRET_NAME",
    "REGCREDS_ECR_SCHEDULE",
    "REGCREDS_ECR_ENDPOINT_URL",
    "REGCREDS_ECR_TIMEOUT_SECONDS",
    "REGCREDS_ECR_ASSUME_ROLE_EXTERNAL_ID",
    "REGCREDS_GCR_KEY",
    "REGCREDS_GCR_METADATA_URL",
    "REGCREDS_GCR_TIMEOUT_SECONDS",
    "REGCREDS_GCR_SCHEDULE",
    "REGCREDS_GCR_KEY_FILE",
    "REGCREDS_GCR_USE_METADATA",
    "REGCREDS_GCR_HOSTS",
    "REGCREDS_GCR_SECRET_NAME",
    "REGCREDS_ACR_REGISTRY",
    "REGCREDS_ACR_TENANT_ID",
    "REGCREDS_ACR_CLIENT_ID",
    "REGCREDS_ACR_CLIENT_SECRET",
    "REGCREDS_ACR_AUTH",
    "REGCREDS_ACR_SECRET_NAME",
    "REGCREDS_ACR_AUTHORITY_HOST",
    "REGCREDS_ACR_EXCHANGE_URL",
    "REGCREDS_ACR_CA_FILE",
    "REGCREDS_ACR_SCOPE",
    "REGCREDS_ACR_TIMEOUT_SECONDS",
    "REGCREDS_ACR_SCHEDULE",
    "REGCREDS_GHCR_APP_ID",
    "REGCREDS_GHCR_INSTALLATION_ID",
    "REGCREDS_GHCR_PRIVATE_KEY_FILE",
    "REGCREDS_GHCR_REPOSITORIES",
    "REGCREDS_GHCR_PERMISSIONS",
    "REGCREDS_GHCR_API_URL",
    "REGCREDS_GHCR_REGISTRY",
    "REGCREDS_GHCR_SECRET_NAME",
    "REGCREDS_GHCR_CA_FILE",
    "REGCREDS_GHCR_TIMEOUT_SECONDS",
    "REGCREDS_GHCR_SCHEDULE",
    "REGCREDS_QUAY_ROBOT",
    "REGCREDS_QUAY_REGISTRY",
    "REGCREDS_QUAY_TOKEN_FILE",
    "REGCREDS_QUAY_SECRET_NAME",
    "REGCREDS_QUAY_FEDERATION_URL",
    "REGCREDS_QUAY_CA_FILE",
    "REGCREDS_QUAY_TIMEOUT_SECONDS",
    "REGCREDS_QUAY_SCHEDULE",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
];

type Grants = BTreeSet<(String, String, String)>;

/// `(apiGroup, resource, verb)` triples a list of RBAC rules grants; panics on wildcards and
/// non-resource URLs.
fn grants(role: &Value) -> Grants {
    let mut out = Grants::new();
    for rule in arr(role, "/rules") {
        assert!(
            rule.get("nonResourceURLs").is_none(),
            "{}: nonResourceURLs in {rule}",
            name(role)
        );
        let list = |key: &str| -> Vec<String> {
            arr(rule, &format!("/{key}"))
                .iter()
                .map(|v| v.as_str().unwrap_or("").to_string())
                .collect()
        };
        let (groups, resources, verbs) = (list("apiGroups"), list("resources"), list("verbs"));
        for item in groups.iter().chain(&resources).chain(&verbs) {
            assert!(
                !item.contains('*'),
                "{} {}: wildcard {item:?} in {rule}",
                kind(role),
                name(role)
            );
        }
        for g in &groups {
            for r in &resources {
                for v in &verbs {
                    out.insert((g.clone(), r.clone(), v.clone()));
                }
            }
        }
    }
    out
}

fn expand(spec: &[(&str, &str, &[&str])]) -> Grants {
    spec.iter()
        .flat_map(|(g, r, verbs)| {
            verbs
                .iter()
                .map(move |v| (g.to_string(), r.to_string(), v.to_string()))
        })
        .collect()
}

/// What regcreds needs cluster-wide, and nothing else.
fn regcreds_cluster_grants() -> Grants {
    expand(&[
        ("", "namespaces", &["get", "list", "watch"]),
        (
            "",
            "secrets",
            &["get", "list", "watch", "create", "update", "patch", "delete"],
        ),
        (
            "",
            "serviceaccounts",
            &["get", "list", "watch", "update", "patch"],
        ),
        ("events.k8s.io", "events", &["create", "patch"]),
        ("", "events", &["create", "patch"]),
    ])
}

/// What regcreds needs in its own namespace.
fn regcreds_namespace_grants() -> Grants {
    expand(&[
        (
            "coordination.k8s.io",
            "leases",
            &["get", "list", "watch", "create", "update", "patch"],
        ),
        ("", "secrets", &["get", "list", "watch"]),
    ])
}

fn diff(actual: &Grants, expected: &Grants) -> String {
    format!(
        "granted but not needed: {:?}\nneeded but not granted: {:?}",
        actual.difference(expected).collect::<Vec<_>>(),
        expected.difference(actual).collect::<Vec<_>>()
    )
}

/// The ClusterRole grants exactly what regcreds needs; the Role at most its namespace needs. (Helm hooks
/// are checked by [`assert_cleanup_hook_least_privilege`].)
fn assert_least_privilege(objects: &[Value], what: &str) {
    let objects = &installed(objects)[..];
    let cluster = grants(the(objects, "ClusterRole", what));
    let expected = regcreds_cluster_grants();
    assert_eq!(
        cluster,
        expected,
        "{what}: ClusterRole\n{}",
        diff(&cluster, &expected)
    );
    let role = grants(the(objects, "Role", what));
    let allowed = regcreds_namespace_grants();
    assert!(
        role.is_subset(&allowed),
        "{what}: Role\n{}",
        diff(&role, &allowed)
    );
    for binding in ["ClusterRoleBinding", "RoleBinding"] {
        let b = the(objects, binding, what);
        let sa = the(objects, "ServiceAccount", what);
        let subjects = arr(b, "/subjects");
        assert_eq!(subjects.len(), 1, "{what}: {binding} has one subject");
        assert_eq!(s(&subjects[0], "/kind"), "ServiceAccount", "{what}: {binding}");
        assert_eq!(
            s(&subjects[0], "/name"),
            name(sa),
            "{what}: {binding} binds the regcreds ServiceAccount"
        );
        assert_eq!(
            s(&subjects[0], "/namespace"),
            s(sa, "/metadata/namespace"),
            "{what}: {binding}"
        );
    }
}

/// The Deployment's hardening ([`assert_pod_hardened`]), probes, scrape annotations (only where no
/// ServiceMonitor or PodMonitor is in `objects`: the chart leaves them out then), downward-API identity.
fn assert_locked_down(objects: &[Value], deployment: &Value, what: &str) {
    let pod = deployment.pointer("/spec/template/spec").expect("pod spec");
    let c = container(deployment, "regcreds");
    assert_pod_hardened(pod, c, Some(65532), what);

    assert_eq!(c.get("args"), Some(&json!(["run"])), "{what}: args");
    let ports = arr(c, "/ports");
    assert!(
        ports
            .iter()
            .any(|p| s(p, "/name") == "admin" && p.get("containerPort") == Some(&json!(8080))),
        "{what}: container port admin 8080 in {ports:?}"
    );
    for (probe, path) in [("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")] {
        assert_eq!(s(c, &format!("/{probe}/httpGet/path")), path, "{what}: {probe}");
        assert_eq!(
            c.pointer(&format!("/{probe}/httpGet/port")),
            Some(&json!("admin")),
            "{what}: {probe}"
        );
    }
    let monitored = objects
        .iter()
        .any(|o| kind(o) == "ServiceMonitor" || kind(o) == "PodMonitor");
    let annotation = |key: &str| deployment.pointer(&format!("/spec/template/metadata/annotations/{key}"));
    let (scrape, port, path) = if monitored {
        (None, None, None)
    } else {
        (
            Some(&json!("true")),
            Some(&json!("8080")),
            Some(&json!("/metrics")),
        )
    };
    assert_eq!(annotation("prometheus.io~1scrape"), scrape, "{what}");
    assert_eq!(annotation("prometheus.io~1port"), port, "{what}");
    assert_eq!(annotation("prometheus.io~1path"), path, "{what}");
    for (var, field) in [
        ("REGCREDS_NAMESPACE", "metadata.namespace"),
        ("REGCREDS_POD_NAME", "metadata.name"),
    ] {
        let e = env(c, var).unwrap_or_else(|| panic!("{what}: {var} is not set"));
        assert_eq!(s(e, "/valueFrom/fieldRef/fieldPath"), field, "{what}: {var}");
    }
    let unknown: Vec<&str> = env_names(c)
        .into_iter()
        .filter(|n| !KNOWN_ENV.contains(n))
        .collect();
    assert!(
        unknown.is_empty(),
        "{what}: variables regcreds does not read: {unknown:?}"
    );
    assert_files_are_mounted(deployment, what);
}

/// The providers a container configures: the `<PROVIDER>` of its `REGCREDS_<PROVIDER>_*` variables.
fn providers(c: &Value) -> BTreeSet<&str> {
    env_names(c)
        .into_iter()
        .filter_map(|n| n.strip_prefix("REGCREDS_"))
        .filter_map(|n| n.split('_').next())
        .filter(|p| {
            [
                "STATIC",
                "DOCKERCONFIGJSON",
                "DOCKERHUB",
                "ECR",
                "GCR",
                "ACR",
                "GHCR",
                "QUAY",
            ]
            .contains(p)
        })
        .collect()
}

/// A variable naming a file (dockerconfigjson, GCR key, GitHub App key) points into a mounted Secret
/// volume that really contains that file; the Quay token file into a projected ServiceAccount token.
fn assert_files_are_mounted(deployment: &Value, what: &str) {
    let pod = deployment.pointer("/spec/template/spec").expect("pod spec");
    for c in arr(pod, "/containers") {
        for var in [
            "REGCREDS_DOCKERCONFIGJSON_PATH",
            "REGCREDS_GCR_KEY_FILE",
            "REGCREDS_GHCR_PRIVATE_KEY_FILE",
            "REGCREDS_QUAY_TOKEN_FILE",
            "CONFIG_DOCKERCONFIGJSONPATH",
        ] {
            let Some(e) = env(c, var) else { continue };
            let path = Path::new(s(e, "/value"));
            let (dir, file) = (
                path.parent().expect("absolute path"),
                path.file_name().expect("file name"),
            );
            let mount = arr(c, "/volumeMounts")
                .iter()
                .find(|m| Path::new(s(m, "/mountPath")) == dir)
                .unwrap_or_else(|| {
                    panic!(
                        "{what}: {var}={} but nothing is mounted at {}",
                        path.display(),
                        dir.display()
                    )
                });
            let volume = arr(pod, "/volumes")
                .iter()
                .find(|v| s(v, "/name") == s(mount, "/name"))
                .unwrap_or_else(|| panic!("{what}: no volume {}", s(mount, "/name")));
            if var == "REGCREDS_QUAY_TOKEN_FILE" {
                let token = arr(volume, "/projected/sources")
                    .iter()
                    .filter_map(|source| source.get("serviceAccountToken"))
                    .find(|t| Some(s(t, "/path")) == file.to_str())
                    .cloned()
                    .unwrap_or_else(|| panic!("{what}: {var} must be a projected serviceAccountToken"));
                assert!(
                    !s(&token, "/audience").is_empty(),
                    "{what}: the token needs an audience"
                );
                continue;
            }
            assert!(
                volume.pointer("/secret/secretName").is_some(),
                "{what}: {var} must come from a Secret volume"
            );
            let items = arr(volume, "/secret/items");
            assert!(
                items.is_empty() || items.iter().any(|i| Some(s(i, "/path")) == file.to_str()),
                "{what}: volume {} does not project {}",
                s(volume, "/name"),
                file.to_string_lossy()
            );
        }
    }
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

// === static tests: no cluster ===

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
    assert!(
        s(c, "/image").starts_with("ghcr.io/regcreds/regcreds:"),
        "{what}: image {}",
        s(c, "/image")
    );
    assert!(
        c.get("args").is_none() && c.get("command").is_none(),
        "{what}: upstream passes no args"
    );
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
    assert_eq!(granted, narrow, "{what}\n{}", diff(&granted, &narrow));
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
    assert!(
        s(c, "/image").starts_with("ghcr.io/regcreds/regcreds:"),
        "{what}: image {}",
        s(c, "/image")
    );
    assert!(
        c.get("args").is_none() && c.get("command").is_none(),
        "{what}: upstream passes no args"
    );
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
    assert_eq!(granted, upstream, "{what}\n{}", diff(&granted, &upstream));
    assert_eq!(
        deployment.pointer("/spec/template/spec/automountServiceAccountToken"),
        Some(&json!(true)),
        "{what}: upstream PR #9"
    );
}

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

#[test]
fn the_image_runs_the_controller_by_default_as_non_root() {
    let dockerfile = std::fs::read_to_string(repo().join("Dockerfile")).expect("Dockerfile");
    let last_stage = dockerfile
        .rsplit_once("\nFROM ")
        .expect("a multi-stage Dockerfile")
        .1;
    let line = |prefix: &str| -> Vec<&str> { last_stage.lines().filter(|l| l.starts_with(prefix)).collect() };
    assert!(
        last_stage.starts_with("gcr.io/distroless/cc-debian12:nonroot"),
        "runtime base: {}",
        last_stage.lines().next().unwrap_or("")
    );
    assert_eq!(line("USER "), ["USER 65532:65532"]);
    assert_eq!(line("ENTRYPOINT "), [r#"ENTRYPOINT ["/regcreds"]"#]);
    // upmc and imagepullsecret-patcher manifests pass no args: they must get `run`.
    assert_eq!(line("CMD "), [r#"CMD ["run"]"#]);
    assert!(
        dockerfile.contains("cargo build --release --locked -p regcreds"),
        "release build of the regcreds package"
    );

    // cargo loads the whole workspace even for `-p regcreds`: every member must be in the build context.
    let ignore = std::fs::read_to_string(repo().join(".dockerignore")).expect(".dockerignore");
    assert!(
        ignore.lines().any(|l| l.trim() == "*"),
        ".dockerignore is an allow-list"
    );
    let allowed: BTreeSet<&str> = ignore
        .lines()
        .filter_map(|l| l.trim().strip_prefix('!'))
        .map(|l| l.trim_end_matches('/'))
        .collect();
    for needed in ["Cargo.toml", "Cargo.lock"] {
        assert!(
            allowed.contains(needed),
            ".dockerignore must let {needed} through"
        );
    }
    let manifest = std::fs::read_to_string(repo().join("Cargo.toml")).expect("Cargo.toml");
    let members = manifest
        .split_once("members = [")
        .expect("workspace members")
        .1
        .split_once(']')
        .expect("]")
        .0;
    for member in members
        .split(',')
        .map(|m| m.trim().trim_matches('"'))
        .filter(|m| !m.is_empty())
    {
        let top = member.split('/').next().expect("path");
        assert!(
            allowed.contains(top),
            ".dockerignore drops workspace member {member}"
        );
    }
}

// === cluster tests: server-side dry run against the test kit's control plane ===

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

#[tokio::test]
async fn the_drop_in_examples_pass_a_server_side_dry_run() {
    let cp = ControlPlane::shared().await;
    for dir in EXAMPLES {
        dry_run(cp, &kustomize(dir), dir).await;
    }
}

#[tokio::test]
async fn the_chart_renders_for_a_server_side_dry_run_under_the_restricted_pod_standard() {
    let Some(helm) = helm_or_note() else { return };
    let cp = ControlPlane::shared().await;
    // Its own namespace, labelled like deploy/base's, so no other test's labels matter.
    let namespace = "regcreds-helm";
    let ns = json!({
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {"name": namespace, "labels": {"pod-security.kubernetes.io/enforce": "restricted"}},
    });
    kubectl_apply(cp.kubeconfig_path(), &[ns], false).unwrap_or_else(|e| panic!("{e}"));
    assert_pod_security_is_enforced(cp, namespace).await;
    for values in chart_ci_values() {
        let what = format!("chart with {}", values.display());
        let yaml = helm_template(&helm, namespace, &[values], &[]).unwrap_or_else(|e| panic!("{e}"));
        dry_run(cp, &parse(&yaml, &what), &what).await;
    }
}

/// Every `REGCREDS_*` name the manifests use is one the binary declares (`regcreds run --help`).
#[test]
fn every_variable_in_the_manifests_is_declared_by_regcreds_run() {
    let mut cmd = Command::new(regcreds_testkit::regcreds_binary());
    cmd.args(["run", "--help"]);
    let help = run(cmd, None).unwrap_or_else(|e| panic!("{e}"));
    let mut rendered: Vec<(String, Vec<Value>)> = std::iter::once("deploy/base".to_string())
        .chain(overlay_dirs())
        .map(|dir| {
            let objects = kustomize(&dir);
            (dir, objects)
        })
        .collect();
    if let Some(helm) = helm_or_note() {
        for values in chart_ci_values() {
            let what = format!("chart with {}", values.display());
            let yaml = helm_template(&helm, "regcreds", &[values], &[]).unwrap_or_else(|e| panic!("{e}"));
            let objects = parse(&yaml, &what);
            rendered.push((what, objects));
        }
    }
    let mut used = BTreeMap::<String, String>::new();
    for (what, objects) in &rendered {
        for o in objects.iter().filter(|o| kind(o) == "Deployment") {
            for n in env_names(container(o, "regcreds")) {
                used.entry(n.to_string()).or_insert_with(|| what.clone());
            }
        }
    }
    let missing: Vec<_> = used
        .iter()
        .filter(|(n, _)| {
            n.starts_with("REGCREDS_")
                && !help.contains(&format!("[env: {n}="))
                && !help.contains(&format!("[env: {n}]"))
        })
        .collect();
    assert!(missing.is_empty(), "not declared by `regcreds run`: {missing:?}");
}

// === provider components: every overlay is the base plus one, and they combine ===

/// The base plus the ecr and dockerhub components, no patch of its own.
const COMBINED_EXAMPLE: &str = "deploy/examples/ecr-and-dockerhub";

/// The kustomization file of `dir`, parsed.
fn kustomization_of(dir: &str) -> Value {
    let path = repo().join(dir).join("kustomization.yaml");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    parse(&text, dir)
        .into_iter()
        .next()
        .unwrap_or_else(|| panic!("{dir}: empty"))
}

/// Provider components grouped by the provider they configure (`ECR`: `ecr`, `ecr-access-keys`), as
/// the overlay of the same name renders it.
fn components_by_provider() -> BTreeMap<String, Vec<String>> {
    let mut by = BTreeMap::<String, Vec<String>>::new();
    for component in provider_component_dirs() {
        let overlay = format!("deploy/overlays/{}", dir_name(&component));
        let objects = kustomize(&overlay);
        let c = container(the(&objects, "Deployment", &overlay), "regcreds");
        let provider = providers(c)
            .into_iter()
            .next()
            .unwrap_or_else(|| panic!("{overlay}: configures no provider"))
            .to_string();
        by.entry(provider).or_default().push(component);
    }
    by
}

/// Two sets of one component per provider, the first of each provider's components and the last
/// (`ecr`, then `ecr-access-keys`): between them, every provider component.
fn provider_combinations() -> Vec<Vec<String>> {
    let by = components_by_provider();
    let first = by.values().map(|v| v[0].clone()).collect();
    let last = by.values().map(|v| v[v.len() - 1].clone()).collect();
    vec![first, last]
}

/// `objects` (the base plus `components`) hold what each component's overlay renders — every env
/// entry exactly once and with the overlay's value, every volume and mount once, its pod labels and
/// ServiceAccount annotations — and nothing the base and those overlays do not have; they configure
/// exactly the overlays' providers and keep the base's hardening and RBAC.
fn assert_combines(objects: &[Value], components: &[&str], what: &str) {
    let deployment = the(objects, "Deployment", what);
    assert_locked_down(objects, deployment, what);
    assert_least_privilege(objects, what);
    let c = container(deployment, "regcreds");
    let names = env_names(c);
    let unique: BTreeSet<&str> = names.iter().copied().collect();
    assert_eq!(
        unique.len(),
        names.len(),
        "{what}: a variable is set twice: {names:?}"
    );
    let volumes = "/spec/template/spec/volumes";
    let base = kustomize("deploy/base");
    let base_deployment = the(&base, "Deployment", "deploy/base");
    let mut known_env: Vec<Value> = arr(container(base_deployment, "regcreds"), "/env").to_vec();
    let mut known_volumes: Vec<Value> = arr(base_deployment, volumes).to_vec();
    let mut expected_providers = BTreeSet::new();
    for component in components {
        let overlay = format!("deploy/overlays/{}", dir_name(component));
        let alone = kustomize(&overlay);
        let alone_deployment = the(&alone, "Deployment", &overlay);
        let alone_c = container(alone_deployment, "regcreds");
        expected_providers.extend(providers(alone_c).into_iter().map(str::to_string));
        known_env.extend(arr(alone_c, "/env").iter().cloned());
        known_volumes.extend(arr(alone_deployment, volumes).iter().cloned());
        for (list, from_overlay, combined) in [
            ("env", arr(alone_c, "/env"), arr(c, "/env")),
            (
                "volumeMounts",
                arr(alone_c, "/volumeMounts"),
                arr(c, "/volumeMounts"),
            ),
            (
                "volumes",
                arr(alone_deployment, volumes),
                arr(deployment, volumes),
            ),
        ] {
            for item in from_overlay {
                let n = combined.iter().filter(|x| *x == item).count();
                assert_eq!(n, 1, "{what}: {list} entry {item} of {overlay} appears {n} times");
            }
        }
        for (of, pointer) in [
            ("Deployment", "/spec/template/metadata/labels"),
            ("ServiceAccount", "/metadata/annotations"),
        ] {
            let map = |objects: &[Value], what: &str| {
                the(objects, of, what)
                    .pointer(pointer)
                    .and_then(Value::as_object)
                    .cloned()
                    .unwrap_or_default()
            };
            let combined = map(objects, what);
            for (key, value) in map(&alone, &overlay) {
                assert_eq!(
                    combined.get(&key),
                    Some(&value),
                    "{what}: {of} {pointer} {key} of {overlay}"
                );
            }
        }
    }
    for e in arr(c, "/env") {
        assert!(
            known_env.contains(e),
            "{what}: {e} is in no overlay of {components:?}"
        );
    }
    for v in arr(deployment, volumes) {
        assert!(
            known_volumes.contains(v),
            "{what}: volume {v} is in no overlay of {components:?}"
        );
    }
    let configured: BTreeSet<String> = providers(c).into_iter().map(str::to_string).collect();
    assert_eq!(configured, expected_providers, "{what}: providers");
}

#[test]
fn every_overlay_is_the_base_plus_its_provider_component_and_nothing_else() {
    let components = provider_component_dirs();
    let overlays = overlay_dirs();
    let names = |dirs: &[String]| dirs.iter().map(|d| dir_name(d).to_string()).collect::<Vec<_>>();
    assert_eq!(
        names(&components),
        names(&overlays),
        "one provider component per overlay, named alike"
    );
    for component in &components {
        let k = kustomization_of(component);
        assert_eq!(
            s(&k, "/apiVersion"),
            "kustomize.config.k8s.io/v1alpha1",
            "{component}"
        );
        assert_eq!(s(&k, "/kind"), "Component", "{component}");
        assert!(
            k.get("resources").is_none(),
            "{component}: a provider component patches the base's objects, it adds none"
        );
    }
    for overlay in &overlays {
        let k = kustomization_of(overlay);
        let keys: BTreeSet<&str> = k
            .as_object()
            .expect("a mapping")
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(
            keys,
            BTreeSet::from(["apiVersion", "kind", "resources", "components"]),
            "{overlay}: the base and its component, no patch of its own"
        );
        assert_eq!(k.get("resources"), Some(&json!(["../../base"])), "{overlay}");
        assert_eq!(
            k.get("components"),
            Some(&json!([format!(
                "../../components/providers/{}",
                dir_name(overlay)
            )])),
            "{overlay}"
        );
    }
}

#[test]
fn provider_components_combine_with_no_copied_patch_and_each_variable_exactly_once() {
    let k = kustomization_of(COMBINED_EXAMPLE);
    assert!(
        k.get("patches").is_none(),
        "{COMBINED_EXAMPLE}: combines by components alone"
    );
    let listed: Vec<&str> = arr(&k, "/components").iter().filter_map(Value::as_str).collect();
    assert_eq!(
        listed,
        [
            "../../components/providers/ecr",
            "../../components/providers/dockerhub"
        ],
        "{COMBINED_EXAMPLE}"
    );
    let objects = kustomize(COMBINED_EXAMPLE);
    assert_combines(
        &objects,
        &[
            "deploy/components/providers/ecr",
            "deploy/components/providers/dockerhub",
        ],
        COMBINED_EXAMPLE,
    );

    let combinations = provider_combinations();
    let covered: BTreeSet<&String> = combinations.iter().flatten().collect();
    assert_eq!(
        covered.into_iter().cloned().collect::<Vec<_>>(),
        provider_component_dirs(),
        "every provider component is combined"
    );
    for combination in &combinations {
        let components: Vec<&str> = combination.iter().map(String::as_str).collect();
        let what = format!("base + {components:?}");
        assert_combines(&kustomize_base_with(&components), &components, &what);
    }
}

#[tokio::test]
async fn the_combined_example_and_all_providers_at_once_pass_a_server_side_dry_run() {
    let cp = ControlPlane::shared().await;
    dry_run(cp, &kustomize(COMBINED_EXAMPLE), COMBINED_EXAMPLE).await;
    for combination in provider_combinations() {
        let components: Vec<&str> = combination.iter().map(String::as_str).collect();
        let what = format!("base + {components:?}");
        dry_run(cp, &kustomize_base_with(&components), &what).await;
    }
}

// === pod healing: the extra RBAC comes only with the switch ===

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
    let mut cmd = Command::new(regcreds_testkit::regcreds_binary());
    cmd.args(["run", "--help"]);
    let help = run(cmd, None).unwrap_or_else(|e| panic!("{e}"));
    for name in env_names(c)
        .into_iter()
        .filter(|n| n.starts_with("REGCREDS_HEAL_"))
    {
        assert!(
            help.contains(&format!("[env: {name}")),
            "{what}: {name} is not declared"
        );
    }
    let cluster = grants(the(&installed(objects), "ClusterRole", what));
    let expected: Grants = regcreds_cluster_grants()
        .union(&heal_pods_grants())
        .cloned()
        .collect();
    assert_eq!(
        cluster,
        expected,
        "{what}: ClusterRole\n{}",
        diff(&cluster, &expected)
    );
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

/// The variables of the README's configuration tables (first column of every `| variable |` table).
fn readme_table_variables() -> BTreeSet<String> {
    let readme = std::fs::read_to_string(repo().join("README.md")).expect("README.md");
    let mut vars = BTreeSet::new();
    let mut in_table = false;
    for line in readme.lines() {
        if line.starts_with("| variable |") {
            in_table = true;
            continue;
        }
        if !line.starts_with('|') {
            in_table = false;
            continue;
        }
        let Some(first) = line.split('|').nth(1).filter(|_| in_table) else {
            continue;
        };
        for quoted in first.split('`').skip(1).step_by(2) {
            if quoted.starts_with("REGCREDS_")
                && quoted
                    .chars()
                    .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
            {
                vars.insert(quoted.to_string());
            }
        }
    }
    vars
}

/// How the chart renders a variable it sets from its own values.
enum Rendered {
    /// `value: ...`
    Value(&'static str),
    /// `valueFrom.fieldRef.fieldPath`
    Field(&'static str),
    /// `valueFrom.secretKeyRef` (Secret, key)
    SecretKey(&'static str, &'static str),
}

/// Issue 16: every variable of the README's tables (REGCREDS_CHECK_* included) can be set through the
/// chart: from a value of its own, or through `extraEnv` when the chart does not set it — never twice.
#[test]
fn every_variable_of_the_readme_tables_can_be_set_through_the_chart() {
    let Some(helm) = helm_or_note() else { return };
    use Rendered::{Field, SecretKey, Value as V};
    let hub = [
        "providers.dockerhub.enabled=true",
        "providers.dockerhub.existingSecret=hub",
    ];
    let st = [
        "providers.static.enabled=true",
        "providers.static.server=reg.example:5000",
        "providers.static.existingSecret=st",
    ];
    let dcj = [
        "providers.dockerconfigjson.enabled=true",
        "providers.dockerconfigjson.existingSecret=dcj",
    ];
    let ecr = [
        "providers.ecr.enabled=true",
        "providers.ecr.regions={us-east-1,eu-west-1}",
    ];
    let gcr = ["providers.gcr.enabled=true", "providers.gcr.existingSecret=g"];
    let acr = [
        "providers.acr.enabled=true",
        "providers.acr.registry=r.azurecr.io",
        "providers.acr.tenantId=t",
        "providers.acr.clientId=c",
        "providers.acr.existingSecret=a",
    ];
    let ghcr = [
        "providers.ghcr.enabled=true",
        "providers.ghcr.appId=123456",
        "providers.ghcr.installationId=98765432",
        "providers.ghcr.existingSecret=gh",
        // The App provider needs a probe image on its registry (also for the registry override below).
        "checks.images={ghcr.io/my-org/app:1,containers.ghe.example/my-org/app:1}",
    ];
    let quay = ["providers.quay.enabled=true", "providers.quay.robot=org+bot"];
    let with =
        |base: &[&'static str], extra: &[&'static str]| -> Vec<&'static str> { [base, extra].concat() };
    let direct: Vec<(&str, Vec<&str>, Rendered)> = vec![
        ("REGCREDS_STATIC_SERVER", with(&st, &[]), V("reg.example:5000")),
        (
            "REGCREDS_STATIC_USER",
            with(&st, &[]),
            SecretKey("st", "username"),
        ),
        (
            "REGCREDS_STATIC_PASSWORD",
            with(&st, &[]),
            SecretKey("st", "password"),
        ),
        (
            "REGCREDS_STATIC_SECRET_NAME",
            with(&st, &["providers.static.secretName=st-pull"]),
            V("st-pull"),
        ),
        (
            "REGCREDS_STATIC_SCHEDULE",
            with(&st, &["providers.static.schedule=0 */5 * * * *"]),
            V("0 */5 * * * *"),
        ),
        (
            "REGCREDS_DOCKERCONFIGJSON_PATH",
            with(&dcj, &[]),
            V("/etc/regcreds/dockerconfigjson/.dockerconfigjson"),
        ),
        (
            "REGCREDS_DOCKERCONFIGJSON_SECRET_NAME",
            with(&dcj, &["providers.dockerconfigjson.secretName=d"]),
            V("d"),
        ),
        (
            "REGCREDS_DOCKERCONFIGJSON_SCHEDULE",
            with(&dcj, &["providers.dockerconfigjson.schedule=*/30 * * * * *"]),
            V("*/30 * * * * *"),
        ),
        (
            "REGCREDS_DOCKERHUB_USER",
            with(&hub, &[]),
            SecretKey("hub", "username"),
        ),
        (
            "REGCREDS_DOCKERHUB_PASSWORD",
            with(&hub, &[]),
            SecretKey("hub", "password"),
        ),
        (
            "REGCREDS_DOCKERHUB_SECRET_NAME",
            with(&hub, &["providers.dockerhub.secretName=h"]),
            V("h"),
        ),
        (
            "REGCREDS_DOCKERHUB_SCHEDULE",
            with(&hub, &["providers.dockerhub.schedule=0 0 * * * *"]),
            V("0 0 * * * *"),
        ),
        ("REGCREDS_ECR_REGIONS", with(&ecr, &[]), V("us-east-1,eu-west-1")),
        (
            "REGCREDS_ECR_ACCOUNTS",
            with(&ecr, &["string:providers.ecr.accounts=123456789012"]),
            V("123456789012"),
        ),
        (
            "REGCREDS_ECR_ASSUME_ROLE",
            with(&ecr, &["providers.ecr.assumeRole=arn:aws:iam::1:role/r"]),
            V("arn:aws:iam::1:role/r"),
        ),
        (
            "REGCREDS_ECR_PUBLIC",
            with(&ecr, &["providers.ecr.public=true"]),
            V("true"),
        ),
        (
            "REGCREDS_ECR_ENDPOINT_URL",
            with(&ecr, &["providers.ecr.endpointUrl=https://vpce.example"]),
            V("https://vpce.example"),
        ),
        (
            "REGCREDS_ECR_SECRET_NAME",
            with(&ecr, &["providers.ecr.secretName=e"]),
            V("e"),
        ),
        (
            "REGCREDS_ECR_SCHEDULE",
            with(&ecr, &["providers.ecr.schedule=0 0 */2 * * *"]),
            V("0 0 */2 * * *"),
        ),
        (
            "REGCREDS_ECR_TIMEOUT_SECONDS",
            with(&ecr, &["providers.ecr.timeoutSeconds=12"]),
            V("12"),
        ),
        (
            "REGCREDS_GCR_KEY_FILE",
            with(&gcr, &[]),
            V("/etc/regcreds/gcr/key.json"),
        ),
        (
            "REGCREDS_GCR_USE_METADATA",
            vec!["providers.gcr.enabled=true", "providers.gcr.useMetadata=true"],
            V("true"),
        ),
        (
            "REGCREDS_GCR_HOSTS",
            with(&gcr, &["providers.gcr.hosts={gcr.io,europe-docker.pkg.dev}"]),
            V("gcr.io,europe-docker.pkg.dev"),
        ),
        (
            "REGCREDS_GCR_METADATA_URL",
            with(&gcr, &["providers.gcr.metadataUrl=http://169.254.169.254"]),
            V("http://169.254.169.254"),
        ),
        (
            "REGCREDS_GCR_SECRET_NAME",
            with(&gcr, &["providers.gcr.secretName=gg"]),
            V("gg"),
        ),
        (
            "REGCREDS_GCR_SCHEDULE",
            with(&gcr, &["providers.gcr.schedule=0 */20 * * * *"]),
            V("0 */20 * * * *"),
        ),
        ("REGCREDS_ACR_REGISTRY", with(&acr, &[]), V("r.azurecr.io")),
        ("REGCREDS_ACR_AUTH", with(&acr, &[]), V("client-secret")),
        ("REGCREDS_ACR_TENANT_ID", with(&acr, &[]), V("t")),
        ("REGCREDS_ACR_CLIENT_ID", with(&acr, &[]), V("c")),
        (
            "REGCREDS_ACR_CLIENT_SECRET",
            with(&acr, &[]),
            SecretKey("a", "client-secret"),
        ),
        (
            "REGCREDS_ACR_AUTHORITY_HOST",
            with(&acr, &["providers.acr.authorityHost=https://login.example"]),
            V("https://login.example"),
        ),
        (
            "REGCREDS_ACR_EXCHANGE_URL",
            with(&acr, &["providers.acr.exchangeUrl=https://pe.example"]),
            V("https://pe.example"),
        ),
        (
            "REGCREDS_ACR_CA_FILE",
            with(&acr, &["providers.acr.caFile=/etc/ca/ca.pem"]),
            V("/etc/ca/ca.pem"),
        ),
        (
            "REGCREDS_ACR_SCOPE",
            with(
                &acr,
                &["providers.acr.scope=https://management.azure.com/.default"],
            ),
            V("https://management.azure.com/.default"),
        ),
        (
            "REGCREDS_ACR_SECRET_NAME",
            with(&acr, &["providers.acr.secretName=aa"]),
            V("aa"),
        ),
        (
            "REGCREDS_ACR_SCHEDULE",
            with(&acr, &["providers.acr.schedule=0 */15 * * * *"]),
            V("0 */15 * * * *"),
        ),
        ("REGCREDS_GHCR_APP_ID", with(&ghcr, &[]), V("123456")),
        ("REGCREDS_GHCR_INSTALLATION_ID", with(&ghcr, &[]), V("98765432")),
        (
            "REGCREDS_GHCR_PRIVATE_KEY_FILE",
            with(&ghcr, &[]),
            V("/etc/regcreds/ghcr/private-key.pem"),
        ),
        (
            "REGCREDS_GHCR_REPOSITORIES",
            with(&ghcr, &["providers.ghcr.repositories={app,web}"]),
            V("app,web"),
        ),
        (
            "REGCREDS_GHCR_PERMISSIONS",
            with(&ghcr, &["providers.ghcr.permissions=all"]),
            V("all"),
        ),
        (
            "REGCREDS_GHCR_API_URL",
            with(&ghcr, &["providers.ghcr.apiUrl=https://ghe.example/api/v3"]),
            V("https://ghe.example/api/v3"),
        ),
        (
            "REGCREDS_GHCR_REGISTRY",
            with(&ghcr, &["providers.ghcr.registry=containers.ghe.example"]),
            V("containers.ghe.example"),
        ),
        (
            "REGCREDS_GHCR_SECRET_NAME",
            with(&ghcr, &["providers.ghcr.secretName=gh-pull"]),
            V("gh-pull"),
        ),
        (
            "REGCREDS_GHCR_CA_FILE",
            with(&ghcr, &["providers.ghcr.caFile=/etc/ca/ghe.pem"]),
            V("/etc/ca/ghe.pem"),
        ),
        (
            "REGCREDS_GHCR_TIMEOUT_SECONDS",
            with(&ghcr, &["providers.ghcr.timeoutSeconds=12"]),
            V("12"),
        ),
        (
            "REGCREDS_GHCR_SCHEDULE",
            with(&ghcr, &["providers.ghcr.schedule=0 */10 * * * *"]),
            V("0 */10 * * * *"),
        ),
        ("REGCREDS_QUAY_ROBOT", with(&quay, &[]), V("org+bot")),
        (
            "REGCREDS_QUAY_FEDERATION_URL",
            with(&quay, &["providers.quay.federationUrl=https://quay-fed.example"]),
            V("https://quay-fed.example"),
        ),
        (
            "REGCREDS_QUAY_CA_FILE",
            with(&quay, &["providers.quay.caFile=/etc/ca/quay.pem"]),
            V("/etc/ca/quay.pem"),
        ),
        (
            "REGCREDS_QUAY_TIMEOUT_SECONDS",
            with(&quay, &["providers.quay.timeoutSeconds=9"]),
            V("9"),
        ),
        (
            "REGCREDS_QUAY_SCHEDULE",
            with(&quay, &["providers.quay.schedule=0 */20 * * * *"]),
            V("0 */20 * * * *"),
        ),
        (
            "REGCREDS_QUAY_REGISTRY",
            with(&quay, &["providers.quay.registry=quay.example.com"]),
            V("quay.example.com"),
        ),
        (
            "REGCREDS_QUAY_TOKEN_FILE",
            with(&quay, &[]),
            V("/var/run/secrets/regcreds/quay/token"),
        ),
        (
            "REGCREDS_QUAY_SECRET_NAME",
            with(&quay, &["providers.quay.secretName=q"]),
            V("q"),
        ),
        (
            "REGCREDS_SERVICE_ACCOUNTS",
            with(&hub, &["serviceAccounts={default,builder}"]),
            V("default,builder"),
        ),
        (
            "REGCREDS_EXCLUDE_NAMESPACES",
            with(&hub, &["excludeNamespaces={kube-*,legacy}"]),
            V("kube-*,legacy"),
        ),
        (
            "REGCREDS_NAMESPACE_SELECTOR",
            with(&hub, &["namespaceSelector=team=a"]),
            V("team=a"),
        ),
        ("REGCREDS_FORCE", with(&hub, &["force=true"]), V("true")),
        ("REGCREDS_TAKE_OVER", with(&hub, &["takeOver=false"]), V("false")),
        ("REGCREDS_NAMESPACE", with(&hub, &[]), Field("metadata.namespace")),
        ("REGCREDS_INSTANCE", with(&hub, &["instance=hub"]), V("hub")),
        ("REGCREDS_CONCURRENCY", with(&hub, &["concurrency=4"]), V("4")),
        (
            "REGCREDS_RESYNC_SECONDS",
            with(&hub, &["resyncSeconds=600"]),
            V("600"),
        ),
        ("REGCREDS_WATCH_MODE", with(&hub, &["watchMode=poll"]), V("poll")),
        (
            "REGCREDS_LEADER_ELECTION",
            with(&hub, &["leaderElection.enabled=false"]),
            V("false"),
        ),
        (
            "REGCREDS_LEASE_NAME",
            with(&hub, &["leaderElection.leaseName=hub-lease"]),
            V("hub-lease"),
        ),
        (
            "REGCREDS_LEASE_DURATION_SECONDS",
            with(&hub, &["leaderElection.leaseDurationSeconds=20"]),
            V("20"),
        ),
        ("REGCREDS_POD_NAME", with(&hub, &[]), Field("metadata.name")),
        (
            "REGCREDS_ADMIN_ADDR",
            with(&hub, &["adminPort=9090"]),
            V("0.0.0.0:9090"),
        ),
        (
            "REGCREDS_LOG_FORMAT",
            with(&hub, &["logFormat=plain"]),
            V("plain"),
        ),
        ("REGCREDS_LOG", with(&hub, &["logLevel=debug"]), V("debug")),
        (
            "REGCREDS_CHECK_IMAGES",
            with(&hub, &["checks.images={docker.io/library/busybox:1}"]),
            V("docker.io/library/busybox:1"),
        ),
        (
            "REGCREDS_CHECK_CA_FILE",
            with(&hub, &["checks.caFile=/etc/ca/ca.pem"]),
            V("/etc/ca/ca.pem"),
        ),
        (
            "REGCREDS_CHECK_INSECURE_HOSTS",
            with(&hub, &["checks.insecureHosts={reg.local:5000}"]),
            V("reg.local:5000"),
        ),
        (
            "REGCREDS_CHECK_TIMEOUT_SECONDS",
            with(&hub, &["checks.timeoutSeconds=5"]),
            V("5"),
        ),
        (
            "REGCREDS_CHECK_INTERVAL_SECONDS",
            with(&hub, &["checks.intervalSeconds=0"]),
            V("0"),
        ),
        (
            "REGCREDS_HEAL_PODS",
            with(&hub, &["healPods.enabled=true"]),
            V("true"),
        ),
        (
            "REGCREDS_HEAL_AFTER_CREDENTIAL_CHANGE",
            with(
                &hub,
                &["healPods.enabled=true", "healPods.afterCredentialChange=false"],
            ),
            V("false"),
        ),
        (
            "REGCREDS_HEAL_RATE",
            with(&hub, &["healPods.enabled=true", "healPods.rate=0.5"]),
            V("0.5"),
        ),
        (
            "REGCREDS_HEAL_BURST",
            with(&hub, &["healPods.enabled=true", "healPods.burst=7"]),
            V("7"),
        ),
        (
            "REGCREDS_HEAL_NAMESPACE_RATE",
            with(&hub, &["healPods.enabled=true", "healPods.namespaceRate=2"]),
            V("2"),
        ),
        (
            "REGCREDS_HEAL_NAMESPACE_BURST",
            with(&hub, &["healPods.enabled=true", "healPods.namespaceBurst=3"]),
            V("3"),
        ),
    ];
    let vars = readme_table_variables();
    assert!(
        vars.contains("REGCREDS_CHECK_INTERVAL_SECONDS") && vars.len() >= 50,
        "README tables found: {vars:?}"
    );
    // NB: `--set` turns digits into numbers; a `string:` prefix passes the value with `--set-string`.
    let render = |sets: &[&str]| -> Value {
        let mut cmd = Command::new(&helm);
        cmd.args(["template", "regcreds"])
            .arg(repo().join(CHART))
            .args(["--namespace", "regcreds"])
            .args(["--kube-version", K8S_VERSION]);
        for set in sets {
            match set.strip_prefix("string:") {
                Some(set) => cmd.args(["--set-string", set]),
                None => cmd.args(["--set", set]),
            };
        }
        let yaml = run(cmd, None).unwrap_or_else(|e| panic!("{sets:?}: {e}"));
        the(&parse(&yaml, "chart"), "Deployment", "chart").clone()
    };
    let entries = |deployment: &Value, var: &str| -> Vec<Value> {
        arr(container(deployment, "regcreds"), "/env")
            .iter()
            .filter(|e| s(e, "/name") == var)
            .cloned()
            .collect()
    };
    let mut through_extra_env = Vec::new();
    for var in &vars {
        let Some((_, sets, rendered)) = direct.iter().find(|(v, ..)| v == var) else {
            through_extra_env.push(var.clone());
            continue;
        };
        let deployment = render(sets);
        let found = entries(&deployment, var);
        assert_eq!(found.len(), 1, "{var} with {sets:?}: {found:?}");
        let entry = &found[0];
        match rendered {
            V(value) => assert_eq!(s(entry, "/value"), *value, "{var} with {sets:?}"),
            Field(path) => assert_eq!(s(entry, "/valueFrom/fieldRef/fieldPath"), *path, "{var}"),
            SecretKey(secret, key) => {
                assert_eq!(s(entry, "/valueFrom/secretKeyRef/name"), *secret, "{var}");
                assert_eq!(s(entry, "/valueFrom/secretKeyRef/key"), *key, "{var}");
            }
        }
    }
    // The rest through extraEnv: it must reach the container exactly once (the chart does not set it too),
    // with every provider enabled.
    let all_providers = chart_ci_values()
        .into_iter()
        .find(|p| p.ends_with("all-providers-values.yaml"))
        .expect("all-providers-values.yaml");
    let sets: Vec<String> = through_extra_env
        .iter()
        .enumerate()
        .flat_map(|(i, var)| {
            [
                format!("extraEnv[{i}].name={var}"),
                format!("extraEnv[{i}].value=x{i}"),
            ]
        })
        .collect();
    let sets: Vec<&str> = sets.iter().map(String::as_str).collect();
    let yaml = helm_template(&helm, "regcreds", &[all_providers], &sets).unwrap_or_else(|e| panic!("{e}"));
    let deployment = the(&parse(&yaml, "chart"), "Deployment", "chart").clone();
    for (i, var) in through_extra_env.iter().enumerate() {
        let found = entries(&deployment, var);
        assert_eq!(found.len(), 1, "{var} through extraEnv: {found:?}");
        assert_eq!(s(&found[0], "/value"), format!("x{i}"), "{var}");
    }
    println!("set through extraEnv: {through_extra_env:?}");
}

// === uninstall: the chart's pre-delete hook and the kustomize component ===

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

/// `regcreds cleanup --help`: the variables the cleanup declares.
fn cleanup_help() -> String {
    let mut cmd = Command::new(regcreds_testkit::regcreds_binary());
    cmd.args(["cleanup", "--help"]);
    run(cmd, None).unwrap_or_else(|e| panic!("{e}"))
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
    let cluster = grants(the(&hooks, "ClusterRole", what));
    let expected = cleanup_cluster_grants();
    assert_eq!(
        cluster,
        expected,
        "{what}: hook ClusterRole\n{}",
        diff(&cluster, &expected)
    );
    let role = the(&hooks, "Role", what);
    let leader_election = env(container(deployment, "regcreds"), "REGCREDS_LEADER_ELECTION")
        .is_some_and(|e| s(e, "/value") == "true");
    let namespaced = grants(role);
    let expected = cleanup_namespace_grants(leader_election);
    assert_eq!(
        namespaced,
        expected,
        "{what}: hook Role\n{}",
        diff(&namespaced, &expected)
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
            help.contains(&format!("[env: {var}=")) || help.contains(&format!("[env: {var}]")),
            "{what}: the hook sets {var}, which `regcreds cleanup` does not declare"
        );
    }
    assert!(
        arr(c, "/env")
            .iter()
            .all(|e| e.pointer("/valueFrom/secretKeyRef").is_none()),
        "{what}: the hook needs no credential"
    );
    let selector = deployment
        .pointer("/spec/selector/matchLabels")
        .and_then(Value::as_object)
        .expect("selector");
    let labels = job.pointer("/spec/template/metadata/labels").expect("labels");
    assert!(
        !selector.iter().all(|(k, v)| labels.get(k) == Some(v)),
        "{what}: the Deployment's selector matches the hook's pod: --stop would wait for itself"
    );
}

#[test]
fn the_chart_cleans_up_on_uninstall_with_a_hardened_least_privilege_hook_unless_turned_off() {
    let Some(helm) = helm_or_note() else { return };
    let help = cleanup_help();
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
    let selector = deployment
        .pointer("/spec/selector/matchLabels")
        .and_then(Value::as_object)
        .expect("selector");
    let labels = job.pointer("/spec/template/metadata/labels").expect("labels");
    assert!(
        !selector.iter().all(|(k, v)| labels.get(k) == Some(v)),
        "{what}: the Deployment's selector matches the Job's pod"
    );
    let help = cleanup_help();
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
