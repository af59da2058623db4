//! The Helm chart's platform conventions (issue 26): `kubeVersion` and metadata, scrape annotations only
//! without a ServiceMonitor or PodMonitor, the PodMonitor, the NetworkPolicy, `extraObjects`,
//! `commonLabels` on every object, the ghcr and quay values, and every convention switched on at once
//! (with OpenShift's, whose own checks are in `openshift.rs`).
//!
//! Each option is rendered with helm (for the test control plane's Kubernetes version) and the results
//! are dry-run server-side against the test kit's control plane.
//!
//! The chart README generated from `values.yaml` is checked by `cargo xtask chart-readme --check`'s
//! test in `xtask/src/chart_readme.rs`.

use std::collections::BTreeMap;

use regcreds_testkit::{
    ControlPlane,
    manifests::{
        ONE_PROVIDER, arr, container, dry_run, helm_lint, helm_or_note, helm_template, kind, name,
        render_chart_err_with_values, render_chart_with_values, render_one_provider, repo,
        restricted_namespace, run, s, the, values_file,
    },
    versions::K8S_VERSION,
};
use serde_json::{Value, json};

/// The chart with Docker Hub, the values `yaml` and `sets`, in `namespace`.
fn render_with(helm: &std::path::Path, namespace: &str, yaml: &str, sets: &[&str]) -> Vec<Value> {
    let file = values_file(yaml);
    render_chart_with_values(
        helm,
        namespace,
        &[file.path().to_path_buf()],
        &[&ONE_PROVIDER[..], sets].concat(),
    )
}

fn render_err(helm: &std::path::Path, yaml: &str, sets: &[&str]) -> String {
    let file = values_file(yaml);
    render_chart_err_with_values(
        helm,
        &[file.path().to_path_buf()],
        &[&ONE_PROVIDER[..], sets].concat(),
    )
}

fn labels(v: &Value, pointer: &str) -> BTreeMap<String, String> {
    v.pointer(pointer)
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
                .collect()
        })
        .unwrap_or_default()
}

fn scrape_annotations(deployment: &Value) -> Vec<String> {
    deployment
        .pointer("/spec/template/metadata/annotations")
        .and_then(Value::as_object)
        .map(|m| {
            m.keys()
                .filter(|k| k.starts_with("prometheus.io/"))
                .cloned()
                .collect()
        })
        .unwrap_or_default()
}

// === metadata ===

#[test]
fn the_chart_states_the_supported_kubernetes_range_and_where_it_comes_from() {
    let chart: Value = serde_saphyr::from_str(
        &std::fs::read_to_string(repo().join("deploy/helm/regcreds/Chart.yaml")).expect("Chart.yaml"),
    )
    .expect("Chart.yaml is YAML");
    // kube 5 / k8s-openapi 0.29 support Kubernetes 1.33 and later.
    assert_eq!(s(&chart, "/kubeVersion"), ">=1.33.0-0");
    assert!(s(&chart, "/home").starts_with("https://"), "home");
    assert!(!arr(&chart, "/sources").is_empty(), "sources");
    assert!(
        arr(&chart, "/maintainers")
            .iter()
            .all(|m| !s(m, "/name").is_empty())
            && !arr(&chart, "/maintainers").is_empty(),
        "maintainers"
    );
    assert!(arr(&chart, "/keywords").len() >= 5, "keywords");

    let Some(helm) = helm_or_note() else { return };
    helm_lint(&helm, &[], &ONE_PROVIDER).unwrap_or_else(|e| panic!("{e}"));
    let version = |v: &str| {
        let mut cmd = std::process::Command::new(&helm);
        cmd.args(["template", "regcreds"])
            .arg(repo().join("deploy/helm/regcreds"))
            .args(["--kube-version", v]);
        for set in ONE_PROVIDER {
            cmd.args(["--set", set]);
        }
        run(cmd, None)
    };
    for supported in ["1.33.0", "v1.33.4-eks-1234", "1.35.1+k3s1", K8S_VERSION] {
        version(supported).unwrap_or_else(|e| panic!("Kubernetes {supported} is supported: {e}"));
    }
    for unsupported in ["1.32.9", "1.20.0"] {
        let e = version(unsupported).expect_err(unsupported);
        assert!(e.contains("kubeVersion"), "{unsupported}: {e}");
    }
}

