//! The alerts and the Grafana dashboard (issue 26): one source, checked by Prometheus' own `promtool`,
//! on metric names a running regcreds really serves.
//!
//! - The rules live in `deploy/helm/regcreds/files/prometheus-rules.yaml` and the dashboard in
//!   `…/files/grafana-dashboard.json`; the chart renders them with `.Files.Get`, and the kustomize
//!   component `deploy/components/monitoring` holds copies this test keeps equal
//!   (`REGCREDS_WRITE_GENERATED=1` rewrites them). Both renderings are compared with the source.
//! - `promtool check rules` and `promtool test rules` (`tests/monitoring/prometheus-rules.test.yaml`:
//!   each alert firing and not firing); every dashboard query is parsed by `promtool check rules` too,
//!   as a recording rule.
//! - Every `regcreds_…` name in the rules, their tests and the dashboard must be a series of a real
//!   scrape of `regcreds run` against the shared control plane, so a renamed metric fails here.

use std::{
    collections::BTreeSet,
    path::PathBuf,
    process::{Command, Output, Stdio},
    time::Duration,
};

use k8s_openapi::api::core::v1::{Namespace, ResourceQuota};
use kube::{
    Api,
    api::{Patch, PatchParams, PostParams},
};
use regcreds_testkit::{
    ControlPlane, Regcreds, TEST_LABEL, binaries, ensure_namespace, free_port,
    manifests::repo,
    metric_value,
    moto::{Moto, ecr_env},
    regcreds_command, versions,
};
use serde_json::Value;

const RULES: &str = "deploy/helm/regcreds/files/prometheus-rules.yaml";
const DASHBOARD: &str = "deploy/helm/regcreds/files/grafana-dashboard.json";
const RULE_TESTS: &str = "tests/monitoring/prometheus-rules.test.yaml";
const COMPONENT: &str = "deploy/components/monitoring";
const SYSTEM_NAMESPACE: &str = "regcreds-system";

fn read(path: &str) -> String {
    std::fs::read_to_string(repo().join(path)).unwrap_or_else(|e| panic!("reading {path}: {e}"))
}

fn yaml(text: &str) -> Value {
    serde_saphyr::from_str(text).unwrap_or_else(|e| panic!("invalid YAML: {e}\n{text}"))
}

