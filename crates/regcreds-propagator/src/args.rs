//! Settings of `regcreds run` that shape propagation: scope, ServiceAccounts, ownership, concurrency.
//! imagepullsecret-patcher's `CONFIG_*` names are accepted beside the `REGCREDS_*` ones; every one of
//! its eleven settings is honoured (see the README's Propagation table), none is silently ignored.

use std::time::Duration;

use crate::{NamespaceScope, ServiceAccountMode, Settings, WatchMode, parse_label_selector};
use clap::{Args, ValueEnum};
use tracing::info;

use regcreds_settings::{
    ConfigProblems, Source, is_dns_subdomain, non_blank, parse_go_bool, parse_go_duration, split_list,
};

const SERVICE_ACCOUNTS: Source = Source::new("REGCREDS_SERVICE_ACCOUNTS", "service-accounts");
const COMPAT_SERVICE_ACCOUNTS: Source = Source::compat("CONFIG_SERVICEACCOUNTS", "serviceaccounts");
const COMPAT_ALL: Source = Source::compat("CONFIG_ALLSERVICEACCOUNT", "allserviceaccount");
/// Namespaces never written to unless `REGCREDS_EXCLUDE_NAMESPACES` says otherwise (the chart's
/// `excludeNamespaces` and `deploy/base` repeat it).
pub const DEFAULT_EXCLUDE_NAMESPACES: &str = "kube-system,kube-public,kube-node-lease,openshift,openshift-*";
const EXCLUDE: Source = Source::new("REGCREDS_EXCLUDE_NAMESPACES", "exclude-namespaces");
const COMPAT_EXCLUDE: Source = Source::compat("CONFIG_EXCLUDED_NAMESPACES", "excluded-namespaces");
const SELECTOR: Source = Source::new("REGCREDS_NAMESPACE_SELECTOR", "namespace-selector");
const FORCE: Source = Source::new("REGCREDS_FORCE", "force");
const COMPAT_FORCE: Source = Source::compat("CONFIG_FORCE", "config-force");
const COMPAT_MANAGED_ONLY: Source = Source::compat("CONFIG_MANAGEDONLY", "managedonly");
const CONCURRENCY: Source = Source::new("REGCREDS_CONCURRENCY", "concurrency");
const POLL: Source = Source::new("REGCREDS_NAMESPACE_POLL_SECONDS", "namespace-poll-seconds");
const COMPAT_LOOP: Source = Source::compat("CONFIG_LOOP_DURATION", "loop-duration");
const COMPAT_RUN_ONCE: Source = Source::compat("CONFIG_RUNONCE", "runonce");

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
    /// ServiceAccounts that get the Secrets in `imagePullSecrets`: comma-separated names, `*` for all, `none`.
    #[arg(long = "service-accounts", env = "REGCREDS_SERVICE_ACCOUNTS")]
    service_accounts: Option<String>,
    #[arg(long = "serviceaccounts", env = "CONFIG_SERVICEACCOUNTS", hide = true)]
    compat_service_accounts: Option<String>,
    #[arg(long = "allserviceaccount", env = "CONFIG_ALLSERVICEACCOUNT", hide = true)]
    compat_all_service_accounts: Option<String>,
    /// Namespaces to skip: comma-separated glob patterns. The default leaves out Kubernetes' own
    /// namespaces and OpenShift's (`openshift`, `openshift-*`), whose `default` ServiceAccounts are the
    /// platform's.
    #[arg(
        long = "exclude-namespaces",
        env = "REGCREDS_EXCLUDE_NAMESPACES",
        default_value = DEFAULT_EXCLUDE_NAMESPACES
    )]
    exclude_namespaces: String,
    #[arg(long = "excluded-namespaces", env = "CONFIG_EXCLUDED_NAMESPACES", hide = true)]
    compat_exclude_namespaces: Option<String>,
    /// Only namespaces whose labels match this selector (e.g. `regcreds=enabled,env in (dev,prod)`).
    #[arg(long = "namespace-selector", env = "REGCREDS_NAMESPACE_SELECTOR")]
    namespace_selector: Option<String>,
    /// Overwrite same-named Secrets that regcreds did not create.
    #[arg(long = "force", env = "REGCREDS_FORCE")]
    force: bool,
    #[arg(long = "config-force", env = "CONFIG_FORCE", hide = true)]
    compat_force: Option<String>,
    /// Take over the Secrets left by upmc registry-creds (recognised by the metadata and data shape it
    /// writes, for the registries regcreds' credential is for) and imagepullsecret-patcher (its
    /// ownership annotation); `false` leaves them alone like any Secret regcreds did not create.
    #[arg(long = "take-over", env = "REGCREDS_TAKE_OVER", default_value_t = true, action = clap::ArgAction::Set)]
    take_over: bool,
    /// imagepullsecret-patcher's "touch only Secrets it manages" (without that tool's inverted logic):
    /// true turns force off, also when CONFIG_FORCE=true.
    #[arg(long = "managedonly", env = "CONFIG_MANAGEDONLY", hide = true)]
    compat_managed_only: Option<String>,
    /// Namespaces reconciled at the same time.
    #[arg(long = "concurrency", env = "REGCREDS_CONCURRENCY", default_value_t = 16)]
    concurrency: u16,
    /// Safety-net resync of every namespace, in seconds (writes only if something drifted).
    #[arg(
        long = "resync-seconds",
        env = "REGCREDS_RESYNC_SECONDS",
        default_value_t = 3600
    )]
    resync_seconds: u64,
    /// Watch or poll Secrets and ServiceAccounts.
    #[arg(long = "watch-mode", env = "REGCREDS_WATCH_MODE", value_enum, default_value_t = WatchModeArg::Auto)]
    pub watch_mode: WatchModeArg,
    /// How often namespaces are listed when RBAC does not allow watching them (imagepullsecret-patcher's
    /// ClusterRole). With watch rights there is no such loop: new namespaces are handled at once.
    #[arg(long = "namespace-poll-seconds", env = "REGCREDS_NAMESPACE_POLL_SECONDS")]
    namespace_poll_seconds: Option<u64>,
    #[arg(long = "loop-duration", env = "CONFIG_LOOP_DURATION", hide = true)]
    compat_loop_duration: Option<String>,
    /// One pass over every namespace, then exit: 0 if every namespace converged, 1 if any failed. For a
    /// Job or CronJob; no leader election, no admin endpoint, no pod healing.
    #[arg(long = "once", env = "REGCREDS_RUN_ONCE")]
    run_once: bool,
    #[arg(long = "runonce", env = "CONFIG_RUNONCE", hide = true)]
    compat_run_once: Option<String>,
}

