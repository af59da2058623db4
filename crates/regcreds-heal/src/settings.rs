//! How healing behaves; built by the binary from `REGCREDS_HEAL_*`.

use crate::{
    rate_limit::RateLimit,
    rbac::{CREDENTIAL_CHANGE_PERMISSIONS, PERMISSIONS, Permission},
};

/// Healing settings. Healing itself is off unless the binary builds these (`REGCREDS_HEAL_PODS=true`).
#[derive(Debug, Clone, PartialEq)]
pub struct HealSettings {
    /// Deletions across the whole cluster.
    pub cluster_rate: RateLimit,
    /// Deletions in any one namespace.
    pub namespace_rate: RateLimit,
    /// Also recreate pods in pull back-off when a Secret they list gets new content, instead of
    /// waiting for kubelet's next retry (up to 5 minutes away).
    pub after_credential_change: bool,
}

impl Default for HealSettings {
    /// 20 at once then 5 per second cluster-wide; 10 at once then 1 per second per namespace: the stuck
    /// replicas of a typical application are recreated together, a 50-replica Deployment within about
    /// 40 s, and no bug can churn a namespace faster than one pod a second.
    fn default() -> Self {
        Self {
            cluster_rate: RateLimit {
                per_second: 5.0,
                burst: 20,
            },
            namespace_rate: RateLimit {
                per_second: 1.0,
                burst: 10,
            },
            after_credential_change: true,
        }
    }
}

impl HealSettings {
    /// Every permission healing with these settings needs, in the order the binary checks them.
    pub fn permissions(&self) -> Vec<Permission> {
        let mut needed = PERMISSIONS.to_vec();
        if self.after_credential_change {
            needed.extend(CREDENTIAL_CHANGE_PERMISSIONS);
        }
        needed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_watched_only_to_heal_after_a_credential_change() {
        let on = HealSettings::default();
        assert!(on.after_credential_change, "the default");
        assert_eq!(
            on.permissions(),
            [
                ("list", "pods"),
                ("watch", "pods"),
                ("delete", "pods"),
                ("list", "serviceaccounts"),
                ("watch", "serviceaccounts"),
                ("get", "namespaces"),
                ("list", "secrets"),
                ("watch", "secrets"),
            ]
        );
        let off = HealSettings {
            after_credential_change: false,
            ..HealSettings::default()
        };
        assert_eq!(off.permissions(), PERMISSIONS);
    }
}
