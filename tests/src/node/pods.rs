//! Workloads and what the node made of them: pod phases, waiting reasons, events.
//!
//! Every assertion reads the status kubelet reported; nothing here writes a status.

use std::time::Duration;

use anyhow::{Result, bail};
use k8s_openapi::api::{
    apps::v1::{Deployment, DeploymentSpec},
    core::v1::{Container, Event, Pod, PodSpec, PodTemplateSpec},
};
use kube::{
    Api,
    api::{ListParams, ObjectMeta, PostParams},
};
use tokio::time::Instant;

use super::NodeWorld;
use crate::node::tools;

/// Longest a pod may take to reach what a test waits for; a pull from the local registry takes about
/// a second, kubelet's pull backoff ~10 s after the first failure.
pub const POD_TIMEOUT: Duration = Duration::from_secs(120);
const POLL: Duration = Duration::from_millis(250);

/// A Deployment of the busybox workload image: `sleep` forever, pulled on every start
/// (`imagePullPolicy: Always`, so every pod proves its credentials against the registry, unless
/// [`Workload::pull_policy`] says otherwise), as the namespace's `default` ServiceAccount unless
/// [`Workload::service_account`] names another.
#[derive(Debug, Clone)]
pub struct Workload {
    /// Namespace.
    pub namespace: String,
    /// Deployment name; its pods carry `app=<name>`.
    pub name: String,
    /// Image to run.
    pub image: String,
    /// Replicas.
    pub replicas: i32,
    /// `serviceAccountName` of its pods; `None`: `default`.
    pub service_account: Option<String>,
    /// `imagePullPolicy` of its container: `Always`, `IfNotPresent` or `Never`.
    pub image_pull_policy: String,
}

impl Workload {
    /// One replica of `image` named `name` in `namespace`.
    pub fn new(namespace: &str, name: &str, image: &str) -> Self {
        Self {
            namespace: namespace.into(),
            name: name.into(),
            image: image.into(),
            replicas: 1,
            service_account: None,
            image_pull_policy: "Always".into(),
        }
    }

    /// Its pods run as ServiceAccount `name` (which must exist before they are created).
    pub fn service_account(mut self, name: &str) -> Self {
        self.service_account = Some(name.into());
        self
    }

    /// Its container's `imagePullPolicy` (`Always`, `IfNotPresent`, `Never`).
    pub fn pull_policy(mut self, policy: &str) -> Self {
        self.image_pull_policy = policy.into();
        self
    }

    /// The Deployment object (no imagePullSecrets: the ServiceAccount supplies them, or nothing does).
    pub fn deployment(&self) -> Deployment {
        let labels = std::collections::BTreeMap::from([("app".to_string(), self.name.clone())]);
        Deployment {
            metadata: ObjectMeta {
                name: Some(self.name.clone()),
                namespace: Some(self.namespace.clone()),
                ..ObjectMeta::default()
            },
            spec: DeploymentSpec {
                replicas: Some(self.replicas),
                selector: k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector {
                    match_labels: Some(labels.clone()),
                    ..Default::default()
                },
                template: PodTemplateSpec {
                    metadata: Some(ObjectMeta {
                        labels: Some(labels),
                        ..ObjectMeta::default()
                    }),
                    spec: Some(PodSpec {
                        termination_grace_period_seconds: Some(1),
                        service_account_name: self.service_account.clone(),
                        containers: vec![Container {
                            name: "main".into(),
                            image: Some(self.image.clone()),
                            image_pull_policy: Some(self.image_pull_policy.clone()),
                            command: Some(vec!["sleep".into(), "3600".into()]),
                            ..Container::default()
                        }],
                        ..PodSpec::default()
                    }),
                },
                ..DeploymentSpec::default()
            },
            ..Deployment::default()
        }
    }

    /// The label selector of its pods.
    pub fn selector(&self) -> String {
        format!("app={}", self.name)
    }
}

impl NodeWorld {
    /// Creates a `kubernetes.io/dockerconfigjson` Secret `name` in `namespace` for the private
    /// registry with [`super::PULL_USER`]'s current password (what a user would create by hand).
    pub async fn create_pull_secret(&self, namespace: &str, name: &str) -> Result<()> {
        use base64::{Engine, engine::general_purpose::STANDARD};
        let (user, password) = (super::PULL_USER, self.pull_password());
        let config = serde_json::json!({ "auths": { self.registry_host(): {
            "username": user, "password": password,
            "auth": STANDARD.encode(format!("{user}:{password}")),
        }}});
        let secret = k8s_openapi::api::core::v1::Secret {
            metadata: ObjectMeta {
                name: Some(name.into()),
                namespace: Some(namespace.into()),
                ..ObjectMeta::default()
            },
            type_: Some("kubernetes.io/dockerconfigjson".into()),
            data: Some(std::collections::BTreeMap::from([(
                ".dockerconfigjson".to_string(),
                k8s_openapi::ByteString(serde_json::to_vec(&config)?),
            )])),
            ..Default::default()
        };
        Api::namespaced(self.client(), namespace)
            .create(&PostParams::default(), &secret)
            .await?;
        Ok(())
    }

    /// Creates `workload`'s Deployment.
    pub async fn create_workload(&self, workload: &Workload) -> Result<()> {
        Api::<Deployment>::namespaced(self.client(), &workload.namespace)
            .create(&PostParams::default(), &workload.deployment())
            .await?;
        Ok(())
    }

