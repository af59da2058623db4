//! Checking our own permissions, so regcreds can adapt to narrower RBAC instead of failing.

use k8s_openapi::api::authorization::v1::{
    ResourceAttributes, SelfSubjectAccessReview, SelfSubjectAccessReviewSpec,
};
use kube::{Api, Client, api::PostParams};
use regcreds_propagator::WatchMode;
use tracing::{info, warn};

/// Whether this identity may `verb` `resource` (core group) cluster-wide.
async fn allowed(client: &Client, verb: &str, resource: &str) -> bool {
    allowed_in(client, verb, "", resource, None).await
}

/// Whether this identity may `verb` `resource` of API `group`, in `namespace` or cluster-wide.
pub async fn allowed_in(
    client: &Client,
    verb: &str,
    group: &str,
    resource: &str,
    namespace: Option<&str>,
) -> bool {
    let review = SelfSubjectAccessReview {
        spec: SelfSubjectAccessReviewSpec {
            resource_attributes: Some(ResourceAttributes {
                verb: Some(verb.into()),
                group: Some(group.into()),
                resource: Some(resource.into()),
                namespace: namespace.map(String::from),
                ..Default::default()
            }),
            ..Default::default()
        },
        ..Default::default()
    };
    let reviews: Api<SelfSubjectAccessReview> = Api::all(client.clone());
    match reviews.create(&PostParams::default(), &review).await {
        Ok(answer) => answer.status.is_some_and(|s| s.allowed),
        Err(error) => {
            warn!(%error, verb, resource, "cannot check permissions; assuming not allowed");
            false
        }
    }
}

/// Watch mode if list and watch on Secrets and ServiceAccounts are allowed; otherwise poll mode, said once.
pub async fn detect_watch_mode(client: &Client) -> WatchMode {
    let mut missing = Vec::new();
    for resource in ["secrets", "serviceaccounts"] {
        for verb in ["list", "watch"] {
            if !allowed(client, verb, resource).await {
                missing.push(format!("{verb} {resource}"));
            }
        }
    }
    if missing.is_empty() {
        return WatchMode::Watch;
    }
    info!(
        missing = %missing.join(", "),
        "RBAC does not allow {}: running without drift watches (checking with get on each reconcile and a \
         periodic resync). Grant list and watch on secrets and serviceaccounts for instant drift repair.",
        missing.join(", ")
    );
    WatchMode::Poll
}

/// Whether leader election can work: the Lease must be readable, creatable and updatable in `namespace`.
/// If not (the narrow RBAC of upmc registry-creds' manifest), say once why regcreds runs without it.
pub async fn can_elect_leader(client: &Client, namespace: &str) -> bool {
    let mut missing = Vec::new();
    for verb in ["get", "create", "update"] {
        if !allowed_in(client, verb, "coordination.k8s.io", "leases", Some(namespace)).await {
            missing.push(verb);
        }
    }
    if missing.is_empty() {
        return true;
    }
    warn!(
        "RBAC does not allow {} leases (coordination.k8s.io) in namespace {namespace}: running without leader \
         election, so run a single replica. Grant get, create and update on leases there for several replicas.",
        missing.join(", ")
    );
    false
}

/// Whether standbys can watch the Lease, to take over the moment a leader releases it. If not, say once
/// that a hand-over then waits for the lease duration.
pub async fn can_watch_lease(client: &Client, namespace: &str) -> bool {
    let mut missing = Vec::new();
    for verb in ["list", "watch"] {
        if !allowed_in(client, verb, "coordination.k8s.io", "leases", Some(namespace)).await {
            missing.push(verb);
        }
    }
    if missing.is_empty() {
        return true;
    }
    warn!(
        "RBAC does not allow {} leases in namespace {namespace}: a standby takes over only when the lease \
         expires, not as soon as the leader releases it. Grant list and watch on leases there.",
        missing.join(", ")
    );
    false
}

/// `Some(interval)` when namespaces cannot be watched (imagepullsecret-patcher's ClusterRole grants only
/// list and get on them): regcreds then lists them every `interval` (10 s, as that tool's loop, or
/// `REGCREDS_NAMESPACE_POLL_SECONDS` / `CONFIG_LOOP_DURATION`), and says so once.
pub async fn namespace_poll(
    client: &Client,
    (interval, configured_by): (std::time::Duration, Option<&'static str>),
) -> Option<std::time::Duration> {
    if allowed(client, "watch", "namespaces").await {
        if let Some(variable) = configured_by {
            info!(
                "{variable} is not used: RBAC allows watching namespaces, so new namespaces are handled at once \
                 and there is no polling loop"
            );
        }
        return None;
    }
    warn!(
        "RBAC does not allow watch on namespaces: listing them every {:?} instead, so new namespaces wait up \
         to that long. Grant watch on namespaces for instant propagation.",
        interval
    );
    Some(interval)
}
