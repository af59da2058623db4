//! The RBAC healing needs: cluster-wide, in the core API group, one rule per call its watches and its
//! deletion make. The binary checks them with SelfSubjectAccessReviews before starting the healer, and
//! leaves healing off, saying which are missing, when one is not granted (the Helm chart's
//! `healPods.enabled=true` and the kustomize component `deploy/components/heal-pods` grant them).

/// A verb on a core-group resource, cluster-wide: `("delete", "pods")`.
pub type Permission = (&'static str, &'static str);

/// Always needed: the watch of pending pods and their deletion, the ServiceAccount watch, and the read of
/// a namespace before deleting in it (is it in scope).
pub const PERMISSIONS: [Permission; 6] = [
    ("list", "pods"),
    ("watch", "pods"),
    ("delete", "pods"),
    ("list", "serviceaccounts"),
    ("watch", "serviceaccounts"),
    ("get", "namespaces"),
];

/// Needed with [`HealSettings::after_credential_change`](crate::HealSettings::after_credential_change):
/// the watch of this instance's Secrets.
pub const CREDENTIAL_CHANGE_PERMISSIONS: [Permission; 2] = [("list", "secrets"), ("watch", "secrets")];
