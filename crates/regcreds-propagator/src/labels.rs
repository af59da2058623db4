//! Names regcreds writes on objects, and the annotations it honours.

/// Label marking a Secret as regcreds' own; Secrets without it are never modified (unless forced).
pub const MANAGED_BY_LABEL: &str = "app.kubernetes.io/managed-by";
/// Value of [`MANAGED_BY_LABEL`].
pub const MANAGED_BY_VALUE: &str = "regcreds";
/// Label naming the provider a Secret came from.
pub const PROVIDER_LABEL: &str = "regcreds.dev/provider";
/// ServiceAccount annotation listing the `imagePullSecrets` entries regcreds added (comma-separated), so
/// that cleanup removes exactly those and never an entry someone else added.
pub const REFS_ANNOTATION: &str = "regcreds.dev/image-pull-secrets";
/// Server-side apply field manager for managed Secrets.
pub const FIELD_MANAGER: &str = "regcreds.dev/propagator";
/// Namespace annotations that opt a namespace out (value `"true"`): regcreds' own, upmc registry-creds'
/// and imagepullsecret-patcher's, so manifests migrated from either keep their exclusions.
pub const IGNORE_ANNOTATIONS: &[&str] = &[
    "regcreds.dev/ignore",
    "registry-creds/ignore",
    "k8s.titansoft.com/imagepullsecret-patcher-exclude",
];

/// The label selector for watching managed Secrets.
pub fn managed_selector() -> String {
    format!("{MANAGED_BY_LABEL}={MANAGED_BY_VALUE}")
}
