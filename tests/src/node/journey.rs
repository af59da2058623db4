//! What a user's journey on the node needs beyond one install: the repository's examples copied with
//! the image swapped, more registry users, pods created all along the way, and the proof that none of
//! them ever failed to pull.

use std::{
    path::{Path, PathBuf},
    process::Command,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use anyhow::{Context, Result, ensure};
use k8s_openapi::api::core::v1::{Event, Pod};
use kube::{
    Api,
    api::{ListParams, PostParams},
};
use tokio::task::JoinHandle;

use super::{NodeWorld, Workload, install::repo_root, run, tools::scratch_dir};

/// Kubelet's words for a failed pull, in an Event's reason or message.
const PULL_FAILURES: &[&str] = &[
    "ErrImagePull",
    "ImagePullBackOff",
    "Failed to pull",
    "Back-off pulling",
];
/// Label on the pods a [`PodStream`] creates.
const STREAM_LABEL: &str = "journey-stream";

impl NodeWorld {
    /// Copies `deploy/examples/<name>` into the world directory and writes `swapped/` beside it: a
    /// kustomization on top that swaps the image for the world's, plus `extra` lines (patches, …).
    /// Returns the copy's path (`swapped/` is its sibling).
    pub async fn copy_example(&self, name: &str, extra: &str) -> Result<PathBuf> {
        let image = self.regcreds_image().await?.to_string();
        let (repository, tag) = image.rsplit_once(':').context("image tag")?;
        let dir = scratch_dir(self.dir(), name)?;
        run(Command::new("cp")
            .arg("-r")
            .arg(repo_root().join("deploy/examples").join(name))
            .arg(&dir))?;
        let swapped = dir.join("swapped");
        std::fs::create_dir_all(&swapped)?;
        std::fs::write(
            swapped.join("kustomization.yaml"),
            format!(
                "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources:\n  - ../{name}\n\
                 images:\n  - name: ghcr.io/regcreds/regcreds\n    newName: {repository}\n    newTag: {tag}\n{extra}"
            ),
        )?;
        Ok(dir.join(name))
    }

    /// Adds `user` to the private registry, or changes their password.
    pub async fn set_registry_user(&self, user: &str, password: &str) {
        self.registry.write().await.set_user(user, password).await;
    }

    /// Starts creating a bare pod of the workload image every `every` in turn in each of `namespaces`
    /// (at most `limit` pods): pods created before, during and after whatever the test does next.
    pub fn stream_pods(&'static self, namespaces: &[&str], every: Duration, limit: usize) -> PodStream {
        let stop = Arc::new(AtomicBool::new(false));
        let namespaces: Vec<String> = namespaces.iter().map(|n| n.to_string()).collect();
        let task = tokio::spawn({
            let stop = stop.clone();
            async move {
                let mut created = Vec::new();
                for n in 0..limit {
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                    let namespace = &namespaces[n % namespaces.len()];
                    let name = format!("stream-{n}");
                    self.create_stream_pod(namespace, &name).await?;
                    created.push((namespace.clone(), name));
                    tokio::time::sleep(every).await;
                }
                Ok(created)
            }
        });
        PodStream { stop, task }
    }

    async fn create_stream_pod(&self, namespace: &str, name: &str) -> Result<()> {
        let workload = Workload::new(namespace, name, self.workload_image());
        let template = workload.deployment().spec.template;
        let mut pod = Pod {
            metadata: template.metadata.unwrap_or_default(),
            spec: template.spec,
            ..Pod::default()
        };
        pod.metadata.name = Some(name.into());
        pod.metadata
            .labels
            .get_or_insert_default()
            .insert(STREAM_LABEL.into(), "true".into());
        Api::<Pod>::namespaced(self.client(), namespace)
            .create(&PostParams::default(), &pod)
            .await
            .with_context(|| format!("creating pod {namespace}/{name}"))?;
        Ok(())
    }

    /// Deletes `namespaces` (their pods with them, so the node keeps room for the next test); does not
    /// wait for them to go.
    pub async fn delete_namespaces(&self, namespaces: &[&str]) -> Result<()> {
        let api = Api::<k8s_openapi::api::core::v1::Namespace>::all(self.client());
        for namespace in namespaces {
            match api.delete(namespace, &Default::default()).await {
                Ok(_) => {}
                Err(kube::Error::Api(status)) if status.code == 404 => {}
                Err(error) => return Err(error.into()),
            }
        }
        Ok(())
    }

    /// Fails if kubelet ever reported a failed pull in `namespaces` (the Events keep every one).
    pub async fn assert_no_failed_pull(&self, namespaces: &[&str]) -> Result<()> {
        let mut failures = Vec::new();
        for namespace in namespaces {
            let events = Api::<Event>::namespaced(self.client(), namespace)
                .list(&ListParams::default())
                .await?;
            for event in events.items {
                let text = format!(
                    "{}: {}",
                    event.reason.as_deref().unwrap_or_default(),
                    event.message.as_deref().unwrap_or_default()
                );
                if PULL_FAILURES.iter().any(|needle| text.contains(needle)) {
                    let pod = event.involved_object.name.unwrap_or_default();
                    failures.push(format!("{namespace}/{pod}: {text}"));
                }
            }
        }
        ensure!(failures.is_empty(), "pulls failed:\n{}", failures.join("\n"));
        Ok(())
    }
}

/// Pods being created by [`NodeWorld::stream_pods`].
pub struct PodStream {
    stop: Arc<AtomicBool>,
    task: JoinHandle<Result<Vec<(String, String)>>>,
}

impl PodStream {
    /// Stops creating pods and waits until every pod created is Running; returns how many there were.
    pub async fn finish(self, world: &NodeWorld) -> Result<usize> {
        self.stop.store(true, Ordering::Relaxed);
        let created = self.task.await??;
        for (namespace, name) in &created {
            world
                .wait_pods_running(namespace, &format!("app={name}"), 1)
                .await?;
        }
        Ok(created.len())
    }
}

/// Replaces the values of `keys` in the YAML file `path` (lines `  KEY: …`), as a user fills in a
/// Secret manifest; fails if a key is missing.
pub fn fill_yaml_values(path: &Path, values: &[(&str, &str)]) -> Result<()> {
    let text = std::fs::read_to_string(path)?;
    let mut filled = String::new();
    let mut seen = Vec::new();
    for line in text.lines() {
        let key = line.trim_start().split(':').next().unwrap_or_default();
        match values.iter().find(|(k, _)| *k == key) {
            Some((key, value)) => {
                seen.push(*key);
                filled += &format!("  {key}: \"{value}\"\n");
            }
            None => filled += &format!("{line}\n"),
        }
    }
    for (key, _) in values {
        ensure!(seen.contains(key), "{} has no key {key}", path.display());
    }
    std::fs::write(path, filled)?;
    Ok(())
}