impl PropagationArgs {
    /// Validates everything and builds the propagator settings; `own_namespace` is never written to.
    pub fn build(&self, own_namespace: Option<String>, problems: &mut ConfigProblems) -> Option<Settings> {
        let mode = self.service_account_mode(problems);
        let force = self.force(problems);
        let scope = self.scope(own_namespace, problems);
        if self.concurrency == 0 {
            problems.add(CONCURRENCY, "must be at least 1");
        }
        let (mode, scope) = (mode?, scope?);
        let mut settings = Settings::new(scope);
        settings.service_accounts = mode;
        settings.force = force;
        settings.take_over = self.take_over;
        settings.concurrency = self.concurrency.max(1);
        settings.resync = Duration::from_secs(self.resync_seconds.max(10));
        settings.watch_mode = match self.watch_mode {
            // NB: `Auto` is resolved against the cluster's RBAC once connected (see `rbac`).
            WatchModeArg::Auto | WatchModeArg::Watch => WatchMode::Watch,
            WatchModeArg::Poll => WatchMode::Poll,
        };
        Some(settings)
    }

    /// Whether to make one pass and exit (`REGCREDS_RUN_ONCE`, or imagepullsecret-patcher's `CONFIG_RUNONCE`).
    pub fn run_once(&self, problems: &mut ConfigProblems) -> bool {
        self.run_once
            || parse_go_bool(
                non_blank(&self.compat_run_once).as_deref(),
                COMPAT_RUN_ONCE,
                problems,
            )
            .unwrap_or(false)
    }

