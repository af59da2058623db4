//! Names regcreds writes on objects, and the annotations it honours.

use crate::InstanceId;

/// Label marking a Secret as regcreds' own; Secrets without it are never modified (unless forced).
pub const MANAGED_BY_LABEL: &str = "app.kubernetes.io/managed-by";
/// Value of [`MANAGED_BY_LABEL`].
pub const MANAGED_BY_VALUE: &str = "regcreds";
/// Label naming the provider a Secret came from.
pub const PROVIDER_LABEL: &str = "regcreds.dev/provider";
/// Label naming the regcreds instance that wrote a Secret (see [`crate::InstanceId`]). Secrets written
/// before instances existed have none; the instance that writes their name adopts them.
pub const INSTANCE_LABEL: &str = "regcreds.dev/instance";
/// Prefix of the ServiceAccount annotation in which each instance lists the `imagePullSecrets` entries it
/// added (comma-separated): `image-pull-secrets.regcreds.dev/<instance>`. Per instance, so that two
/// instances never remove each other's entries, and cleanup removes exactly what one added.
pub const REFS_ANNOTATION_PREFIX: &str = "image-pull-secrets.regcreds.dev/";
/// The annotation regcreds used before instances existed (one list for everyone). Names in it are adopted
/// by the instance that writes them and moved to that instance's own annotation.
pub const REFS_ANNOTATION: &str = "regcreds.dev/image-pull-secrets";
/// The ownership marker imagepullsecret-patcher put on the Secrets it created (an annotation). regcreds
/// replaces that tool, so such a Secret counts as managed: it is updated like one regcreds wrote.
pub const PATCHER_MANAGED_BY: (&str, &str) = ("app.kubernetes.io/managed-by", "imagepullsecret-patcher");
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

/// The label selector for the managed Secrets one instance wrote (labelled with its id).
pub fn instance_selector(instance: &InstanceId) -> String {
    format!("{},{INSTANCE_LABEL}={instance}", managed_selector())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_instance_selector_narrows_the_managed_one_to_one_instance() {
        let hub = InstanceId::new("hub.regcreds-system").expect("id");
        assert_eq!(
            instance_selector(&hub),
            "app.kubernetes.io/managed-by=regcreds,regcreds.dev/instance=hub.regcreds-system"
        );
    }
}
