//! Kubernetes Events about regcreds itself (mint failures, refused credentials), attached to its own Pod when known.

use k8s_openapi::api::core::v1::ObjectReference;
use kube::{
    Client,
    runtime::events::{Event, EventType, Recorder, Reporter},
};
use regcreds_verify::Refusal;
use tracing::warn;

/// Publishes Events regarding regcreds' Pod; a no-op when the Pod is unknown (running outside a cluster).
#[derive(Clone)]
pub struct SelfEvents {
    recorder: Recorder,
    pod: Option<ObjectReference>,
}

impl SelfEvents {
    /// Events about Pod `pod_name` in `namespace`.
    pub fn new(client: Client, namespace: Option<String>, pod_name: Option<String>) -> Self {
        let reporter = Reporter {
            controller: "regcreds".into(),
            instance: pod_name.clone(),
        };
        let pod = match (namespace, pod_name) {
            (Some(namespace), Some(name)) => Some(ObjectReference {
                api_version: Some("v1".into()),
                kind: Some("Pod".into()),
                name: Some(name),
                namespace: Some(namespace),
                ..Default::default()
            }),
            _ => None,
        };
        Self {
            recorder: Recorder::new(client, reporter),
            pod,
        }
    }

    /// A warning that a provider could not mint; `reason` is already free of secrets.
    pub async fn mint_failed(&self, provider: &str, reason: &str) {
        self.warn(
            "MintFailed",
            "Mint",
            format!("provider {provider}: {reason}; the last good credential stays in place"),
        )
        .await;
    }

    /// A warning that a registry refused a new credential, which was therefore not propagated.
    pub async fn credential_refused(&self, provider: &str, refusal: &Refusal, kept: &str) {
        self.warn(
            "CredentialRefused",
            "Verify",
            format!("provider {provider}: {refusal}; {kept}"),
        )
        .await;
    }

    async fn warn(&self, reason: &str, action: &str, note: String) {
        let Some(pod) = &self.pod else { return };
        let event = Event {
            type_: EventType::Warning,
            reason: reason.into(),
            note: Some(note),
            action: action.into(),
            secondary: None,
        };
        if let Err(error) = self.recorder.publish(&event, pod).await {
            warn!(%error, "could not publish event");
        }
    }
}
