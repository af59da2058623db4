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

/// How often namespaces are listed when they cannot be watched (imagepullsecret-patcher polled every 10 s).
const NAMESPACE_POLL: std::time::Duration = std::time::Duration::from_secs(10);

/// `Some(interval)` when namespaces cannot be watched (imagepullsecret-patcher's ClusterRole grants only
/// list and get on them): regcreds then lists them periodically instead, and says so once.
pub async fn namespace_poll(client: &Client) -> Option<std::time::Duration> {
    if allowed(client, "watch", "namespaces").await {
        return None;
    }
    warn!(
        "RBAC does not allow watch on namespaces: listing them every {} s instead, so new namespaces wait up \
         to that long. Grant watch on namespaces for instant propagation.",
        NAMESPACE_POLL.as_secs()
    );
    Some(NAMESPACE_POLL)
}
