//! The few facts about a pod that healing decides on, extracted once per watch event so that the full
//! object (volumes, env, managed fields, …) is dropped at once: memory stays proportional to the number
//! of pending pods, not their size.

use k8s_openapi::api::core::v1::{Container, ContainerState, ContainerStatus, Pod};
use kube::ResourceExt;

/// Waiting reasons kubelet reports while it cannot pull an image.
pub(crate) const PULL_FAILURES: &[&str] = &["ErrImagePull", "ImagePullBackOff"];

/// Waiting reasons that are only steps on the way to running, not failures.
const ON_THE_WAY: &[&str] = &["ContainerCreating", "PodInitializing"];

/// Workload controllers that recreate a deleted pod from their template.
pub(crate) const RECREATING_CONTROLLERS: &[(&str, &str)] = &[
    ("apps", "ReplicaSet"),
    ("apps", "StatefulSet"),
    ("apps", "DaemonSet"),
    ("batch", "Job"),
    ("", "ReplicationController"),
];

/// `namespace/name` of a pod.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct PodKey {
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
}

impl std::fmt::Display for PodKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

/// The controller that owns a pod (its `ownerReferences` entry with `controller: true`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Owner {
    /// `apps/v1`, `batch/v1`, `v1`, or a custom resource's.
    pub api_version: String,
    /// `ReplicaSet`, `StatefulSet`, …
    pub kind: String,
    /// Name.
    pub name: String,
    /// UID.
    pub uid: String,
}

impl Owner {
    /// Whether this is a workload controller that recreates its deleted pods.
    pub(crate) fn recreates_pods(&self) -> bool {
        let group = self.api_version.rsplit_once('/').map_or("", |(group, _)| group);
        RECREATING_CONTROLLERS
            .iter()
            .any(|(g, kind)| *g == group && *kind == self.kind)
    }
}

impl std::fmt::Display for Owner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.kind, self.name)
    }
}

/// What a container waits for, as kubelet reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Waiting {
    /// `ErrImagePull`, `ImagePullBackOff`, `ContainerCreating`, `CreateContainerConfigError`, …
    pub reason: String,
    /// Kubelet's explanation (the runtime's pull error for pull failures).
    pub message: String,
}

/// One container (init or regular) and its progress.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ContainerFacts {
    /// Container name.
    pub name: String,
    /// Image reference from the spec.
    pub image: String,
    /// What it waits for now, if it waits.
    pub waiting: Option<Waiting>,
    /// Running or terminated now, or restarted before: it has started at least once.
    pub started: bool,
}

/// What healing needs to know about a pod.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PodFacts {
    /// Namespace and name.
    pub key: PodKey,
    /// UID (a delete precondition).
    pub uid: String,
    /// resourceVersion (a delete precondition).
    pub resource_version: String,
    /// Being deleted already.
    pub deleting: bool,
    /// `spec.serviceAccountName` (`default` when unset).
    pub service_account: String,
    /// `spec.imagePullSecrets` names.
    pub pull_secrets: Vec<String>,
    /// The controller owning it, if any.
    pub owner: Option<Owner>,
    /// Init containers then regular containers.
    pub containers: Vec<ContainerFacts>,
}

impl PodFacts {
    /// Extracts the facts from a pod.
    pub(crate) fn from_pod(pod: &Pod) -> Self {
        let spec = pod.spec.as_ref();
        let status = pod.status.as_ref();
        let containers = |specs: Option<&Vec<Container>>, statuses: Option<&Vec<ContainerStatus>>| {
            specs
                .into_iter()
                .flatten()
                .map(|container| {
                    let status = statuses.into_iter().flatten().find(|s| s.name == container.name);
                    ContainerFacts {
                        name: container.name.clone(),
                        image: container.image.clone().unwrap_or_default(),
                        waiting: status.and_then(waiting),
                        started: status.is_some_and(ever_started),
                    }
                })
                .collect::<Vec<_>>()
        };
        let mut all = containers(
            spec.and_then(|s| s.init_containers.as_ref()),
            status.and_then(|s| s.init_container_statuses.as_ref()),
        );
        all.extend(containers(
            spec.map(|s| &s.containers),
            status.and_then(|s| s.container_statuses.as_ref()),
        ));
        let owner = pod
            .owner_references()
            .iter()
            .find(|owner| owner.controller == Some(true))
            .map(|owner| Owner {
                api_version: owner.api_version.clone(),
                kind: owner.kind.clone(),
                name: owner.name.clone(),
                uid: owner.uid.clone(),
            });
        Self {
            key: PodKey {
                namespace: pod.namespace().unwrap_or_default(),
                name: pod.name_any(),
            },
            uid: pod.uid().unwrap_or_default(),
            resource_version: pod.resource_version().unwrap_or_default(),
            deleting: pod.metadata.deletion_timestamp.is_some(),
            service_account: spec
                .and_then(|s| s.service_account_name.clone())
                .filter(|name| !name.is_empty())
                .unwrap_or_else(|| "default".into()),
            pull_secrets: spec
                .and_then(|s| s.image_pull_secrets.as_ref())
                .into_iter()
                .flatten()
                .map(|r| r.name.clone())
                .collect(),
            owner,
            containers: all,
        }
    }

