//! regcreds installed on the node the way users install it: `helm install` of `deploy/helm/regcreds`
//! or `kubectl apply -k` of a kustomization, with its image from the world's public registry.

use std::{
    path::{Path, PathBuf},
    process::Command,
    time::Duration,
};

use anyhow::{Context, Result, bail};
use k8s_openapi::api::{
    coordination::v1::Lease,
    core::v1::{Namespace, Pod, Secret, ServiceAccount},
};
use kube::{Api, api::PostParams};
use tokio::time::Instant;

use super::{NodeWorld, PULL_USER, run};

/// How long regcreds may take to write a Secret and the `default` ServiceAccount's reference.
const PROPAGATION_TIMEOUT: Duration = Duration::from_secs(90);

/// An installed regcreds: where its pods run and how to remove it.
#[derive(Debug, Clone)]
pub struct Installed {
    /// Namespace of the Deployment.
    pub namespace: String,
    /// Label selector of its pods.
    pub selector: String,
    /// `helm uninstall <release>`, or `kubectl delete -k <dir>`.
    how: Removal,
}

#[derive(Debug, Clone)]
enum Removal {
    Helm { release: String },
    Kustomize { dir: PathBuf },
}

/// The repository root (the chart, the manifests).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ is inside the workspace")
        .to_path_buf()
}

impl Installed {
    /// An install done with `kubectl apply -k dir`, removed with `kubectl delete -k dir`.
    pub fn kustomize(dir: &Path, namespace: &str, selector: &str) -> Self {
        Self {
            namespace: namespace.into(),
            selector: selector.into(),
            how: Removal::Kustomize { dir: dir.into() },
        }
    }

    /// The kustomization directory of a kustomize install.
    pub fn kustomization(&self) -> Option<&Path> {
        match &self.how {
            Removal::Kustomize { dir } => Some(dir),
            Removal::Helm { .. } => None,
        }
    }
}

impl NodeWorld {
    /// `helm install <release> deploy/helm/regcreds -n <namespace> --create-namespace --wait` with
    /// the image from [`Self::regcreds_image`], the static provider for the private registry (its
    /// source Secret `regcreds-static` created first, as the chart's values describe), then `sets`
    /// (`key=value`, e.g. `replicaCount=2`).
    pub async fn helm_install_regcreds(
        &self,
        release: &str,
        namespace: &str,
        sets: &[&str],
    ) -> Result<Installed> {
        let image = self.regcreds_image().await?;
        let (repository, tag) = image.rsplit_once(':').context("image has a tag")?;
        self.create_namespace(namespace).await?;
        self.create_static_source_secret(namespace, "regcreds-static")?;
        let chart = repo_root().join("deploy/helm/regcreds");
        let mut helm = self.helm();
        helm.args(["install", release])
            .arg(chart)
            .args(["--namespace", namespace, "--wait", "--timeout", "3m"])
            .args(["--set", &format!("image.repository={repository}")])
            .args(["--set", &format!("image.tag={tag}")])
            .args(["--set", "providers.static.enabled=true"])
            .args([
                "--set",
                &format!("providers.static.server={}", self.registry_host()),
            ])
            .args(["--set", "providers.static.existingSecret=regcreds-static"]);
        for set in sets {
            helm.args(["--set", set]);
        }
        run(&mut helm).context("helm install")?;
        Ok(Installed {
            namespace: namespace.into(),
            selector: format!("app.kubernetes.io/instance={release}"),
            how: Removal::Helm {
                release: release.into(),
            },
        })
    }

