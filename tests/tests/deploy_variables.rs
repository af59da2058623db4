//! The configuration surface, three ways round: every `REGCREDS_*` variable the manifests set is one
//! `regcreds run` declares, and every variable of the README's tables can be set through the chart —
//! from a value of its own, or through `extraEnv` — exactly once. (Unknown names in the rendered
//! Deployments fail `manifests::assert_locked_down`, against `manifests::KNOWN_ENV`.)

use std::{
    collections::{BTreeMap, BTreeSet},
    process::Command,
};

use regcreds_testkit::{
    manifests::{
        CHART, arr, chart_ci_values, container, declares, env_names, helm_or_note, helm_template, kind,
        kustomize, overlay_dirs, parse, regcreds_help, repo, run, s, the,
    },
    versions::K8S_VERSION,
};
use serde_json::Value;

/// Every `REGCREDS_*` name the manifests use is one the binary declares (`regcreds run --help`).
#[test]
fn every_variable_in_the_manifests_is_declared_by_regcreds_run() {
    let help = regcreds_help("run");
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
        .filter(|(n, _)| n.starts_with("REGCREDS_") && !declares(&help, n))
        .collect();
    assert!(missing.is_empty(), "not declared by `regcreds run`: {missing:?}");
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
