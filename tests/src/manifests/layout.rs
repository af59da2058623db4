//! The `deploy/` tree: its overlays and provider components, their kustomization files, and
//! kustomizations written on the fly (resources plus components) for combinations nobody ships.

use serde_json::Value;

use super::{kubectl, parse, repo, run};

/// Every `deploy/overlays/*` (one per provider), repository-relative, sorted.
pub fn overlay_dirs() -> Vec<String> {
    let dirs = kustomization_dirs("deploy/overlays");
    assert!(
        dirs.len() >= 6,
        "expected an overlay per provider, found {dirs:?}"
    );
    dirs
}

/// The provider components (`deploy/components/providers/<name>`), one per overlay of the same name.
pub fn provider_component_dirs() -> Vec<String> {
    kustomization_dirs("deploy/components/providers")
}

/// The directories under `parent` (repository-relative) that hold a `kustomization.yaml`, sorted.
fn kustomization_dirs(parent: &str) -> Vec<String> {
    let dir = repo().join(parent);
    let mut dirs: Vec<String> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .map(|entry| entry.expect("directory entry").path())
        .filter(|p| p.join("kustomization.yaml").is_file())
        .map(|p| format!("{parent}/{}", p.file_name().expect("dir name").to_string_lossy()))
        .collect();
    dirs.sort();
    dirs
}

/// The last path segment of a `deploy/...` directory.
pub fn dir_name(dir: &str) -> &str {
    dir.rsplit('/').next().expect("a path")
}

/// The kustomization file of `dir`, parsed.
pub fn kustomization_of(dir: &str) -> Value {
    let path = repo().join(dir).join("kustomization.yaml");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    parse(&text, dir)
        .into_iter()
        .next()
        .unwrap_or_else(|| panic!("{dir}: empty"))
}

/// A kustomization of `resources` plus `components` (repository-relative directories), written to a
/// temporary directory under `<repo>/target` (kustomize loads resources outside its root, not files),
/// rendered and parsed.
pub fn kustomize_with(resources: &[&str], components: &[&str]) -> Vec<Value> {
    let dir = tempfile::Builder::new()
        .prefix("kustomization-")
        .tempdir_in(repo().join("target"))
        .expect("temp dir under target/");
    let depth = dir
        .path()
        .strip_prefix(repo())
        .expect("under the repository")
        .components()
        .count();
    let up = vec![".."; depth].join("/");
    let list = |dirs: &[&str]| -> String { dirs.iter().map(|d| format!("  - {up}/{d}\n")).collect() };
    std::fs::write(
        dir.path().join("kustomization.yaml"),
        format!(
            "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources:\n{}components:\n{}",
            list(resources),
            list(components)
        ),
    )
    .expect("kustomization");
    let mut cmd = std::process::Command::new(kubectl());
    cmd.arg("kustomize").arg(dir.path());
    let what = format!("{resources:?} + {components:?}");
    parse(&run(cmd, None).unwrap_or_else(|e| panic!("{what}: {e}")), &what)
}
