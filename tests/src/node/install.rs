//! regcreds installed on the node the way users install it: `helm install` of `deploy/helm/regcreds`
//! or `kubectl apply -k` of a kustomization, with its image from the world's public registry.

use std::{
    path::{Path, PathBuf},
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
