//! Issue 23, point 3: an uninstall leaves nothing behind, on a real node (see `regcreds_testkit::node`).
//!
//! Both ways the README gives: `helm uninstall` (the chart's pre-delete hook stops the Deployment and
//! runs `regcreds cleanup` as its instance), and for kustomize the `uninstall` component applied, its
//! Job awaited, then `kubectl delete -k`. Afterwards no Secret labelled
//! `app.kubernetes.io/managed-by=regcreds` and no regcreds reference or record annotation is left on any
//! ServiceAccount, while the user's own Secret and `imagePullSecrets` entry are untouched and a pod that
//! pulled with regcreds' Secret keeps running (same UID, no restart).

use std::{process::ExitCode, time::Instant};

use anyhow::{Context, Result, bail, ensure};
use k8s_openapi::api::{
    batch::v1::Job,
    coordination::v1::Lease,
    core::v1::{Pod, Secret, ServiceAccount},
    rbac::v1::{ClusterRole, ClusterRoleBinding},
};
use kube::{Api, api::ListParams};
use regcreds_testkit::{
    append_pull_secret_ref,
    node::{self, Installed, NodeWorld, Workload},
    node_tests, regcreds_leftovers, temp_namespace,
};

fn main() -> ExitCode {
    node::harness(node_tests![
        helm_uninstall_removes_every_secret_and_reference_and_leaves_the_users_objects_and_pods_alone,
        the_kustomize_uninstall_sequence_removes_every_secret_and_reference_and_leaves_the_users_alone,
    ])
}

/// The Secret the static provider writes into every namespace.
const STATIC_SECRET: &str = "dpr-secret";
/// The user's own pull Secret, referenced from the same ServiceAccount as regcreds' one.
const USERS_SECRET: &str = "users-registry";

/// What a cluster looks like before the uninstall: namespaces with regcreds' Secret and reference, one
/// of them also with the user's own Secret and entry, and a pod that pulled with regcreds' Secret.
struct Before {
    namespaces: Vec<String>,
    users_namespace: String,
    users_secret_version: Option<String>,
    pod: Pod,
    managed_secrets: usize,
}

async fn populate(world: &NodeWorld) -> Result<Before> {
    let client = world.client();
    let mut namespaces = Vec::new();
    for _ in 0..3 {
        let ns = temp_namespace(&client, "uninstall").await;
        world.wait_for_pull_credential(&ns, STATIC_SECRET).await?;
        namespaces.push(ns);
    }
    let users_namespace = namespaces[0].clone();
    world.create_pull_secret(&users_namespace, USERS_SECRET).await?;
    append_pull_secret_ref(&client, &users_namespace, "default", USERS_SECRET).await?;
    let users_secret_version = Api::<Secret>::namespaced(client.clone(), &users_namespace)
        .get(USERS_SECRET)
        .await?
        .metadata
        .resource_version;
    let workload = Workload::new(&namespaces[1], "app", world.workload_image());
    world.create_workload(&workload).await?;
    let pod = world
        .wait_pods_running(&namespaces[1], &workload.selector(), 1)
        .await?
        .remove(0);
    let pulled_with: Vec<String> = pod
        .spec
        .as_ref()
        .and_then(|s| s.image_pull_secrets.clone())
        .unwrap_or_default()
        .into_iter()
        .map(|r| r.name)
        .collect();
    ensure!(
        pulled_with == [STATIC_SECRET],
        "the pod pulled with regcreds' Secret: {pulled_with:?}"
    );
    let managed_secrets = regcreds_leftovers(&client, &[])
        .await?
        .iter()
        .filter(|l| l.starts_with("secret "))
        .count();
    Ok(Before {
        namespaces,
        users_namespace,
        users_secret_version,
        pod,
        managed_secrets,
    })
}

/// Nothing of regcreds is left; the user's Secret and entry are as they were; the pod still runs.
async fn assert_nothing_left_but_the_users(world: &NodeWorld, before: &Before) -> Result<()> {
    let client = world.client();
    let left = regcreds_leftovers(&client, &[STATIC_SECRET]).await?;
    ensure!(
        left.is_empty(),
        "left behind after the uninstall:\n{}",
        left.join("\n")
    );
    let users = Api::<Secret>::namespaced(client.clone(), &before.users_namespace)
        .get(USERS_SECRET)
        .await
        .context("the user's own Secret")?;
    ensure!(
        users.metadata.resource_version == before.users_secret_version,
        "the user's Secret was written"
    );
    for ns in &before.namespaces {
        let refs: Vec<String> = Api::<ServiceAccount>::namespaced(client.clone(), ns)
            .get("default")
            .await?
            .image_pull_secrets
            .unwrap_or_default()
            .into_iter()
            .map(|r| r.name)
            .collect();
        let expected: &[&str] = if *ns == before.users_namespace {
            &[USERS_SECRET]
        } else {
            &[]
        };
        ensure!(refs == expected, "{ns}/default imagePullSecrets: {refs:?}");
    }
    let namespace = before.pod.metadata.namespace.clone().unwrap_or_default();
    let name = before.pod.metadata.name.clone().unwrap_or_default();
    let now = Api::<Pod>::namespaced(client, &namespace).get(&name).await?;
    ensure!(
        now.metadata.uid == before.pod.metadata.uid && restarts(&now) == restarts(&before.pod),
        "the user's pod was replaced or restarted"
    );
    ensure!(
        node::is_running_and_ready(&now),
        "the user's pod is no longer running: {:?}",
        now.status.and_then(|s| s.phase)
    );
    Ok(())
}

