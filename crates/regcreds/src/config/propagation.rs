//! Settings of `regcreds run` that shape propagation: scope, ServiceAccounts, ownership, concurrency.
//! imagepullsecret-patcher's `CONFIG_*` names are accepted beside the `REGCREDS_*` ones.

use std::time::Duration;

use clap::{Args, ValueEnum};
use regcreds_propagator::{NamespaceScope, ServiceAccountMode, Settings, WatchMode, parse_label_selector};

use super::{
    ConfigProblems,
    setting::{Source, non_blank},
};

const SERVICE_ACCOUNTS: Source = Source::new("REGCREDS_SERVICE_ACCOUNTS", "service-accounts");
const COMPAT_SERVICE_ACCOUNTS: Source = Source::new("CONFIG_SERVICEACCOUNTS", "serviceaccounts");
const COMPAT_ALL: Source = Source::new("CONFIG_ALLSERVICEACCOUNT", "allserviceaccount");
const EXCLUDE: Source = Source::new("REGCREDS_EXCLUDE_NAMESPACES", "exclude-namespaces");
const COMPAT_EXCLUDE: Source = Source::new("CONFIG_EXCLUDED_NAMESPACES", "excluded-namespaces");
const SELECTOR: Source = Source::new("REGCREDS_NAMESPACE_SELECTOR", "namespace-selector");
const COMPAT_FORCE: Source = Source::new("CONFIG_FORCE", "config-force");
const CONCURRENCY: Source = Source::new("REGCREDS_CONCURRENCY", "concurrency");

/// Where the Kubernetes client finds its own namespace when none is configured.
const SERVICE_ACCOUNT_NAMESPACE_FILE: &str = "/var/run/secrets/kubernetes.io/serviceaccount/namespace";

/// How regcreds learns about Secrets and ServiceAccounts.
#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum WatchModeArg {
    /// Watch if RBAC allows list and watch on secrets and serviceaccounts, else poll (said once in the log).
    Auto,
    /// Watch them (needs list/watch on secrets and serviceaccounts): instant drift repair, no polling.
    Watch,
    /// Read them on each reconcile and resync periodically (for upmc-style RBAC without list/watch).
    Poll,
}

/// Propagation settings.
#[derive(Args, Debug, Clone)]
#[command(next_help_heading = "Propagation")]
pub struct PropagationArgs {
    /// regcreds' own namespace (always excluded: source Secrets live there) [default: the pod's namespace].
    #[arg(long = "namespace", env = "REGCREDS_NAMESPACE")]
    pub namespace: Option<String>,
    /// ServiceAccounts that get the Secrets in `imagePullSecrets`: comma-separated names, `*` for all, `none`.
    #[arg(long = "service-accounts", env = "REGCREDS_SERVICE_ACCOUNTS")]
    pub service_accounts: Option<String>,
    #[arg(long = "serviceaccounts", env = "CONFIG_SERVICEACCOUNTS", hide = true)]
    pub compat_service_accounts: Option<String>,
    #[arg(long = "allserviceaccount", env = "CONFIG_ALLSERVICEACCOUNT", hide = true)]
    pub compat_all_service_accounts: Option<String>,
    /// Namespaces to skip: comma-separated glob patterns.
    #[arg(
        long = "exclude-namespaces",
        env = "REGCREDS_EXCLUDE_NAMESPACES",
        default_value = "kube-system,kube-public,kube-node-lease"
    )]
    pub exclude_namespaces: String,
    #[arg(long = "excluded-namespaces", env = "CONFIG_EXCLUDED_NAMESPACES", hide = true)]
    pub compat_exclude_namespaces: Option<String>,
    /// Only namespaces whose labels match this selector (e.g. `regcreds=enabled,env in (dev,prod)`).
    #[arg(long = "namespace-selector", env = "REGCREDS_NAMESPACE_SELECTOR")]
    pub namespace_selector: Option<String>,
    /// Overwrite same-named Secrets that regcreds did not create.
    #[arg(long = "force", env = "REGCREDS_FORCE")]
    pub force: bool,
    #[arg(long = "config-force", env = "CONFIG_FORCE", hide = true)]
    pub compat_force: Option<String>,
    /// Namespaces reconciled at the same time.
    #[arg(long = "concurrency", env = "REGCREDS_CONCURRENCY", default_value_t = 16)]
    pub concurrency: u16,
    /// Safety-net resync of every namespace, in seconds (writes only if something drifted).
    #[arg(
        long = "resync-seconds",
        env = "REGCREDS_RESYNC_SECONDS",
        default_value_t = 3600
    )]
    pub resync_seconds: u64,
    /// Watch or poll Secrets and ServiceAccounts.
    #[arg(long = "watch-mode", env = "REGCREDS_WATCH_MODE", value_enum, default_value_t = WatchModeArg::Auto)]
    pub watch_mode: WatchModeArg,
    /// This pod's name, for Events and leader election.
    #[arg(long = "pod-name", env = "REGCREDS_POD_NAME")]
    pub pod_name: Option<String>,
}

