//! Pod healing: no pod left behind by the race between a namespace's first pods and its credential.
//!
//! Admission copies a ServiceAccount's `imagePullSecrets` into a pod only when the pod is created. A
//! namespace and a Deployment applied together race regcreds: the first pods can be created before the
//! reference exists, and then fail to pull forever (kubernetes/kubernetes#88456, imagepullsecret-patcher
//! #10). With `REGCREDS_HEAL_PODS=true`, the leader deletes such pods so that their controller recreates
//! them with the reference; and, after a Secret's content changes, pods listing it that wait out
//! kubelet's pull back-off (up to 5 minutes) are recreated at once.
//!
//! ```text
//!  pods (status.phase=Pending) ──┐                                   ┌─▶ delete (uid + resourceVersion
//!  ServiceAccounts ──────────────┼─▶ State (mirrors, guard, buckets) ─┤        preconditions)
//!  own Secrets (digests) ────────┤        │ verdict::assess           ├─▶ Event on pod and controller
//!  Desired (registries) ─────────┘        ▼                           └─▶ INFO line, pods_healed_total
//!                                  rate-limited? → retried when a token is due
//! ```
//!
//! * `verdict` holds every rule (never a bare pod, never a pod that ever started a container, only
//!   pull failures on a registry the missing or changed Secret covers).
//! * `guard` stops recreating a controller's pods when a replacement comes back without the Secret.
//! * `rate_limit` bounds deletions per namespace and cluster-wide.
//! * Provider-agnostic: the registries come from the minted `.dockerconfigjson` in [`Desired`].
//! * Beside the propagator, not in it: healing reads what the propagator is given ([`Desired`], the
//!   [`NamespaceScope`], the [`InstanceId`] and its Secrets' labels) and reports API errors the way it
//!   does ([`regcreds_propagator::Error`]); the propagator knows nothing of healing.
//! * [`PERMISSIONS`] (and [`HealSettings::permissions`]) list the RBAC each watch and the deletion need;
//!   the binary checks them before starting the [`Healer`].
//!
//! [`Desired`]: regcreds_propagator::Desired
//! [`NamespaceScope`]: regcreds_propagator::NamespaceScope
//! [`InstanceId`]: regcreds_propagator::InstanceId
#![forbid(unsafe_code)]
#![deny(missing_docs)]

#[cfg(feature = "cli")]
mod args;
mod delete;
mod guard;
mod healer;
mod metrics;
mod mirror;
mod pod;
mod rate_limit;
mod rbac;
mod registries;
mod settings;
mod state;
mod verdict;

#[cfg(feature = "cli")]
pub use args::HealArgs;
pub use healer::Healer;
pub use metrics::HealMetrics;
pub use rate_limit::RateLimit;
pub use rbac::{CREDENTIAL_CHANGE_PERMISSIONS, PERMISSIONS, Permission};
pub use settings::HealSettings;