/// Runs `cmd`, panicking with its output unless it succeeds.
fn run(cmd: &mut Command) -> Output {
    let output = cmd
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("running {cmd:?}: {e}"));
    assert!(
        output.status.success(),
        "{cmd:?} failed ({}):\n{}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

/// The component's PrometheusRule: the rules file under `spec:`.
fn component_rule(rules: &str) -> String {
    let mut text = String::from(
        "# Generated from deploy/helm/regcreds/files/prometheus-rules.yaml (edit that file, then run\n\
         # `REGCREDS_WRITE_GENERATED=1 cargo test -p regcreds-e2e --test monitoring`).\n\
         apiVersion: monitoring.coreos.com/v1\n\
         kind: PrometheusRule\n\
         metadata:\n  name: regcreds\n  namespace: regcreds\n  labels:\n    \
         app.kubernetes.io/name: regcreds\n    app.kubernetes.io/part-of: regcreds\n\
         spec:\n",
    );
    for line in rules.lines() {
        if !line.is_empty() {
            text.push_str("  ");
            text.push_str(line);
        }
        text.push('\n');
    }
    text
}

#[test]
fn the_kustomize_component_holds_copies_of_the_chart_files() {
    let expected = [
        (
            format!("{COMPONENT}/prometheusrule.yaml"),
            component_rule(&read(RULES)),
        ),
        (format!("{COMPONENT}/grafana-dashboard.json"), read(DASHBOARD)),
    ];
    let write = std::env::var_os("REGCREDS_WRITE_GENERATED").is_some();
    for (path, text) in expected {
        if write {
            std::fs::write(repo().join(&path), &text).expect("write");
        }
        assert!(
            read(&path) == text,
            "{path} is stale: edit {RULES} or {DASHBOARD} only, then run \
             `REGCREDS_WRITE_GENERATED=1 cargo test -p regcreds-e2e --test monitoring`"
        );
    }
}

#[test]
fn the_setup_script_builds_the_pinned_promtool() {
    let script = read("xtask/scripts/setup-test-deps.sh");
    let pinned = format!("\nPROMTOOL_VERSION={}\n", versions::PROMTOOL_VERSION);
    assert!(
        script.contains(&pinned),
        "xtask/scripts/setup-test-deps.sh must build promtool {} (tests/src/versions.rs)",
        versions::PROMTOOL_VERSION
    );
}

/// The `data` of the ConfigMap and the `spec` of the PrometheusRule in a multi-document rendering.
fn monitoring_objects(rendered: &str) -> (Value, Value) {
    let mut rule = None;
    let mut dashboard = None;
    for doc in rendered.split("\n---") {
        let doc = yaml(doc);
        match doc["kind"].as_str() {
            Some("PrometheusRule") => rule = Some(doc["spec"].clone()),
            Some("ConfigMap") if doc["metadata"]["labels"]["grafana_dashboard"] == "1" => {
                let json = doc["data"]["regcreds.json"].as_str().expect("regcreds.json");
                dashboard = Some(serde_json::from_str(json).expect("dashboard JSON"));
            }
            _ => {}
        }
    }
    (
        rule.expect("a PrometheusRule"),
        dashboard.expect("a ConfigMap labelled grafana_dashboard: \"1\""),
    )
}

#[test]
fn the_chart_and_the_component_render_the_same_rules_and_dashboard() {
    let source_rules = yaml(&read(RULES));
    let source_dashboard: Value = serde_json::from_str(&read(DASHBOARD)).expect("dashboard JSON");

    let helm = binaries::helm();
    let chart = repo().join("deploy/helm/regcreds");
    let off = run(Command::new(&helm).arg("template").arg("r").arg(&chart).args([
        "--kube-version=1.37.0",
        "--set=providers.static.enabled=true",
        "--set=providers.static.existingSecret=s",
        "--set=providers.static.server=r.example",
    ]));
    let off = String::from_utf8_lossy(&off.stdout);
    assert!(
        !off.contains("kind: PrometheusRule") && !off.contains("grafana_dashboard"),
        "monitoring objects must be off by default"
    );
    let on = run(Command::new(&helm).arg("template").arg("r").arg(&chart).args([
        "--kube-version=1.37.0",
        "--set=providers.static.enabled=true",
        "--set=providers.static.existingSecret=s",
        "--set=providers.static.server=r.example",
        "--set=metrics.prometheusRule.enabled=true",
        "--set=metrics.dashboard.enabled=true",
    ]));
    let (rule, dashboard) = monitoring_objects(&String::from_utf8_lossy(&on.stdout));
    assert_eq!(rule, source_rules, "the chart's PrometheusRule");
    assert_eq!(dashboard, source_dashboard, "the chart's dashboard");

    // An overlay with the component, as a user writes it (kustomize takes relative paths only).
    let dir = tempfile::tempdir().expect("tempdir");
    let up: PathBuf = dir.path().components().skip(1).map(|_| "..").collect();
    let root = up.join(repo().strip_prefix("/").expect("absolute repo path"));
    std::fs::write(
        dir.path().join("kustomization.yaml"),
        format!(
            "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources:\n  - {}\ncomponents:\n  - {}\n",
            root.join("deploy/overlays/static").display(),
            root.join(COMPONENT).display()
        ),
    )
    .expect("write kustomization");
    let built = run(Command::new(binaries::kubectl()).arg("kustomize").arg(dir.path()));
    let (rule, dashboard) = monitoring_objects(&String::from_utf8_lossy(&built.stdout));
    assert_eq!(rule, source_rules, "the component's PrometheusRule");
    assert_eq!(dashboard, source_dashboard, "the component's dashboard");
}

/// Every query of the dashboard (panels and template variables), Grafana's variables replaced.
fn dashboard_queries(dashboard: &Value) -> Vec<String> {
    let mut queries = Vec::new();
    for panel in dashboard["panels"].as_array().expect("panels") {
        for target in panel["targets"].as_array().into_iter().flatten() {
            let expr = target["expr"].as_str().expect("every target has an expr");
            queries.push(expr.to_string());
        }
    }
    for variable in dashboard["templating"]["list"].as_array().expect("templating") {
        if let Some(query) = variable["query"]["query"].as_str() {
            // label_values(<selector>, label): the selector is PromQL.
            let selector = query
                .strip_prefix("label_values(")
                .and_then(|q| q.rsplit_once(','))
                .map_or(query, |(selector, _)| selector);
            queries.push(selector.to_string());
        }
    }
    queries
        .into_iter()
        .map(|q| {
            q.replace("$__rate_interval", "5m")
                .replace("$namespace", ".*")
                .replace("$job", ".*")
        })
        .collect()
}

/// `regcreds_…` names anywhere in `text` (expressions, series of the rule tests, annotations).
fn metric_names(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut rest = text;
    while let Some(at) = rest.find("regcreds_") {
        let preceded = rest[..at]
            .chars()
            .next_back()
            .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_');
        let tail = &rest[at..];
        let end = tail
            .find(|c: char| !(c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'))
            .unwrap_or(tail.len());
        if !preceded {
            names.insert(tail[..end].to_string());
        }
        rest = &tail[end..];
    }
    names
}

/// Series names of an OpenMetrics exposition: every sample, and what each `# TYPE` line declares even
/// while it has no sample yet (a counter family before its first increment).
fn served_names(exposition: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for line in exposition.lines() {
        if let Some(declared) = line.strip_prefix("# TYPE ") {
            let mut words = declared.split_whitespace();
            let (Some(name), Some(kind)) = (words.next(), words.next()) else {
                continue;
            };
            let suffixes: &[&str] = match kind {
                "counter" => &["_total", "_created"],
                "info" => &["_info"],
                "histogram" => &["_bucket", "_sum", "_count", "_created"],
                "summary" => &["", "_sum", "_count", "_created"],
                _ => &[""],
            };
            names.extend(suffixes.iter().map(|s| format!("{name}{s}")));
        } else if !line.starts_with('#') {
            let end = line.find(['{', ' ']).unwrap_or(line.len());
            if end > 0 {
                names.insert(line[..end].to_string());
            }
        }
    }
    names
}

/// A scrape of `regcreds run` in the states the alerts are about: leading, two providers minted (ECR
/// against moto, with an expiry), then one failing (its file broken), a namespace written to and one it
/// cannot write to (a ResourceQuota of zero Secrets). Pod healing's counters start at 0 for each known
/// reason and error, so they are served without a node.
async fn real_scrape() -> String {
    let cp = ControlPlane::shared().await;
    let client = cp.client();
    // In regcreds' scope, a ResourceQuota allowing no Secret; a fresh one each run (deletion is lazy).
    let run = format!("monitoring-{:08x}", rand::random::<u32>());
    let quota_namespace = run.as_str();
    let writable = format!("{run}-ok");
    ensure_namespace(&client, SYSTEM_NAMESPACE, &[]).await;
    for name in [quota_namespace, writable.as_str()] {
        ensure_namespace(&client, name, &[(TEST_LABEL, quota_namespace)]).await;
    }
    let quota: ResourceQuota = serde_json::from_value(serde_json::json!({
        "metadata": { "name": "no-secrets" },
        "spec": { "hard": { "secrets": "0" } }
    }))
    .expect("quota");
    let quotas = Api::<ResourceQuota>::namespaced(client.clone(), quota_namespace);
    quotas
        .create(&PostParams::default(), &quota)
        .await
        .expect("creating the quota");
    // NB: admission enforces what the quota's status says; the test control plane runs no quota
    // controller to fill it in.
    let status = serde_json::json!({
        "status": { "hard": { "secrets": "0" }, "used": { "secrets": "0" } }
    });
    quotas
        .patch_status("no-secrets", &PatchParams::default(), &Patch::Merge(&status))
        .await
        .expect("setting the quota's status");

    // Nothing listens on the registries' ports: their checks say `unreachable` at once.
    let nowhere = format!("127.0.0.1:{}", free_port());
    let moto = Moto::start(0, &[("ECR_PROXY_ENDPOINT", &format!("https://{nowhere}"))]);
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join(".dockerconfigjson");
    let auths =
        format!(r#"{{"auths":{{"{nowhere}":{{"username":"puller","password":"monitoring-Pa55"}}}}}}"#);
    std::fs::write(&config, auths).expect("write config");
    let mut cmd = regcreds_command(cp.kubeconfig_path());
    cmd.envs(ecr_env(&moto.url()))
        .env("CONFIG_DOCKERCONFIGJSONPATH", &config)
        .env("REGCREDS_DOCKERCONFIGJSON_SCHEDULE", "*/1 * * * * *")
        .env("REGCREDS_NAMESPACE", SYSTEM_NAMESPACE)
        .env("REGCREDS_INSTANCE", "monitoring")
        .env(
            "REGCREDS_NAMESPACE_SELECTOR",
            format!("{TEST_LABEL}={quota_namespace}"),
        )
        .env("REGCREDS_LOG_FORMAT", "json");
    let regcreds = Regcreds::start(cmd, dir.path().join("regcreds.log"));
    let until = |what: &'static str, done: &dyn Fn(&str) -> bool| {
        let deadline = std::time::Instant::now() + Duration::from_secs(90);
        loop {
            let text = regcreds.metrics().unwrap_or_default();
            if done(&text) {
                return text;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "timed out waiting for {what}; last scrape:\n{text}\nregcreds' log:\n{}",
                regcreds.logs()
            );
            std::thread::sleep(Duration::from_millis(250));
        }
    };
    until("regcreds to lead and both providers to mint", &|text| {
        metric_value(text, "regcreds_leader") == Some(1.0)
            && ["ecr", "dockerconfigjson"].iter().all(|p| {
                metric_value(
                    text,
                    &format!("regcreds_provider_mints_total{{provider=\"{p}\"}}"),
                )
                .is_some_and(|v| v >= 1.0)
            })
    });
    std::fs::write(&config, "{ not json").expect("break the config");
    let text = until("a failed mint, a namespace not converged, an expiry", &|text| {
        text.contains("regcreds_provider_mint_failures_total{provider=\"dockerconfigjson\"")
            && metric_value(text, "regcreds_namespaces_not_converged") == Some(1.0)
            && text.contains("regcreds_provider_token_expiry_timestamp_seconds{provider=\"ecr\"}")
            && text.contains("regcreds_secrets_written_total{action=\"created\"}")
    });
    // NB: other tests' instances must not meet a namespace they cannot write to.
    for name in [quota_namespace, writable.as_str()] {
        let _ = Api::<Namespace>::all(client.clone())
            .delete(name, &Default::default())
            .await;
    }
    text
}

#[tokio::test]
async fn promtool_tests_the_rules_and_parses_the_dashboard_on_names_a_running_regcreds_serves() {
    let promtool = binaries::promtool();
    let root = repo();

    run(Command::new(&promtool)
        .arg("check")
        .arg("rules")
        .arg(root.join(RULES)));
    let tested = run(Command::new(&promtool)
        .args(["test", "rules"])
        .arg(root.join(RULE_TESTS)));
    println!("{}", String::from_utf8_lossy(&tested.stdout));

    // Every alert has a test.
    let rules = yaml(&read(RULES));
    let tests = read(RULE_TESTS);
    for rule in rules["groups"][0]["rules"].as_array().expect("rules") {
        let alert = rule["alert"].as_str().expect("alerting rules only");
        assert!(
            tests.contains(&format!("alertname: {alert}\n")),
            "{RULE_TESTS} does not test {alert}"
        );
    }

    // The dashboard's queries are PromQL promtool accepts, as recording rules.
    let dashboard: Value = serde_json::from_str(&read(DASHBOARD)).expect("dashboard JSON");
    let queries = dashboard_queries(&dashboard);
    assert!(queries.len() > 10, "{queries:?}");
    let recording: Vec<Value> = queries
        .iter()
        .enumerate()
        .map(|(i, expr)| serde_json::json!({ "record": format!("dashboard:query_{i}"), "expr": expr }))
        .collect();
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("dashboard-queries.json");
    let groups = serde_json::json!({ "groups": [{ "name": "dashboard", "rules": recording }] });
    std::fs::write(&file, groups.to_string()).expect("write");
    run(Command::new(&promtool).args(["check", "rules"]).arg(&file));

    // Every name they use is served by regcreds.
    let served = served_names(&real_scrape().await);
    for (what, text) in [
        (RULES, read(RULES)),
        (RULE_TESTS, tests),
        (DASHBOARD, read(DASHBOARD)),
    ] {
        let names = metric_names(&text);
        assert!(!names.is_empty(), "{what} names no regcreds metric");
        let unknown: Vec<_> = names.difference(&served).collect();
        assert!(
            unknown.is_empty(),
            "{what} uses {unknown:?}, which a running regcreds does not serve; it serves {served:?}"
        );
    }
}

#[test]
fn names_are_read_from_text_and_from_an_exposition() {
    assert_eq!(
        metric_names("x regcreds_a_total{regcreds_b=\"1\"} / fooregcreds_c and REGCREDS_D"),
        BTreeSet::from(["regcreds_a_total".to_string(), "regcreds_b".to_string()])
    );
    let exposition = "# TYPE regcreds_mints counter\n# TYPE regcreds_build info\n\
                      regcreds_build_info{version=\"1\"} 1\n# TYPE regcreds_leader gauge\nregcreds_leader 1\n# EOF\n";
    let served = served_names(exposition);
    for name in ["regcreds_mints_total", "regcreds_build_info", "regcreds_leader"] {
        assert!(served.contains(name), "{name} in {served:?}");
    }
    assert!(!served.contains("regcreds_mints"));
}
