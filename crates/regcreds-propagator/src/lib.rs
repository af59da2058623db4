//! The propagator: one minted credential, every namespace.
//!
//! ```text
//!  binary ──watch::Sender<Desired>──┐ (a provider minted new bytes)
//!                                   ▼
//!   Namespaces (metadata-only) ──▶ Controller ──reconcile(ns)──▶ Secret: create if unknown, apply if it differs
//!   managed Secrets (label) ─┐        ▲  ▲                      ServiceAccount: patch guarded by the cached
//!   ServiceAccounts ─────────┴─index──┘  └── reconcile_all_on    resourceVersion (re-read only after a 409)
//!            (compact, per namespace; our own writes written through)   (Desired changed, resync tick)
//! ```
//!
//! * Input is a [`Desired`] set of Secrets (name → dockerconfigjson bytes + provider). The propagator knows
//!   nothing about providers.
//! * Managed Secrets and ServiceAccounts are mirrored in per-namespace indexes of compact state
//!   (`cached.rs`, `index.rs`); their watches wake the namespace whose state changed. A reconcile reads
//!   only the indexes and writes only what differs: converging costs one Secret write and at most one
//!   ServiceAccount write per namespace, and a steady state costs nothing.
//! * Ownership: a Secret without our `managed-by` label is never touched unless `force` is set, or a tool
//!   regcreds replaces left it (imagepullsecret-patcher, upmc registry-creds: `takeover.rs`) — a
//!   Secret regcreds does not know is *created*, which fails if one exists; only then is it read.
//!   ServiceAccount references we add are recorded in an annotation, so cleanup removes exactly those.
//!   Both are per [`InstanceId`]: instances side by side never withdraw each other's objects.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

#[cfg(feature = "cli")]
mod args;
mod cached;
mod cleanup;
mod controller;
mod desired;
mod error;
mod failure;
mod index;
mod instance;
mod labels;
mod metrics;
mod polling;
mod propagator;
mod reconcile;
mod retarget;
mod scope;
mod secrets;
mod service_accounts;
mod settings;
mod takeover;
mod view;

#[cfg(feature = "cli")]
pub use args::{PropagationArgs, WatchModeArg};
pub use cleanup::{CleanupReport, CleanupScope, cleanup};
pub use desired::{Desired, DesiredSecret};
pub use error::{Error, Result, api_error};
pub use instance::{Claim, InstanceId, InvalidInstanceId};
pub use labels::{
    FIELD_MANAGER, IGNORE_ANNOTATIONS, INSTANCE_LABEL, MANAGED_BY_LABEL, MANAGED_BY_VALUE,
    PATCHER_MANAGED_BY, PROVIDER_LABEL, REFS_ANNOTATION, REFS_ANNOTATION_PREFIX, instance_selector,
};
pub use metrics::{ErrorLabel, PropagatorMetrics};
pub use polling::PassReport;
pub use propagator::Propagator;
pub use scope::{Decision, LabelSelectorError, NamespaceScope, parse_label_selector};
pub use settings::{ServiceAccountMode, Settings, WatchMode};
pub use takeover::Predecessor;