    /// Whether any container has ever run (even one that finished, like a completed init container).
    pub(crate) fn ever_started(&self) -> bool {
        self.containers.iter().any(|c| c.started)
    }

    /// Containers kubelet cannot pull the image of.
    pub(crate) fn pull_failures(&self) -> impl Iterator<Item = &ContainerFacts> {
        self.containers.iter().filter(|c| {
            c.waiting
                .as_ref()
                .is_some_and(|w| PULL_FAILURES.contains(&w.reason.as_str()))
        })
    }

    /// The first waiting reason that is neither a pull failure nor a normal step (e.g.
    /// `CreateContainerConfigError`, `InvalidImageName`): recreating the pod would not fix that.
    pub(crate) fn other_failure(&self) -> Option<&str> {
        self.containers.iter().find_map(|c| {
            let reason = c.waiting.as_ref()?.reason.as_str();
            (!PULL_FAILURES.contains(&reason) && !ON_THE_WAY.contains(&reason)).then_some(reason)
        })
    }
}

fn ever_started(status: &ContainerStatus) -> bool {
    let started =
        |state: Option<&ContainerState>| state.is_some_and(|s| s.running.is_some() || s.terminated.is_some());
    status.restart_count > 0 || started(status.state.as_ref()) || started(status.last_state.as_ref())
}

fn waiting(status: &ContainerStatus) -> Option<Waiting> {
    let waiting = status.state.as_ref()?.waiting.as_ref()?;
    Some(Waiting {
        reason: waiting.reason.clone().unwrap_or_default(),
        message: waiting.message.clone().unwrap_or_default(),
    })
}

#[cfg(test)]
pub(crate) mod fixtures {
    //! Pods as kubelet reports them, written as the API returns them (JSON), for the decision tests.

    use k8s_openapi::api::core::v1::Pod;
    use serde_json::{Value, json};