// === monitoring ===

#[test]
fn scrape_annotations_appear_only_when_no_service_monitor_or_pod_monitor_is_requested() {
    let Some(helm) = helm_or_note() else { return };
    let default = render_one_provider(&helm, "regcreds", &[]);
    assert_eq!(
        scrape_annotations(the(&default, "Deployment", "default")),
        ["prometheus.io/path", "prometheus.io/port", "prometheus.io/scrape"]
    );
    assert!(!default.iter().any(|o| kind(o).ends_with("Monitor")));

    let off = render_one_provider(&helm, "regcreds", &["metrics.podAnnotations=false"]);
    assert!(scrape_annotations(the(&off, "Deployment", "off")).is_empty());

    let with_annotations = render_one_provider(&helm, "regcreds", &["podAnnotations.team=a"]);
    let d = the(&with_annotations, "Deployment", "podAnnotations");
    assert_eq!(s(d, "/spec/template/metadata/annotations/team"), "a");
    assert_eq!(scrape_annotations(d).len(), 3);

    for (monitor, what) in [
        ("metrics.serviceMonitor.enabled=true", "ServiceMonitor"),
        ("metrics.podMonitor.enabled=true", "PodMonitor"),
    ] {
        let objects = render_one_provider(&helm, "regcreds", &[monitor, "podAnnotations.team=a"]);
        let d = the(&objects, "Deployment", what);
        assert!(
            scrape_annotations(d).is_empty(),
            "{what}: scraped once, not twice"
        );
        assert_eq!(s(d, "/spec/template/metadata/annotations/team"), "a", "{what}");
        the(&objects, what, what);
    }

    let e = render_err(
        &helm,
        "",
        &[
            "metrics.serviceMonitor.enabled=true",
            "metrics.podMonitor.enabled=true",
        ],
    );
    assert!(e.contains("not both"), "{e}");
}

#[test]
fn the_pod_monitor_scrapes_the_admin_port_of_exactly_the_deployments_pods() {
    let Some(helm) = helm_or_note() else { return };
    let objects = render_one_provider(
        &helm,
        "regcreds",
        &[
            "metrics.podMonitor.enabled=true",
            "metrics.podMonitor.interval=15s",
            "metrics.podMonitor.labels.release=prometheus",
        ],
    );
    let monitor = the(&objects, "PodMonitor", "podMonitor");
    let deployment = the(&objects, "Deployment", "podMonitor");
    assert_eq!(s(monitor, "/apiVersion"), "monitoring.coreos.com/v1");
    assert_eq!(s(monitor, "/metadata/namespace"), "regcreds");
    assert_eq!(s(monitor, "/metadata/labels/release"), "prometheus");
    assert_eq!(
        monitor.pointer("/spec/selector/matchLabels"),
        deployment.pointer("/spec/selector/matchLabels"),
        "the PodMonitor selects what the Deployment selects"
    );
    assert_eq!(
        arr(monitor, "/spec/namespaceSelector/matchNames"),
        [json!("regcreds")]
    );
    let endpoints = arr(monitor, "/spec/podMetricsEndpoints");
    assert_eq!(endpoints.len(), 1);
    assert_eq!(s(&endpoints[0], "/port"), "admin");
    assert_eq!(s(&endpoints[0], "/path"), "/metrics");
    assert_eq!(s(&endpoints[0], "/interval"), "15s");
    let ports = arr(container(deployment, "regcreds"), "/ports");
    assert!(ports.iter().any(|p| s(p, "/name") == "admin"), "{ports:?}");
    assert!(
        !objects.iter().any(|o| kind(o) == "Service"),
        "a PodMonitor needs no Service"
    );
}