fn restarts(pod: &Pod) -> i32 {
    pod.status
        .as_ref()
        .and_then(|s| s.container_statuses.as_ref())
        .map_or(0, |c| c.iter().map(|c| c.restart_count).sum())
}

/// The README's Helm path: `helm uninstall --wait`, nothing else. The chart's pre-delete hook scales the
/// Deployment to zero, waits for its pods, takes the Lease, cleans up and deletes the Lease; its Job,
/// ServiceAccount and RBAC are gone afterwards too.
async fn helm_uninstall_removes_every_secret_and_reference_and_leaves_the_users_objects_and_pods_alone(
    world: &NodeWorld,
) -> Result<()> {
    const NS: &str = "regcreds-system";
    let installed = world.helm_install_regcreds("regcreds", NS, &[]).await?;
    let before = match populate(world).await {
        Ok(before) => before,
        Err(e) => {
            world.uninstall_regcreds(&installed).await?;
            return Err(e);
        }
    };
    ensure!(
        world.lease_holder(NS, "regcreds").await?.is_some(),
        "the controller holds its Lease"
    );
    let started = Instant::now();
    world.uninstall_regcreds(&installed).await?;
    eprintln!(
        "helm uninstall --wait (hook included) removed {} secrets in {:.1}s",
        before.managed_secrets,
        started.elapsed().as_secs_f64()
    );
    assert_nothing_left_but_the_users(world, &before).await?;

    let client = world.client();
    ensure!(
        Api::<Lease>::namespaced(client.clone(), NS)
            .get_opt("regcreds")
            .await?
            .is_none(),
        "the Lease is left in {NS}"
    );
    let hook = "regcreds-cleanup";
    ensure!(
        Api::<Job>::namespaced(client.clone(), NS)
            .get_opt(hook)
            .await?
            .is_none()
            && Api::<ServiceAccount>::namespaced(client.clone(), NS)
                .get_opt(hook)
                .await?
                .is_none()
            && Api::<ClusterRole>::all(client.clone())
                .get_opt(hook)
                .await?
                .is_none()
            && Api::<ClusterRoleBinding>::all(client.clone())
                .get_opt(hook)
                .await?
                .is_none(),
        "the hook's Job, ServiceAccount or RBAC is left"
    );
    wait_no_cleanup_pods(world, NS).await
}

/// The hook Job's pods go with it (garbage collection).
async fn wait_no_cleanup_pods(world: &NodeWorld, namespace: &str) -> Result<()> {
    let pods = Api::<Pod>::namespaced(world.client(), namespace);
    let deadline = Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let left = pods
            .list(&ListParams::default().labels("app.kubernetes.io/component=cleanup"))
            .await?;
        if left.items.is_empty() {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("the cleanup Job's pods are left in {namespace}");
        }
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    }
}

/// The README's kustomize path, on the user's overlay of `deploy/overlays/static`: a kustomization of
/// that overlay plus `deploy/components/uninstall`, then
/// `kubectl apply -k`, `kubectl wait --for=condition=complete job/regcreds-cleanup`, `kubectl delete -k`.
async fn the_kustomize_uninstall_sequence_removes_every_secret_and_reference_and_leaves_the_users_alone(
    world: &NodeWorld,
) -> Result<()> {
    let installed = world.kustomize_install_regcreds(1).await?;
    let populated = async {
        world
            .wait_pods_running(&installed.namespace, &installed.selector, 1)
            .await?;
        populate(world).await
    }
    .await;
    let before = match populated {
        Ok(before) => before,
        Err(e) => {
            world.uninstall_regcreds(&installed).await?;
            return Err(e);
        }
    };
    let overlays = installed
        .kustomization()
        .and_then(|overlay| overlay.parent())
        .context("the overlay's directory")?;
    let uninstall = overlays.join("node-test-uninstall");
    std::fs::create_dir_all(&uninstall)?;
    std::fs::write(
        uninstall.join("kustomization.yaml"),
        "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources:\n  - ../node-test\n\
         components:\n  - ../../components/uninstall\n",
    )?;
    let started = Instant::now();
    node::run(world.kubectl().args(["apply", "-k"]).arg(&uninstall))?;
    let waited = node::run(world.kubectl().args([
        "-n",
        "regcreds",
        "wait",
        "--for=condition=complete",
        "job/regcreds-cleanup",
        "--timeout=180s",
    ]));
    let logs = node::run(
        world
            .kubectl()
            .args(["-n", "regcreds", "logs", "job/regcreds-cleanup"]),
    )
    .unwrap_or_else(|e| format!("{e:#}"));
    let cleaned = started.elapsed();
    let removal = Installed::kustomize(&uninstall, "regcreds", &installed.selector);
    world.uninstall_regcreds(&removal).await?;
    waited.with_context(|| format!("the cleanup Job did not complete; its log:\n{logs}"))?;
    eprintln!(
        "apply of the uninstall component to a completed cleanup Job: {:.1}s",
        cleaned.as_secs_f64()
    );
    let summary = format!(
        "removed {} secrets and cleaned {} serviceaccounts",
        before.managed_secrets, before.managed_secrets
    );
    ensure!(
        logs.contains(&summary),
        "expected {summary:?} in the Job's log:\n{logs}"
    );
    ensure!(
        logs.contains("holding Lease regcreds/regcreds"),
        "the Job held the instance's Lease while cleaning up:\n{logs}"
    );
    assert_nothing_left_but_the_users(world, &before).await
}
