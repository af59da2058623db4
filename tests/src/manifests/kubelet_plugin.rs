//! The chart's kubelet plugin mode (`kubeletPlugin.*`, issue #27), for `deploy_kubelet_plugin.rs`,
//! `kubelet_plugin_install.rs` and `kubelet_plugin_token_mode.rs`: the chart rendered with the plugin on,
//! the values those suites share ([`PLUGIN`], ServiceAccount token mode: [`token_mode`], [`QUAY`],
//! [`ACR_WI`]), and the parts of the rendering they look at (the plugin's ConfigMap and config head, the
//! DaemonSet's init containers and their variables).

use std::path::Path;

use serde_json::Value;

use super::{arr, env, kind, name, render_chart_in, s};

// === rendering ===

/// `sets` on top of [`ONE_PROVIDER`](super::ONE_PROVIDER) (Docker Hub) and `kubeletPlugin.enabled=true`.
pub const PLUGIN: [&str; 3] = [
    "providers.dockerhub.enabled=true",
    "providers.dockerhub.existingSecret=regcreds-dockerhub",
    "kubeletPlugin.enabled=true",
];

/// The chart with the plugin on, Docker Hub and `sets` ([`render_chart_in`] renders only the `sets` given).
pub fn render_plugin(helm: &Path, sets: &[&str]) -> Vec<Value> {
    let sets: Vec<&str> = PLUGIN.iter().chain(sets).copied().collect();
    render_chart_in(helm, "regcreds", &sets)
}

/// The plugin's ConfigMap (the one carrying the config head).
pub fn plugin_config_map(objects: &[Value]) -> &Value {
    objects
        .iter()
        .find(|o| kind(o) == "ConfigMap" && o.pointer("/data/config-head.yaml").is_some())
        .expect("the plugin's ConfigMap")
}

/// Init container `wanted` of a workload.
pub fn init_container<'a>(workload: &'a Value, wanted: &str) -> &'a Value {
    arr(workload, "/spec/template/spec/initContainers")
        .iter()
        .find(|c| s(c, "/name") == wanted)
        .unwrap_or_else(|| panic!("{} has no init container {wanted}", name(workload)))
}

/// The literal value of a container's env entry `var` (panics when absent or not a literal).
pub fn env_value<'a>(c: &'a Value, var: &str) -> &'a str {
    env(c, var)
        .and_then(|e| e.get("value"))
        .and_then(Value::as_str)
        .unwrap_or_else(|| panic!("{var} has no literal value in {c}"))
}

/// The config file's head as rendered into the ConfigMap, parsed.
pub fn config_head(objects: &[Value]) -> Value {
    let head = s(plugin_config_map(objects), "/data/config-head.yaml");
    serde_saphyr::from_str(head).unwrap_or_else(|e| panic!("config-head.yaml is not YAML: {e}\n{head}"))
}

// === ServiceAccount token mode (kubeletPlugin.tokenAttributes) ===

/// The three fields the kubelet requires in `tokenAttributes`.
pub const TOKEN_MODE: [&str; 3] = [
    "kubeletPlugin.tokenAttributes.serviceAccountTokenAudience=sts.amazonaws.com",
    "kubeletPlugin.tokenAttributes.cacheType=ServiceAccount",
    "kubeletPlugin.tokenAttributes.requireServiceAccount=true",
];

/// Quay by robot federation (needs a ServiceAccount token).
pub const QUAY: [&str; 2] = ["providers.quay.enabled=true", "providers.quay.robot=org+bot"];

/// ACR with workload identity (needs a ServiceAccount token).
pub const ACR_WI: [&str; 3] = [
    "providers.acr.enabled=true",
    "providers.acr.registry=r.azurecr.io",
    "providers.acr.auth=workload-identity",
];

/// `sets` on top of [`PLUGIN`] with Docker Hub off and [`TOKEN_MODE`].
pub fn token_mode(sets: &[&str]) -> Vec<String> {
    ["providers.dockerhub.enabled=false"]
        .iter()
        .chain(&TOKEN_MODE)
        .chain(sets)
        .map(|s| s.to_string())
        .collect()
}
