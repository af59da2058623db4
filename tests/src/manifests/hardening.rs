//! The promises every regcreds pod keeps wherever it is rendered: the pod's hardening, and the
//! Deployment's probes, scrape annotations, identity, known variables and mounted files.

use std::path::Path;

use serde_json::{Value, json};

use super::{arr, container, env, env_names, kind, s};

/// A pod's hardening: non-root (as `uid`, or with no UID, GID or fsGroup at all when `uid` is `None`:
/// left to the platform, as OpenShift's SCCs want), read-only root, no privilege escalation, no
/// capabilities, RuntimeDefault seccomp, no host namespaces, token automount, resource requests and
/// limits.
pub fn assert_pod_hardened(pod: &Value, c: &Value, uid: Option<u32>, what: &str) {
    let effective = |field: &str| -> Option<&Value> {
        c.pointer(&format!("/securityContext/{field}"))
            .or_else(|| pod.pointer(&format!("/securityContext/{field}")))
    };
    let check = |field: &str, want: Value| {
        assert_eq!(effective(field), Some(&want), "{what}: securityContext {field}");
    };
    check("runAsNonRoot", json!(true));
    match uid {
        Some(uid) => check("runAsUser", json!(uid)),
        None => {
            for (context, fields) in [
                (pod, &["runAsUser", "runAsGroup", "fsGroup"][..]),
                (c, &["runAsUser", "runAsGroup"][..]),
            ] {
                for field in fields {
                    assert_eq!(
                        context.pointer(&format!("/securityContext/{field}")),
                        None,
                        "{what}: securityContext {field} is left to the platform"
                    );
                }
            }
        }
    }
    check("seccompProfile/type", json!("RuntimeDefault"));
    assert_eq!(
        c.pointer("/securityContext/readOnlyRootFilesystem"),
        Some(&json!(true)),
        "{what}"
    );
    assert_eq!(
        c.pointer("/securityContext/allowPrivilegeEscalation"),
        Some(&json!(false)),
        "{what}"
    );
    assert_ne!(
        c.pointer("/securityContext/privileged"),
        Some(&json!(true)),
        "{what}"
    );
    let dropped: Vec<&str> = arr(c, "/securityContext/capabilities/drop")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert_eq!(dropped, ["ALL"], "{what}: capabilities drop");
    assert!(
        arr(c, "/securityContext/capabilities/add").is_empty(),
        "{what}: capabilities add"
    );
    for host in ["hostNetwork", "hostPID", "hostIPC"] {
        assert_ne!(pod.get(host), Some(&json!(true)), "{what}: {host}");
    }
    assert_eq!(
        pod.get("automountServiceAccountToken"),
        Some(&json!(true)),
        "{what}: token automount"
    );
    for bound in ["requests", "limits"] {
        for resource in ["cpu", "memory"] {
            assert!(
                c.pointer(&format!("/resources/{bound}/{resource}")).is_some(),
                "{what}: {bound}.{resource}"
            );
        }
    }
}

/// Every setting the binary reads (docs: the configuration surface of `regcreds run`), plus the AWS
/// SDK's own variables. A name outside this list in base/overlays/chart is a typo.
pub const KNOWN_ENV: &[&str] = &[
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
    "REGCREDS_ECR_ROLE_ANNOTATION",
    "REGCREDS_GCR_KEY",
    "REGCREDS_GCR_METADATA_URL",
    "REGCREDS_GCR_TIMEOUT_SECONDS",
    "REGCREDS_GCR_SCHEDULE",
    "REGCREDS_GCR_KEY_FILE",
    "REGCREDS_GCR_USE_METADATA",
    "REGCREDS_GCR_HOSTS",
    "REGCREDS_GCR_SECRET_NAME",
    "REGCREDS_GCR_WORKLOAD_IDENTITY_PROVIDER",
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
    "REGCREDS_GHCR_PRIVATE_KEY",
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
    "REGCREDS_QUAY_ROBOT_ANNOTATION",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
];

/// The Deployment's hardening ([`assert_pod_hardened`]), probes, scrape annotations (only where no
/// ServiceMonitor or PodMonitor is in `objects`: the chart leaves them out then), downward-API identity.
pub fn assert_locked_down(objects: &[Value], deployment: &Value, what: &str) {
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

/// A variable naming a file (dockerconfigjson, GCR key, GitHub App key) points into a mounted Secret
/// volume that really contains that file; the Quay token file into a projected ServiceAccount token.
pub fn assert_files_are_mounted(deployment: &Value, what: &str) {
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
