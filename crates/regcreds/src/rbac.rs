//! Checking our own permissions, so regcreds can adapt to narrower RBAC instead of failing.

use k8s_openapi::api::authorization::v1::{
    ResourceAttributes, SelfSubjectAccessReview, SelfSubjectAccessReviewSpec,
};
use kube::{Api, Client, api::PostParams};
use regcreds_propagator::WatchMode;
use tracing::{info, warn};

/// Whether this identity may `verb` `resource` (core group) cluster-wide.
async fn allowed(client: &Client, verb: &str, resource: &str) -> bool {
    let review = SelfSubjectAccessReview {
        spec: SelfSubjectAccessReviewSpec {
            resource_attributes: Some(ResourceAttributes {
                verb: Some(verb.into()),
                resource: Some(resource.into()),
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