impl PropagationArgs {
    /// regcreds' own namespace: configured, or the one the pod runs in.
    pub fn own_namespace(&self) -> Option<String> {
        self.namespace.clone().or_else(|| {
            std::fs::read_to_string(SERVICE_ACCOUNT_NAMESPACE_FILE)
                .ok()
                .map(|s| s.trim().to_string())
        })
    }

    /// Validates everything and builds the propagator settings.
    pub fn build(&self, problems: &mut ConfigProblems) -> Option<Settings> {
        let mode = self.service_account_mode(problems);
        let force = self.force
            || parse_go_bool(non_blank(&self.compat_force).as_deref(), COMPAT_FORCE, problems)
                .unwrap_or(false);
        let scope = self.scope(problems);
        if self.concurrency == 0 {
            problems.add(CONCURRENCY, "must be at least 1");
        }
        let (mode, scope) = (mode?, scope?);
        let mut settings = Settings::new(scope);
        settings.service_accounts = mode;
        settings.force = force;
        settings.concurrency = self.concurrency.max(1);
        settings.resync = Duration::from_secs(self.resync_seconds.max(10));
        settings.watch_mode = match self.watch_mode {
            // NB: `Auto` is resolved against the cluster's RBAC once connected (see `rbac`).
            WatchModeArg::Auto | WatchModeArg::Watch => WatchMode::Watch,
            WatchModeArg::Poll => WatchMode::Poll,
        };
        settings.instance = self.pod_name.clone();
        Some(settings)
    }

    fn service_account_mode(&self, problems: &mut ConfigProblems) -> Option<ServiceAccountMode> {
        if parse_go_bool(
            non_blank(&self.compat_all_service_accounts).as_deref(),
            COMPAT_ALL,
            problems,
        ) == Some(true)
        {
            return Some(ServiceAccountMode::All);
        }
        let named = (
            non_blank(&self.service_accounts),
            non_blank(&self.compat_service_accounts),
        );
        let (value, source) = match (&named.0, &named.1) {
            (Some(v), _) => (v.as_str(), SERVICE_ACCOUNTS),
            (None, Some(v)) => (v.as_str(), COMPAT_SERVICE_ACCOUNTS),
            (None, None) => ("default", SERVICE_ACCOUNTS),
        };
        let names: Vec<String> = split_list(value);
        match names.as_slice() {
            [] => Some(ServiceAccountMode::None),
            [one] if one == "none" => Some(ServiceAccountMode::None),
            [one] if one == "*" => Some(ServiceAccountMode::All),
            _ => match names.iter().find(|n| !is_dns_subdomain(n)) {
                Some(bad) => {
                    problems.add(
                        source,
                        format!("{bad:?} is not a valid ServiceAccount name (use names, `*` or `none`)"),
                    );
                    None
                }
                None => Some(ServiceAccountMode::Named(names)),
            },
        }
    }

    fn scope(&self, problems: &mut ConfigProblems) -> Option<NamespaceScope> {
        let mut patterns = split_list(&self.exclude_namespaces);
        patterns.extend(
            self.compat_exclude_namespaces
                .as_deref()
                .map(split_list)
                .unwrap_or_default(),
        );
        let selector = match non_blank(&self.namespace_selector)
            .as_deref()
            .map(parse_label_selector)
        {
            Some(Err(error)) => {
                problems.add(SELECTOR, error);
                return None;
            }
            Some(Ok(selector)) => Some(selector),
            None => None,
        };
        match NamespaceScope::new(&patterns, selector, self.own_namespace()) {
            Ok(scope) => Some(scope),
            Err(error) => {
                let source = if self.compat_exclude_namespaces.is_some() {
                    COMPAT_EXCLUDE
                } else {
                    EXCLUDE
                };
                problems.add(source, format!("invalid glob pattern: {error}"));
                None
            }
        }
    }
}

fn split_list(value: &str) -> Vec<String> {
    value
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(String::from)
        .collect()
}

/// Parses booleans the way imagepullsecret-patcher (Go's strconv.ParseBool) did.
fn parse_go_bool(value: Option<&str>, source: Source, problems: &mut ConfigProblems) -> Option<bool> {
    match value? {
        "1" | "t" | "T" | "true" | "TRUE" | "True" => Some(true),
        "0" | "f" | "F" | "false" | "FALSE" | "False" => Some(false),
        other => {
            problems.add(source, format!("{other:?} is not a boolean (true or false)"));
            None
        }
    }
}

fn is_dns_subdomain(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 253
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.')
        && name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name.ends_with(|c: char| c.is_ascii_alphanumeric())
}
