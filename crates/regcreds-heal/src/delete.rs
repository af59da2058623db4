//! Deleting one pod safely, and telling about it: an Event on the pod and one on its controller, and
//! an INFO line naming namespace, pod and controller.
//!
//! The delete carries preconditions on the pod's UID and resourceVersion as healing saw them: a
//! replacement with the same name (StatefulSet), or the same pod after kubelet updated it (a container
//! started, a new pull error), answers 409 instead of being deleted, and is looked at again when its
//! newer version arrives through the watch.

use k8s_openapi::api::core::v1::{ObjectReference, Pod};
use kube::{
    Api, Client,
    api::{DeleteParams, Preconditions},
    runtime::events::{Event, EventType, Recorder},
};
use tracing::{info, warn};

use regcreds_propagator::{Result, api_error};

use crate::{
    pod::PodFacts,
    verdict::{Cause, Heal},
};

/// What a guarded delete did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Deletion {
    /// Deleted (gracefully; the controller creates the replacement at once).
    Deleted,
    /// The pod changed since it was seen (409): not deleted.
    Changed,
    /// Already gone (404).
    Gone,
}

/// Deletes `pod` if it is still exactly the version healing decided on.
pub(crate) async fn delete(client: &Client, pod: &PodFacts) -> Result<Deletion> {
    let api: Api<Pod> = Api::namespaced(client.clone(), &pod.key.namespace);
    let params = DeleteParams {
        preconditions: Some(Preconditions {
            uid: Some(pod.uid.clone()),
            resource_version: Some(pod.resource_version.clone()),
        }),
        ..DeleteParams::default()
    };
    match api.delete(&pod.key.name, &params).await {
        Ok(_) => Ok(Deletion::Deleted),
        Err(kube::Error::Api(status)) if status.code == 409 => Ok(Deletion::Changed),
        Err(kube::Error::Api(status)) if status.code == 404 => Ok(Deletion::Gone),
        Err(error) => Err(api_error("delete", "pod", &pod.key.name, &pod.key.namespace)(
            error,
        )),
    }
}

/// The log line and the two Events of a deletion.
pub(crate) async fn report(recorder: &Recorder, pod: &PodFacts, heal: &Heal) {
    let (namespace, name, owner) = (&pod.key.namespace, &pod.key.name, &heal.owner);
    let why = explanation(heal);
    info!(
        %namespace,
        pod = %name,
        owner = %owner,
        reason = heal.cause.label(),
        image = %heal.image,
        registry = %heal.registry,
        "deleted pod {namespace}/{name} of {owner} so that it is recreated: {why}"
    );
    let pod_ref = ObjectReference {
        api_version: Some("v1".into()),
        kind: Some("Pod".into()),
        name: Some(name.clone()),
        namespace: Some(namespace.clone()),
        uid: Some(pod.uid.clone()),
        ..ObjectReference::default()
    };
    let event = |note: String, secondary: Option<ObjectReference>| Event {
        type_: EventType::Normal,
        reason: reason(&heal.cause).into(),
        note: Some(note),
        action: "Delete".into(),
        secondary,
    };
    let on_pod = event(
        format!("regcreds deleted this pod so that {owner} recreates it: {why}"),
        None,
    );
    let on_owner = event(
        format!("regcreds deleted pod {name} so that it is recreated: {why}"),
        Some(pod_ref.clone()),
    );
    let owner_ref = ObjectReference {
        api_version: Some(owner.api_version.clone()),
        kind: Some(owner.kind.clone()),
        name: Some(owner.name.clone()),
        namespace: Some(namespace.clone()),
        uid: Some(owner.uid.clone()),
        ..ObjectReference::default()
    };
    for (event, reference) in [(on_pod, pod_ref), (on_owner, owner_ref)] {
        if let Err(error) = recorder.publish(&event, &reference).await {
            warn!(%error, %namespace, pod = %name, "could not publish event");
        }
    }
}

/// Event reason.
fn reason(cause: &Cause) -> &'static str {
    match cause {
        Cause::MissingReference { .. } => "RecreatedForPullSecret",
        Cause::CredentialChanged { .. } => "RecreatedAfterCredentialChange",
    }
}

/// Why, in words (names only, never Secret content).
fn explanation(heal: &Heal) -> String {
    let image = &heal.image;
    match &heal.cause {
        Cause::MissingReference {
            secrets,
            service_account,
        } => {
            let secrets = secrets.iter().cloned().collect::<Vec<_>>().join(", ");
            format!(
                "it was created before ServiceAccount {service_account} listed imagePullSecrets {secrets}, \
                 and could not pull {image}; its replacement gets them"
            )
        }
        Cause::CredentialChanged { secret } => format!(
            "Secret {secret} changed; the replacement pulls {image} with it now instead of after kubelet's \
             back-off (up to 5 minutes)"
        ),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use http::{Request, Response};
    use kube::client::Body;
    use serde_json::{Value, json};

    use super::*;
    use crate::pod::fixtures::{pod, stuck};

    /// Requests the fake API server received: method, path, JSON body.
    type Seen = Arc<Mutex<Vec<(String, String, Value)>>>;

    /// A client whose API server answers every request with `status` and records the requests.
    fn answering(status: u16) -> (Client, Seen) {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let record = seen.clone();
        let service = tower::service_fn(move |request: Request<Body>| {
            let record = record.clone();
            async move {
                let (parts, body) = request.into_parts();
                let body = body.collect_bytes().await.unwrap_or_default();
                let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
                record.lock().expect("lock").push((
                    parts.method.to_string(),
                    parts.uri.path().to_string(),
                    body,
                ));
                let answer = match status {
                    200 => json!({"kind": "Status", "apiVersion": "v1", "status": "Success", "code": 200}),
                    code => json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "code": code,
                                   "reason": "Conflict", "message": "the object has been modified"}),
                };
                Response::builder()
                    .status(status)
                    .header("content-type", "application/json")
                    .body(Body::from(serde_json::to_vec(&answer).expect("json")))
            }
        });
        (Client::new(service, "default"), seen)
    }

    #[tokio::test]
    async fn the_delete_is_guarded_by_the_uid_and_resource_version_seen() {
        let facts = PodFacts::from_pod(&pod(stuck("web-1", "reg:5000/app:1")));
        let (client, seen) = answering(200);
        assert_eq!(delete(&client, &facts).await.expect("deleted"), Deletion::Deleted);
        let seen = seen.lock().expect("lock").clone();
        assert_eq!(seen.len(), 1, "one request: {seen:?}");
        let (method, path, body) = &seen[0];
        assert_eq!(method, "DELETE");
        assert_eq!(path, "/api/v1/namespaces/apps/pods/web-1");
        assert_eq!(
            body["preconditions"],
            json!({"uid": "uid-web-1", "resourceVersion": "42"}),
            "{body}"
        );
    }

    #[tokio::test]
    async fn a_newer_pod_or_a_gone_one_is_not_an_error() {
        let facts = PodFacts::from_pod(&pod(stuck("web-1", "reg:5000/app:1")));
        let (client, _) = answering(409);
        assert_eq!(
            delete(&client, &facts).await.expect("no error"),
            Deletion::Changed
        );
        let (client, _) = answering(404);
        assert_eq!(delete(&client, &facts).await.expect("no error"), Deletion::Gone);
        let (client, _) = answering(403);
        let error = delete(&client, &facts).await.expect_err("forbidden");
        assert_eq!(error.metric_label(), "forbidden");
        assert!(
            error.rbac_hints().iter().any(|h| h.contains("delete pods")),
            "{:?}",
            error.rbac_hints()
        );
    }
}