    /// A ReplicaSet's pod in `ns`, without imagePullSecrets, stuck pulling `image`.
    pub(crate) fn stuck(name: &str, image: &str) -> Value {
        json!({
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "name": name,
                "namespace": "apps",
                "uid": format!("uid-{name}"),
                "resourceVersion": "42",
                "ownerReferences": [{
                    "apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web-5d8",
                    "uid": "rs-uid", "controller": true, "blockOwnerDeletion": true
                }]
            },
            "spec": {
                "serviceAccountName": "default",
                "containers": [{"name": "app", "image": image}]
            },
            "status": {
                "phase": "Pending",
                "containerStatuses": [{
                    "name": "app", "image": image, "imageID": "", "ready": false, "restartCount": 0,
                    "started": false,
                    "state": {"waiting": {
                        "reason": "ImagePullBackOff",
                        "message": format!("Back-off pulling image \"{image}\": ErrImagePull: failed to pull and unpack image \"{image}\": failed to resolve reference: pull access denied, authorization failed: no basic auth credentials")
                    }}
                }]
            }
        })
    }

    /// Parses a JSON pod.
    pub(crate) fn pod(value: Value) -> Pod {
        serde_json::from_value(value).expect("a valid pod")
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::{fixtures::*, *};

    #[test]
    fn a_stuck_pod_has_a_pull_failure_and_never_started() {
        let facts = PodFacts::from_pod(&pod(stuck("web-1", "reg:5000/app:1")));
        assert_eq!(facts.key.to_string(), "apps/web-1");
        assert_eq!(facts.service_account, "default");
        assert!(facts.pull_secrets.is_empty());
        assert_eq!(
            facts.owner.as_ref().map(ToString::to_string).as_deref(),
            Some("ReplicaSet/web-5d8")
        );
        assert!(facts.owner.as_ref().is_some_and(Owner::recreates_pods));
        assert!(!facts.ever_started());
        assert_eq!(
            facts
                .pull_failures()
                .map(|c| c.image.as_str())
                .collect::<Vec<_>>(),
            ["reg:5000/app:1"]
        );
        assert_eq!(facts.other_failure(), None);
    }

    #[test]
    fn a_restart_a_last_state_or_a_completed_init_container_counts_as_started() {
        let mut restarted = stuck("web-1", "reg:5000/app:1");
        restarted["status"]["containerStatuses"][0]["restartCount"] = json!(1);
        assert!(PodFacts::from_pod(&pod(restarted)).ever_started());

        let mut terminated_before = stuck("web-1", "reg:5000/app:1");
        terminated_before["status"]["containerStatuses"][0]["lastState"] =
            json!({"terminated": {"exitCode": 1, "reason": "Error"}});
        assert!(PodFacts::from_pod(&pod(terminated_before)).ever_started());

        let mut init_done = stuck("web-1", "reg:5000/app:1");
        init_done["spec"]["initContainers"] = json!([{"name": "migrate", "image": "busybox"}]);
        init_done["status"]["initContainerStatuses"] = json!([{
            "name": "migrate", "image": "busybox", "imageID": "x", "ready": true, "restartCount": 0,
            "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}
        }]);
        assert!(PodFacts::from_pod(&pod(init_done)).ever_started());
    }

    #[test]
    fn an_init_container_that_cannot_pull_is_a_pull_failure_of_the_pod() {
        let mut init_stuck = stuck("web-1", "reg:5000/app:1");
        init_stuck["spec"]["initContainers"] = json!([{"name": "init", "image": "reg:5000/init:1"}]);
        init_stuck["status"]["initContainerStatuses"] = json!([{
            "name": "init", "image": "reg:5000/init:1", "imageID": "", "ready": false, "restartCount": 0,
            "state": {"waiting": {"reason": "ErrImagePull", "message": "401 Unauthorized"}}
        }]);
        init_stuck["status"]["containerStatuses"][0]["state"] =
            json!({"waiting": {"reason": "PodInitializing"}});
        let facts = PodFacts::from_pod(&pod(init_stuck));
        assert!(!facts.ever_started());
        assert_eq!(
            facts.pull_failures().map(|c| c.name.as_str()).collect::<Vec<_>>(),
            ["init"]
        );
        assert_eq!(facts.other_failure(), None);
    }

    #[test]
    fn other_waiting_reasons_are_reported() {
        let mut config_error = stuck("web-1", "reg:5000/app:1");
        config_error["status"]["containerStatuses"][0]["state"] = json!({"waiting": {"reason": "CreateContainerConfigError", "message": "configmap \"x\" not found"}});
        let facts = PodFacts::from_pod(&pod(config_error));
        assert_eq!(facts.other_failure(), Some("CreateContainerConfigError"));
        assert_eq!(facts.pull_failures().count(), 0);
    }

    #[test]
    fn only_the_controller_reference_is_the_owner() {
        let mut two_owners = stuck("web-1", "reg:5000/app:1");
        two_owners["metadata"]["ownerReferences"] = json!([
            {"apiVersion": "v1", "kind": "ConfigMap", "name": "c", "uid": "c-uid"},
            {"apiVersion": "apps/v1", "kind": "StatefulSet", "name": "db", "uid": "s-uid", "controller": true}
        ]);
        let facts = PodFacts::from_pod(&pod(two_owners));
        assert_eq!(facts.owner.as_ref().map(|o| o.uid.as_str()), Some("s-uid"));

        let mut custom = stuck("web-1", "reg:5000/app:1");
        custom["metadata"]["ownerReferences"] = json!([
            {"apiVersion": "example.com/v1", "kind": "ReplicaSet", "name": "x", "uid": "x", "controller": true}
        ]);
        let facts = PodFacts::from_pod(&pod(custom));
        assert!(
            !facts.owner.as_ref().is_some_and(Owner::recreates_pods),
            "a custom kind named ReplicaSet"
        );

        let mut bare = stuck("web-1", "reg:5000/app:1");
        bare["metadata"]["ownerReferences"] = json!(null);
        assert_eq!(PodFacts::from_pod(&pod(bare)).owner, None);
    }
}