    /// `kubectl apply -k` of a user's own overlay on top of `deploy/overlays/static` (base + static
    /// provider), as the overlay's comment says: namespace `regcreds` and source Secret first. The overlay
    /// swaps the image and registry for the world's and runs `replicas`; it lives at
    /// `deploy/overlays/node-test` of a copy of `deploy/` in the world directory (kustomize refuses
    /// resources outside a kustomization's directory tree), next to the shipped overlays and components.
    pub async fn kustomize_install_regcreds(&self, replicas: u32) -> Result<Installed> {
        let image = self.regcreds_image().await?.to_string();
        let (repository, tag) = image.rsplit_once(':').context("image tag")?;
        let copy = super::scratch_dir(self.dir(), "deploy")?;
        run(Command::new("cp")
            .arg("-r")
            .arg(repo_root().join("deploy"))
            .arg(&copy))?;
        let overlay = copy.join("deploy/overlays/node-test");
        std::fs::create_dir_all(&overlay)?;
        std::fs::write(
            overlay.join("kustomization.yaml"),
            format!(
                "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources:\n  - ../static\n\
                 images:\n  - name: ghcr.io/regcreds/regcreds\n    newName: {repository}\n    newTag: {tag}\n\
                 replicas:\n  - name: regcreds\n    count: {replicas}\npatches:\n  - path: registry-patch.yaml\n"
            ),
        )?;
        std::fs::write(
            overlay.join("registry-patch.yaml"),
            format!(
                "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: regcreds\n  namespace: regcreds\n\
                 spec:\n  template:\n    spec:\n      containers:\n        - name: regcreds\n          env:\n\
                 \x20           - name: REGCREDS_STATIC_SERVER\n              value: \"{}\"\n",
                self.registry_host()
            ),
        )?;
        self.create_namespace("regcreds").await?;
        self.create_static_source_secret("regcreds", "regcreds-static")?;
        let rendered = run(self.kubectl().arg("kustomize").arg(&overlay))?;
        if !(rendered.contains(self.registry_host()) && rendered.contains(&image)) {
            bail!("the overlay must set the image and REGCREDS_STATIC_SERVER:\n{rendered}");
        }
        run(self.kubectl().args(["apply", "-k"]).arg(&overlay))?;
        Ok(Installed::kustomize(
            &overlay,
            "regcreds",
            "app.kubernetes.io/instance=regcreds",
        ))
    }

    /// Removes an install and waits until its pods are gone (so they stop writing).
    pub async fn uninstall_regcreds(&self, installed: &Installed) -> Result<()> {
        match &installed.how {
            Removal::Helm { release } => {
                run(self.helm().args([
                    "uninstall",
                    release,
                    "--namespace",
                    &installed.namespace,
                    "--wait",
                ]))?;
            }
            Removal::Kustomize { dir } => {
                run(self.kubectl().args(["delete", "--wait", "-k"]).arg(dir))?;
            }
        }
        let pods = Api::<Pod>::namespaced(self.client(), &installed.namespace);
        let deadline = Instant::now() + PROPAGATION_TIMEOUT;
        while !pods
            .list(&kube::api::ListParams::default().labels(&installed.selector))
            .await
            .map(|l| l.items.is_empty())
            .unwrap_or(true)
        {
            if Instant::now() > deadline {
                bail!("regcreds' pods still exist {PROPAGATION_TIMEOUT:?} after removal");
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        Ok(())
    }

    /// `kubectl -n <namespace> create secret generic <name> --type=kubernetes.io/basic-auth` with
    /// [`PULL_USER`] and the current password: the static provider's source.
    pub fn create_static_source_secret(&self, namespace: &str, name: &str) -> Result<()> {
        run(self
            .kubectl()
            .args(["-n", namespace, "create", "secret", "generic", name])
            .args([
                "--type=kubernetes.io/basic-auth",
                &format!("--from-literal=username={PULL_USER}"),
                &format!("--from-literal=password={}", self.pull_password()),
            ]))?;
        Ok(())
    }

    /// Creates namespace `name` (no error if it exists).
    pub async fn create_namespace(&self, name: &str) -> Result<()> {
        let mut namespace = Namespace::default();
        namespace.metadata.name = Some(name.into());
        match Api::<Namespace>::all(self.client())
            .create(&PostParams::default(), &namespace)
            .await
        {
            Err(kube::Error::Api(e)) if e.code == 409 => Ok(()),
            other => other.map(drop).map_err(Into::into),
        }
    }

    /// Waits until Secret `secret` exists in `namespace` and its `default` ServiceAccount lists it:
    /// from then on new pods there get it. Returns the Secret.
    pub async fn wait_for_pull_credential(&self, namespace: &str, secret: &str) -> Result<Secret> {
        let secrets = Api::<Secret>::namespaced(self.client(), namespace);
        let accounts = Api::<ServiceAccount>::namespaced(self.client(), namespace);
        let deadline = Instant::now() + PROPAGATION_TIMEOUT;
        loop {
            let written = secrets.get_opt(secret).await?;
            let referenced = accounts
                .get_opt("default")
                .await?
                .is_some_and(|sa| sa.image_pull_secrets.iter().flatten().any(|r| r.name == secret));
            if let (Some(written), true) = (written, referenced) {
                return Ok(written);
            }
            if Instant::now() > deadline {
                bail!(
                    "{namespace}: no Secret {secret} referenced by the default ServiceAccount after {PROPAGATION_TIMEOUT:?}"
                );
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    /// The holder of Lease `name` in `namespace`, if any.
    pub async fn lease_holder(&self, namespace: &str, name: &str) -> Result<Option<String>> {
        let lease = Api::<Lease>::namespaced(self.client(), namespace)
            .get_opt(name)
            .await?;
        Ok(lease.and_then(|l| l.spec?.holder_identity))
    }
}
