//! JSON-pointer helpers over rendered objects (YAML parsed into [`serde_json::Value`]).

use std::collections::BTreeSet;

use serde_json::Value;

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

/// A Helm hook (the chart's uninstall cleanup): not part of what runs, checked on its own.
pub fn is_hook(v: &Value) -> bool {
    v.pointer("/metadata/annotations/helm.sh~1hook").is_some()
}

/// The objects that are installed and stay: everything but Helm hooks.
pub fn installed(objects: &[Value]) -> Vec<Value> {
    objects.iter().filter(|o| !is_hook(o)).cloned().collect()
}

/// The providers a container configures: the `<PROVIDER>` of its `REGCREDS_<PROVIDER>_*` variables.
pub fn providers(c: &Value) -> BTreeSet<&str> {
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
