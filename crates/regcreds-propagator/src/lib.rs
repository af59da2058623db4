//! The propagator: one minted credential, every namespace.
//!
//! ```text
//!  binary ──watch::Sender<Desired>──┐ (a provider minted new bytes)
//!                                   ▼
//!   Namespaces (metadata-only) ──▶ Controller ──reconcile(ns)──▶ SSA Secret   (skip if cache says identical)
//!   managed Secrets (label) ─┐        ▲  ▲                      RMW ServiceAccount.imagePullSecrets
//!   ServiceAccounts ─────────┴─reflect┘  └── reconcile_all_on(Desired changed)
//! ```
//!
//! * Input is a [`Desired`] set of Secrets (name → dockerconfigjson bytes + provider). The propagator knows
//!   nothing about providers.
//! * Managed Secrets and ServiceAccounts are mirrored in reflector stores; the same reflected streams trigger
//!   the namespace's reconcile, so the cache is always at least as new as the event that woke us. A
//!   reconcile writes only what differs from the cache: a steady state costs no writes.
//! * Ownership: a Secret without our `managed-by` label is never touched unless `force` is set.
//!   ServiceAccount references we add are recorded in an annotation, so cleanup removes exactly those.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod cached;
mod cleanup;
mod controller;
mod desired;
mod error;
mod index;
mod labels;
mod metrics;
mod polling;
mod reconcile;
mod scope;
mod secrets;
mod service_accounts;
mod settings;
mod view;

pub use cleanup::{CleanupReport, cleanup};
pub use controller::Propagator;
pub use desired::{Desired, DesiredSecret};
pub use error::{Error, Result};
pub use labels::{
    FIELD_MANAGER, IGNORE_ANNOTATIONS, MANAGED_BY_LABEL, MANAGED_BY_VALUE, PROVIDER_LABEL, REFS_ANNOTATION,
};
pub use metrics::PropagatorMetrics;
pub use scope::{LabelSelectorError, NamespaceScope, parse_label_selector};
pub use settings::{ServiceAccountMode, Settings, WatchMode};