    /// The namespace listing period used when namespaces cannot be watched (default 10 s, as
    /// imagepullsecret-patcher's loop), and the variable it came from.
    pub fn namespace_poll(&self, problems: &mut ConfigProblems) -> (Duration, Option<&'static str>) {
        const DEFAULT: Duration = Duration::from_secs(10);
        if let Some(seconds) = self.namespace_poll_seconds {
            if seconds == 0 {
                problems.add(POLL, "must be at least 1");
            }
            return (Duration::from_secs(seconds.max(1)), Some(POLL.env));
        }
        let Some(raw) = non_blank(&self.compat_loop_duration) else {
            return (DEFAULT, None);
        };
        match parse_go_duration(&raw) {
            Some(period) if period >= Duration::from_secs(1) => (period, Some(COMPAT_LOOP.env)),
            Some(_) => {
                problems.add(COMPAT_LOOP, format!("{raw:?} is shorter than 1s"));
                (DEFAULT, None)
            }
            None => {
                problems.add(
                    COMPAT_LOOP,
                    format!("{raw:?} is not a duration like \"10s\", \"1m30s\" or \"1h\""),
                );
                (DEFAULT, None)
            }
        }
    }

    /// Whether same-named Secrets regcreds did not create are taken over. imagepullsecret-patcher's
    /// `CONFIG_MANAGEDONLY=true` means "touch only Secrets it manages", so it turns `CONFIG_FORCE` off
    /// (that tool's example manifest sets both); combined with an explicit `REGCREDS_FORCE=true` it is a
    /// contradiction.
    fn force(&self, problems: &mut ConfigProblems) -> bool {
        let compat_force =
            parse_go_bool(non_blank(&self.compat_force).as_deref(), COMPAT_FORCE, problems).unwrap_or(false);
        let managed_only = parse_go_bool(
            non_blank(&self.compat_managed_only).as_deref(),
            COMPAT_MANAGED_ONLY,
            problems,
        )
        .unwrap_or(false);
        match (managed_only, self.force, compat_force) {
            (true, true, _) => {
                problems.add(
                    COMPAT_MANAGED_ONLY,
                    format!("\"true\" contradicts {}=true: set only one of the two", FORCE.env),
                );
                false
            }
            (true, false, true) => {
                info!(
                    "CONFIG_MANAGEDONLY=true: Secrets regcreds does not manage are left alone, so CONFIG_FORCE=true \
                     applies only to Secrets regcreds (or imagepullsecret-patcher) created"
                );
                false
            }
            (true, false, false) => false,
            (false, force, compat_force) => force || compat_force,
        }
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

    fn scope(&self, own_namespace: Option<String>, problems: &mut ConfigProblems) -> Option<NamespaceScope> {
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
        match NamespaceScope::new(&patterns, selector, own_namespace) {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_exclusions_spare_kubernetes_and_openshift_namespaces_only() {
        #[derive(clap::Parser)]
        struct Cli {
            #[command(flatten)]
            propagation: PropagationArgs,
        }
        let args = <Cli as clap::Parser>::try_parse_from(["regcreds"])
            .expect("no arguments needed")
            .propagation;
        assert_eq!(args.exclude_namespaces, DEFAULT_EXCLUDE_NAMESPACES);
        let mut problems = ConfigProblems::default();
        let scope = args
            .scope(None, &mut problems)
            .expect("the default scope is valid");
        assert!(problems.is_empty());
        let decide = |name: &str| {
            let meta = k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
                name: Some(name.to_string()),
                ..Default::default()
            };
            // (`Decision` is not exported; its Debug form is enough here.)
            format!("{:?}", scope.decide(&meta)) == "Include"
        };
        for excluded in [
            "kube-system",
            "kube-public",
            "kube-node-lease",
            "openshift",
            "openshift-monitoring",
            "openshift-config",
        ] {
            assert!(!decide(excluded), "{excluded} is excluded by default");
        }
        for included in [
            "default",
            "team-a",
            "openshiftish",
            "my-openshift-apps",
            "kubeflow",
        ] {
            assert!(decide(included), "{included} is not excluded by default");
        }
    }
}