// === NetworkPolicy ===

#[test]
fn the_network_policy_allows_only_the_api_server_dns_the_listed_registries_and_the_admin_port() {
    let Some(helm) = helm_or_note() else { return };
    assert!(
        !render_one_provider(&helm, "regcreds", &[])
            .iter()
            .any(|o| kind(o) == "NetworkPolicy"),
        "off by default"
    );
    let e = render_err(&helm, "", &["networkPolicy.enabled=true"]);
    assert!(e.contains("networkPolicy.apiServer.cidrs is required"), "{e}");

    let objects = render_one_provider(
        &helm,
        "regcreds",
        &[
            "networkPolicy.enabled=true",
            "networkPolicy.apiServer.cidrs={10.0.0.10/32,10.0.0.11/32}",
            "networkPolicy.apiServer.ports={6443}",
            "networkPolicy.registries[0].cidrs={52.94.0.0/16}",
            "networkPolicy.registries[1].cidrs={10.20.0.0/16}",
            "networkPolicy.registries[1].ports={5000}",
            "networkPolicy.metrics.from[0].namespaceSelector.matchLabels.team=monitoring",
            "networkPolicy.extraEgress[0].to[0].ipBlock.cidr=192.0.2.1/32",
            "adminPort=9090",
        ],
    );
    let policy = the(&objects, "NetworkPolicy", "networkPolicy");
    let deployment = the(&objects, "Deployment", "networkPolicy");
    let pod_labels = labels(deployment, "/spec/template/metadata/labels");
    for (k, v) in labels(policy, "/spec/podSelector/matchLabels") {
        assert_eq!(
            pod_labels.get(&k),
            Some(&v),
            "the policy selects regcreds' pods ({k})"
        );
    }
    assert_eq!(
        arr(policy, "/spec/policyTypes"),
        [json!("Ingress"), json!("Egress")]
    );

    let ingress = arr(policy, "/spec/ingress");
    assert_eq!(ingress.len(), 1, "{ingress:?}");
    assert_eq!(
        arr(&ingress[0], "/ports"),
        [json!({"port": 9090, "protocol": "TCP"})]
    );
    assert_eq!(
        arr(&ingress[0], "/from"),
        [json!({"namespaceSelector": {"matchLabels": {"team": "monitoring"}}})]
    );

    let egress = arr(policy, "/spec/egress");
    let rule = |cidr: &str| -> &Value {
        egress
            .iter()
            .find(|r| arr(r, "/to").iter().any(|p| s(p, "/ipBlock/cidr") == cidr))
            .unwrap_or_else(|| panic!("no egress rule to {cidr}: {egress:?}"))
    };
    let tcp = |ports: &[u16]| -> Vec<Value> {
        ports
            .iter()
            .map(|p| json!({"port": p, "protocol": "TCP"}))
            .collect()
    };
    let api = rule("10.0.0.10/32");
    assert_eq!(arr(api, "/to").len(), 2, "both API server addresses");
    assert_eq!(arr(api, "/ports"), tcp(&[6443]).as_slice());
    assert_eq!(
        arr(rule("52.94.0.0/16"), "/ports"),
        tcp(&[443]).as_slice(),
        "443 by default"
    );
    assert_eq!(arr(rule("10.20.0.0/16"), "/ports"), tcp(&[5000]).as_slice());
    assert!(
        arr(rule("192.0.2.1/32"), "/ports").is_empty(),
        "extraEgress as written"
    );
    let dns = egress
        .iter()
        .find(|r| {
            arr(r, "/to")
                .iter()
                .any(|p| s(p, "/podSelector/matchLabels/k8s-app") == "kube-dns")
        })
        .unwrap_or_else(|| panic!("no DNS rule: {egress:?}"));
    assert_eq!(
        arr(dns, "/ports"),
        [
            json!({"port": 53, "protocol": "UDP"}),
            json!({"port": 53, "protocol": "TCP"})
        ]
    );
    assert_eq!(
        egress.len(),
        5,
        "API server, DNS, two registries, one extra: {egress:?}"
    );

    let no_dns = render_one_provider(
        &helm,
        "regcreds",
        &[
            "networkPolicy.enabled=true",
            "networkPolicy.apiServer.cidrs={10.0.0.10/32}",
            "networkPolicy.dns.enabled=false",
        ],
    );
    assert_eq!(
        arr(the(&no_dns, "NetworkPolicy", "no dns"), "/spec/egress").len(),
        1
    );
}

