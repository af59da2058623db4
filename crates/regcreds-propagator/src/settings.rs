//! How the propagator behaves; built by the binary from flags and environment.

use std::time::Duration;

use crate::{InstanceId, NamespaceScope};

/// Which ServiceAccounts get the Secrets in their `imagePullSecrets`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServiceAccountMode {
    /// These names (the default is `["default"]`); patched as soon as each exists.
    Named(Vec<String>),
    /// Every ServiceAccount, including ones created later.
    All,
    /// Leave ServiceAccounts alone (pods reference the Secrets themselves).
    None,
}

impl ServiceAccountMode {
    /// Whether a ServiceAccount with this name is a target.
    pub fn targets(&self, name: &str) -> bool {
        match self {
            Self::Named(names) => names.iter().any(|n| n == name),
            Self::All => true,
            Self::None => false,
        }
    }
}

/// How the propagator learns about Secrets and ServiceAccounts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WatchMode {
    /// Watch managed Secrets and ServiceAccounts: drift is repaired at once and a steady state costs no
    /// requests at all. Needs `list` and `watch` on both.
    Watch,
    /// Read them with `get` on each reconcile and resync periodically. For clusters that only grant the
    /// narrow RBAC of upmc registry-creds' manifest (no list/watch on Secrets and ServiceAccounts).
    Poll,
}

/// Propagator settings.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Namespaces in scope.
    pub scope: NamespaceScope,
    /// ServiceAccounts to patch.
    pub service_accounts: ServiceAccountMode,
    /// Overwrite same-named Secrets regcreds did not create.
    pub force: bool,
    /// Take over the Secrets of the tools regcreds replaces (imagepullsecret-patcher's, and upmc
    /// registry-creds' for the registries the credential is for), recognised by their fingerprint.
    pub take_over: bool,
    /// Namespaces reconciled at once.
    pub concurrency: u16,
    /// Safety-net resync of every namespace; with watches nothing is written unless something drifted.
    pub resync: Duration,
    /// Watch or poll Secrets and ServiceAccounts.
    pub watch_mode: WatchMode,
    /// Name of this replica (pod name) in Events.
    pub instance: Option<String>,
    /// Which regcreds this is: the Secrets and ServiceAccount references it owns carry this id, and only
    /// those are ever withdrawn or cleaned up by it (several instances may run side by side).
    pub instance_id: InstanceId,
    /// List namespaces at this interval instead of watching them (RBAC without `watch` on namespaces).
    pub namespace_poll: Option<Duration>,
}

impl Settings {
    /// Defaults: `default` ServiceAccount, 16 namespaces at once, hourly resync, watches, predecessors'
    /// Secrets taken over.
    pub fn new(scope: NamespaceScope) -> Self {
        Self {
            scope,
            service_accounts: ServiceAccountMode::Named(vec!["default".into()]),
            force: false,
            take_over: true,
            concurrency: 16,
            resync: Duration::from_secs(3600),
            watch_mode: WatchMode::Watch,
            instance: None,
            instance_id: InstanceId::default(),
            namespace_poll: None,
        }
    }
}