    /// Waits until `replicas` pods match `selector` in `namespace` and all are Running with every
    /// container ready; returns them.
    pub async fn wait_pods_running(
        &self,
        namespace: &str,
        selector: &str,
        replicas: usize,
    ) -> Result<Vec<Pod>> {
        let pods = Api::<Pod>::namespaced(self.client(), namespace);
        let deadline = Instant::now() + POD_TIMEOUT;
        loop {
            let list = pods.list(&ListParams::default().labels(selector)).await?;
            let running: Vec<Pod> = list
                .items
                .iter()
                .filter(|p| p.metadata.deletion_timestamp.is_none())
                .filter(|p| is_running_and_ready(p))
                .cloned()
                .collect();
            if running.len() == replicas && list.items.len() == replicas {
                return Ok(running);
            }
            if Instant::now() > deadline {
                bail!(
                    "{namespace}: {replicas} pods `{selector}` not Running and ready after {POD_TIMEOUT:?}:\n{}",
                    self.describe_pods(namespace, selector).await
                );
            }
            self.check_running()?;
            tokio::time::sleep(POLL).await;
        }
    }

    /// Waits until a pod matching `selector` in `namespace` has a container waiting with `reason`
    /// (e.g. `ImagePullBackOff`); returns that pod.
    pub async fn wait_pod_waiting(&self, namespace: &str, selector: &str, reason: &str) -> Result<Pod> {
        let pods = Api::<Pod>::namespaced(self.client(), namespace);
        let deadline = Instant::now() + POD_TIMEOUT;
        loop {
            let list = pods.list(&ListParams::default().labels(selector)).await?;
            if let Some(pod) = list
                .items
                .into_iter()
                .find(|p| waiting_reasons(p).iter().any(|r| r == reason))
            {
                return Ok(pod);
            }
            if Instant::now() > deadline {
                bail!(
                    "{namespace}: no pod `{selector}` waiting with {reason} after {POD_TIMEOUT:?}:\n{}",
                    self.describe_pods(namespace, selector).await
                );
            }
            self.check_running()?;
            tokio::time::sleep(POLL).await;
        }
    }

    /// The messages of the events about pod `name` in `namespace`, oldest first.
    pub async fn pod_events(&self, namespace: &str, name: &str) -> Result<Vec<String>> {
        let events = Api::<Event>::namespaced(self.client(), namespace)
            .list(&ListParams::default().fields(&format!("involvedObject.name={name}")))
            .await?;
        let mut items = events.items;
        items.sort_by_key(|e| {
            e.last_timestamp
                .clone()
                .or(e.first_timestamp.clone())
                .map(|t| t.0)
        });
        Ok(items
            .into_iter()
            .map(|e| {
                format!(
                    "{}: {}",
                    e.reason.unwrap_or_default(),
                    e.message.unwrap_or_default()
                )
            })
            .collect())
    }

    /// Waits until an event about pod `name` contains `needle`; returns that event's text.
    pub async fn wait_pod_event(&self, namespace: &str, name: &str, needle: &str) -> Result<String> {
        let deadline = Instant::now() + POD_TIMEOUT;
        loop {
            let events = self.pod_events(namespace, name).await?;
            if let Some(event) = events.iter().find(|e| e.contains(needle)) {
                return Ok(event.clone());
            }
            if Instant::now() > deadline {
                bail!(
                    "{namespace}/{name}: no event containing {needle:?} after {POD_TIMEOUT:?}: {events:#?}"
                );
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// `GET http://<pod IP>:<port><path>` from the test, through the pod network.
    pub async fn http_get_pod(&self, pod: &Pod, port: u16, path: &str) -> Result<(u16, String)> {
        let Some(ip) = pod.status.as_ref().and_then(|s| s.pod_ip.clone()) else {
            bail!("pod {:?} has no IP", pod.metadata.name);
        };
        let addr = format!("{ip}:{port}").parse()?;
        let path = path.to_string();
        tokio::task::spawn_blocking(move || tools::http_get(addr, &path))
            .await?
            .ok_or_else(|| anyhow::anyhow!("no answer from {addr}"))
    }

    /// `kubectl get pods -o wide` and the events of the matching pods, for failure messages.
    pub async fn describe_pods(&self, namespace: &str, selector: &str) -> String {
        let mut text = super::run(
            self.kubectl()
                .args(["get", "pods", "-o", "wide", "-n", namespace, "-l", selector]),
        )
        .unwrap_or_else(|e| format!("{e:#}"));
        let pods = Api::<Pod>::namespaced(self.client(), namespace)
            .list(&ListParams::default().labels(selector))
            .await
            .map(|l| l.items)
            .unwrap_or_default();
        for pod in pods {
            let name = pod.metadata.name.unwrap_or_default();
            let events = self.pod_events(namespace, &name).await.unwrap_or_default();
            text += &format!("events of {name}:\n  {}\n", events.join("\n  "));
        }
        text
    }
}

/// Phase Running and every container ready (kubelet's readiness probes passed).
pub fn is_running_and_ready(pod: &Pod) -> bool {
    let Some(status) = &pod.status else { return false };
    status.phase.as_deref() == Some("Running")
        && status
            .container_statuses
            .as_ref()
            .is_some_and(|c| !c.is_empty() && c.iter().all(|c| c.ready))
}

/// The `waiting.reason` of each container that is waiting.
pub fn waiting_reasons(pod: &Pod) -> Vec<String> {
    pod.status
        .as_ref()
        .and_then(|s| s.container_statuses.as_ref())
        .map(|statuses| {
            statuses
                .iter()
                .filter_map(|c| c.state.as_ref()?.waiting.as_ref()?.reason.clone())
                .collect()
        })
        .unwrap_or_default()
}