// === commonLabels and extraObjects ===

/// Everything that can be switched on, plus commonLabels, so "every object" means every kind the chart has.
const EVERYTHING: [&str; 8] = [
    "commonLabels.team=platform",
    "commonLabels.app\\.kubernetes\\.io/name=not-regcreds",
    "replicaCount=2",
    "metrics.service.enabled=true",
    "metrics.podMonitor.enabled=true",
    "healPods.enabled=true",
    "networkPolicy.enabled=true",
    "networkPolicy.apiServer.cidrs={10.0.0.10/32}",
];

/// An extra object for [`EVERYTHING`].
const EXTRA_CONFIG_MAP: &str = r#"
extraObjects:
  - apiVersion: v1
    kind: ConfigMap
    metadata:
      name: "{{ .Release.Name }}-extra"
    data:
      a: b
"#;

#[test]
fn common_labels_reach_every_object_and_pod_but_never_override_the_charts_own() {
    let Some(helm) = helm_or_note() else { return };
    let mut sets = EVERYTHING.to_vec();
    sets.push("metrics.podMonitor.enabled=false");
    sets.push("metrics.serviceMonitor.enabled=true");
    for sets in [EVERYTHING.to_vec(), sets] {
        let objects = render_with(&helm, "regcreds", EXTRA_CONFIG_MAP, &sets);
        let kinds: std::collections::BTreeSet<&str> = objects.iter().map(kind).collect();
        for wanted in [
            "Deployment",
            "Job",
            "NetworkPolicy",
            "PodDisruptionBudget",
            "ConfigMap",
            "Service",
        ] {
            assert!(kinds.contains(wanted), "{wanted} rendered: {kinds:?}");
        }
        for o in &objects {
            let what = format!("{} {}", kind(o), name(o));
            let l = labels(o, "/metadata/labels");
            assert_eq!(
                l.get("team").map(String::as_str),
                Some("platform"),
                "{what}: {l:?}"
            );
            if kind(o) != "ConfigMap" {
                // The chart's own label wins; an extra object keeps what commonLabels says.
                assert_eq!(
                    l.get("app.kubernetes.io/name").map(String::as_str),
                    Some("regcreds"),
                    "{what}"
                );
            }
            if let Some(template) = o.pointer("/spec/template/metadata/labels") {
                assert_eq!(
                    template.get("team"),
                    Some(&json!("platform")),
                    "{what}: pod labels"
                );
            }
        }
        let deployment = the(&objects, "Deployment", "everything");
        assert_eq!(
            deployment.pointer("/spec/selector/matchLabels"),
            Some(&json!({"app.kubernetes.io/name": "regcreds", "app.kubernetes.io/instance": "regcreds"}))
        );
        assert_eq!(
            s(
                deployment,
                "/spec/template/metadata/labels/app.kubernetes.io~1name"
            ),
            "regcreds",
            "the selector still matches the pods"
        );
        // The uninstall hook's pods must never match the Deployment's selector.
        let job = the(&objects, "Job", "everything");
        assert_eq!(
            s(job, "/spec/template/metadata/labels/app.kubernetes.io~1name"),
            "regcreds-cleanup"
        );
    }
}

#[test]
fn extra_objects_are_rendered_with_tpl_from_maps_or_strings() {
    let Some(helm) = helm_or_note() else { return };
    let objects = render_with(
        &helm,
        "regcreds",
        r#"
extraObjects:
  - apiVersion: v1
    kind: ConfigMap
    metadata:
      name: '{{ include "regcreds.fullname" . }}-ca'
    data:
      port: "{{ .Values.adminPort }}"
  - |
    apiVersion: v1
    kind: Secret
    metadata:
      name: {{ .Release.Name }}-token
      labels:
        own: label
    stringData:
      token: abc
"#,
        &["commonLabels.team=platform"],
    );
    let cm = objects
        .iter()
        .find(|o| kind(o) == "ConfigMap")
        .expect("ConfigMap from a map");
    assert_eq!(name(cm), "regcreds-ca");
    assert_eq!(s(cm, "/data/port"), "8080");
    let secret = objects
        .iter()
        .find(|o| kind(o) == "Secret")
        .expect("Secret from a string");
    assert_eq!(name(secret), "regcreds-token");
    assert_eq!(
        labels(secret, "/metadata/labels"),
        BTreeMap::from([("own".into(), "label".into()), ("team".into(), "platform".into())])
    );
    let e = render_err(&helm, "extraObjects: [just a string]", &[]);
    assert!(e.contains("extraObjects[0]"), "{e}");
}

// === ghcr and quay values ===

#[test]
fn ghcr_and_quay_take_schedule_timeout_and_ca_file_values_the_schema_checks() {
    let Some(helm) = helm_or_note() else { return };
    let base = [
        "providers.ghcr.enabled=true",
        "providers.ghcr.appId=1",
        "providers.ghcr.installationId=2",
        "providers.ghcr.existingSecret=gh",
        "checks.images={ghcr.io/my-org/app:1}",
        "providers.quay.enabled=true",
        "providers.quay.robot=org+bot",
    ];
    let good: Vec<&str> = base
        .iter()
        .copied()
        .chain([
            "providers.ghcr.schedule=0 */10 * * * *",
            "providers.ghcr.timeoutSeconds=12",
            "providers.ghcr.caFile=/etc/ca/ghe.pem",
            "providers.quay.schedule=0 */20 * * * *",
            "providers.quay.timeoutSeconds=9",
            "providers.quay.caFile=/etc/ca/quay.pem",
            "providers.quay.federationUrl=https://quay-fed.example",
        ])
        .collect();
    helm_lint(&helm, &[], &good).unwrap_or_else(|e| panic!("{e}"));
    for bad in [
        "providers.ghcr.timeoutSeconds=0",
        "providers.quay.timeoutSeconds=soon",
        "providers.quay.caFiles=/x",
    ] {
        let sets: Vec<&str> = base.iter().copied().chain([bad]).collect();
        let e = helm_template(&helm, "regcreds", &[], &sets).expect_err(bad);
        assert!(e.contains("schema"), "{bad}: {e}");
    }
}

#[tokio::test]
async fn every_convention_switched_on_passes_a_server_side_dry_run_under_the_restricted_pod_standard() {
    let Some(helm) = helm_or_note() else { return };
    let cp = ControlPlane::shared().await;
    let namespace = "regcreds-conventions";
    restricted_namespace(cp, namespace).await;
    let mut sets = EVERYTHING.to_vec();
    sets.push("openshift.enabled=true");
    let objects = render_with(&helm, namespace, EXTRA_CONFIG_MAP, &sets);
    for wanted in ["NetworkPolicy", "ConfigMap", "PodMonitor", "PodDisruptionBudget"] {
        assert!(objects.iter().any(|o| kind(o) == wanted), "{wanted}");
    }
    // extraObjects without a namespace land in the release namespace (helm install -n) — as kubectl would.
    let objects: Vec<Value> = objects
        .into_iter()
        .map(|mut o| {
            if s(&o, "/metadata/namespace").is_empty() && kind(&o) == "ConfigMap" {
                o["metadata"]["namespace"] = json!(namespace);
            }
            o
        })
        .collect();
    // The PodMonitor is reported as not dry-run (no Prometheus Operator CRDs on the test control plane).
    dry_run(cp, &objects, "chart with every convention").await;
}
