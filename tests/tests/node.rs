//! On a real node (kubelet, containerd, runc, CNI, kube-proxy; see `regcreds_testkit::node`): pods
//! pull the private image with credentials or end in ImagePullBackOff without them.
//!
//! One node world serves every test of this binary; `cargo test -p regcreds-e2e --test node` starts it
//! inside fresh namespaces (root needed). Add a test: an `async fn(&NodeWorld) -> anyhow::Result<()>`
//! and its name in the `node_tests!` list below.

use std::process::ExitCode;

use anyhow::{Context, Result, ensure};
use k8s_openapi::api::core::v1::{Pod, Secret, ServiceAccount};
use kube::{
    Api,
    api::{Patch, PatchParams},
};
use regcreds_testkit::{
    metric_value,
    node::{self, Installed, NodeWorld, Workload},
    node_tests, temp_namespace,
};

fn main() -> ExitCode {
    node::harness(node_tests![
        a_pod_pulls_the_private_image_with_a_pull_secret_and_runs_on_the_pod_network,
        without_credentials_the_same_workload_ends_in_image_pull_backoff_with_the_registry_auth_error,
        helm_install_two_ready_replicas_one_leader_and_a_new_namespace_pulls_while_an_excluded_one_cannot,
        kustomize_base_and_overlay_install_and_a_new_namespace_pulls,
        the_upmc_example_pulls_and_rotates_by_rollout_restart,
        the_imagepullsecret_patcher_example_pulls_and_rotates_without_a_restart,
    ])
}

/// The node kit itself: a user-made pull Secret referenced by the `default` ServiceAccount is enough
/// for kubelet to pull from the TLS + htpasswd registry; the pod gets an IP on the CNI bridge and
/// serves on it.
async fn a_pod_pulls_the_private_image_with_a_pull_secret_and_runs_on_the_pod_network(
    world: &NodeWorld,
) -> Result<()> {
    let client = world.client();
    let ns = temp_namespace(&client, "node-pull").await;
    world.create_pull_secret(&ns, "regcred").await?;
    Api::<ServiceAccount>::namespaced(client.clone(), &ns)
        .patch(
            "default",
            &PatchParams::default(),
            &Patch::Merge(serde_json::json!({ "imagePullSecrets": [{ "name": "regcred" }] })),
        )
        .await?;
    let mut workload = Workload::new(&ns, "web", world.workload_image());
    workload.replicas = 2;
    let mut deployment = workload.deployment();
    let container = &mut deployment
        .spec
        .template
        .spec
        .as_mut()
        .context("pod spec")?
        .containers[0];
    container.command = Some(
        [
            "sh",
            "-c",
            "echo hello from $(hostname) > /tmp/index.html && exec httpd -f -p 8080 -h /tmp",
        ]
        .map(String::from)
        .to_vec(),
    );
    Api::namespaced(client.clone(), &ns)
        .create(&Default::default(), &deployment)
        .await?;

    let pods = world.wait_pods_running(&ns, &workload.selector(), 2).await?;
    for pod in &pods {
        let ip = pod
            .status
            .as_ref()
            .and_then(|s| s.pod_ip.clone())
            .unwrap_or_default();
        ensure!(
            ip.starts_with("10.244.0."),
            "pod IP {ip} is not on the CNI bridge's 10.244.0.0/24"
        );
        let name = pod.metadata.name.clone().unwrap_or_default();
        let (status, body) = world.http_get_pod(pod, 8080, "/").await?;
        ensure!(
            status == 200 && body.trim() == format!("hello from {name}"),
            "the pod at {ip} answered {status}: {body}"
        );
    }
    Ok(())
}

/// The negative: the same workload in a namespace without any credential fails to pull, and the
/// reason is the registry's refusal, not some other error.
async fn without_credentials_the_same_workload_ends_in_image_pull_backoff_with_the_registry_auth_error(
    world: &NodeWorld,
) -> Result<()> {
    let ns = temp_namespace(&world.client(), "node-nocreds").await;
    let workload = Workload::new(&ns, "app", world.workload_image());
    world.create_workload(&workload).await?;
    let pod = world
        .wait_pod_waiting(&ns, &workload.selector(), "ImagePullBackOff")
        .await?;
    let name = pod.metadata.name.clone().unwrap_or_default();
    let event = world
        .wait_pod_event(&ns, &name, "no basic auth credentials")
        .await?;
    ensure!(
        event.contains(world.workload_image()),
        "the failure names the image: {event}"
    );
    Ok(())
}

/// The Secret the static provider writes into every namespace.
const STATIC_SECRET: &str = "dpr-secret";

/// Points 4 and 5 of the user's journey, with the Helm chart: two replicas Running and Ready through
/// kubelet's probes (which needs in-cluster config through the `kubernetes` ClusterIP, the chart's
/// ServiceAccount and RBAC), one leader (the Lease holder is the only replica that minted), metrics
/// fetched from the test over the pod network; a namespace created afterwards gets the Secret and
/// its pods pull; a namespace regcreds excludes stays without and its pod cannot pull.
async fn helm_install_two_ready_replicas_one_leader_and_a_new_namespace_pulls_while_an_excluded_one_cannot(
    world: &NodeWorld,
) -> Result<()> {
    let installed = world
        .helm_install_regcreds(
            "regcreds",
            "regcreds-system",
            &[
                "replicaCount=2",
                "excludeNamespaces={kube-system,kube-public,kube-node-lease,excluded-*}",
            ],
        )
        .await?;
    let outcome = async {
        let pods = world
            .wait_pods_running(&installed.namespace, &installed.selector, 2)
            .await?;
        assert_one_leader(world, &installed, &pods).await?;
        a_new_namespace_pulls(world, STATIC_SECRET).await?;

        let excluded = temp_namespace(&world.client(), "excluded").await;
        let workload = Workload::new(&excluded, "app", world.workload_image());
        world.create_workload(&workload).await?;
        let pod = world
            .wait_pod_waiting(&excluded, &workload.selector(), "ImagePullBackOff")
            .await?;
        let name = pod.metadata.name.unwrap_or_default();
        world
            .wait_pod_event(&excluded, &name, "no basic auth credentials")
            .await?;
        let secrets = Api::<Secret>::namespaced(world.client(), &excluded);
        ensure!(
            secrets.get_opt(STATIC_SECRET).await?.is_none(),
            "regcreds wrote into an excluded namespace"
        );
        Ok(())
    }
    .await;
    world.uninstall_regcreds(&installed).await?;
    outcome
}

/// Point 4 with kustomize: `kubectl apply -k` of the user's own overlay on top of
/// `deploy/overlays/static` (base + static provider): the image and registry swapped for the
/// world's, two replicas.
async fn kustomize_base_and_overlay_install_and_a_new_namespace_pulls(world: &NodeWorld) -> Result<()> {
    let installed = world.kustomize_install_regcreds(2).await?;
    let outcome = async {
        let pods = world
            .wait_pods_running(&installed.namespace, &installed.selector, 2)
            .await?;
        assert_one_leader(world, &installed, &pods).await?;
        a_new_namespace_pulls(world, STATIC_SECRET).await.map(drop)
    }
    .await;
    world.uninstall_regcreds(&installed).await?;
    outcome
}

/// The Lease holder is one of `pods`, and the only one that minted (standbys wait for the lease
/// before minting); both serve /metrics on the pod network.
async fn assert_one_leader(world: &NodeWorld, installed: &Installed, pods: &[Pod]) -> Result<()> {
    let names: Vec<String> = pods.iter().filter_map(|p| p.metadata.name.clone()).collect();
    let holder = world
        .lease_holder(&installed.namespace, "regcreds")
        .await?
        .context("no Lease `regcreds` holder")?;
    ensure!(
        names.contains(&holder),
        "Lease holder {holder} is not one of {names:?}"
    );
    let mut minted = Vec::new();
    for pod in pods {
        let (status, metrics) = world.http_get_pod(pod, 8080, "/metrics").await?;
        ensure!(status == 200, "/metrics answered {status}");
        let mints =
            metric_value(&metrics, "regcreds_provider_mints_total{provider=\"static\"}").unwrap_or(0.0);
        if mints > 0.0 {
            minted.push(pod.metadata.name.clone().unwrap_or_default());
        }
    }
    ensure!(
        minted == [holder.clone()],
        "only the leader {holder} may mint; minted: {minted:?}"
    );
    Ok(())
}

/// A namespace created now gets `secret` and a `default` ServiceAccount reference, and a workload
/// there (no pull secret of its own) pulls the private image and runs.
async fn a_new_namespace_pulls(world: &NodeWorld, secret: &str) -> Result<String> {
    let ns = temp_namespace(&world.client(), "workload").await;
    world.wait_for_pull_credential(&ns, secret).await?;
    wait_secret_holds(world, &ns, secret, &world.pull_password()).await?;
    let workload = Workload::new(&ns, "app", world.workload_image());
    world.create_workload(&workload).await?;
    let pods = world.wait_pods_running(&ns, &workload.selector(), 1).await?;
    let pulled_with = pods[0]
        .spec
        .as_ref()
        .and_then(|s| s.image_pull_secrets.clone())
        .unwrap_or_default();
    ensure!(
        pulled_with.iter().any(|r| r.name == secret),
        "the pod got its pull secret from the ServiceAccount: {pulled_with:?}"
    );
    Ok(ns)
}

/// Seed 000 (upmc registry-creds): `deploy/examples/upmc-registry-creds` with only the image swapped
/// and `secret.yaml` filled in for the private registry, as its README says. Rotation the upmc way:
/// the registry password changes (new pods are refused), the source Secret is updated,
/// `kubectl rollout restart deployment/registry-creds`, and new pods pull with the new password.
async fn the_upmc_example_pulls_and_rotates_by_rollout_restart(world: &NodeWorld) -> Result<()> {
    const NS: &str = "kube-system";
    let example = world.copy_example("upmc-registry-creds", "").await?;
    fill_upmc_secret(&example, world.registry_host(), &world.pull_password())?;
    node::run(
        world
            .kubectl()
            .args(["apply", "-k"])
            .arg(example.with_file_name("swapped")),
    )?;
    let installed = Installed::kustomize(&example.with_file_name("swapped"), NS, "name=registry-creds");
    let outcome = async {
        world.wait_pods_running(NS, &installed.selector, 1).await?;
        let ns = a_new_namespace_pulls(world, STATIC_SECRET).await?;

        let rotated = format!("rotated-{}", world.pull_password());
        world.change_pull_password(&rotated).await;
        let refused = pull_is_refused(world, &ns, "before-restart", "401 Unauthorized").await?;

        fill_upmc_secret(&example, world.registry_host(), &rotated)?;
        node::run(
            world
                .kubectl()
                .args(["apply", "-f"])
                .arg(example.join("secret.yaml")),
        )?;
        node::run(
            world
                .kubectl()
                .args(["-n", NS, "rollout", "restart", "deployment/registry-creds"]),
        )?;
        node::run(world.kubectl().args([
            "-n",
            NS,
            "rollout",
            "status",
            "deployment/registry-creds",
            "--timeout=120s",
        ]))?;
        wait_secret_holds(world, &ns, STATIC_SECRET, &rotated).await?;
        let workload = Workload::new(&ns, "after-restart", world.workload_image());
        world.create_workload(&workload).await?;
        world.wait_pods_running(&ns, &workload.selector(), 1).await?;
        // The refused pod names the Secret in its spec: kubelet's next retry uses the new bytes.
        world.wait_pods_running(&ns, &refused.selector(), 1).await?;
        Ok(())
    }
    .await;
    world.uninstall_regcreds(&installed).await?;
    outcome
}

/// Seed 001 (imagepullsecret-patcher): `deploy/examples/imagepullsecret-patcher` with only the image
/// swapped, the source Secret replaced as its README says. Rotation the patcher way: rewrite the
/// mounted source Secret, no restart; the namespaces' Secret follows and new pods pull.
async fn the_imagepullsecret_patcher_example_pulls_and_rotates_without_a_restart(
    world: &NodeWorld,
) -> Result<()> {
    const NS: &str = "imagepullsecret-patcher";
    const SECRET: &str = "image-pull-secret";
    let example = world.copy_example("imagepullsecret-patcher", "").await?;
    let swapped = example.with_file_name("swapped");
    node::run(world.kubectl().args(["apply", "-k"]).arg(&swapped))?;
    replace_patcher_source(world, NS, &world.pull_password())?;
    let installed = Installed::kustomize(&swapped, NS, "name=imagepullsecret-patcher");
    let outcome = async {
        let before = world.wait_pods_running(NS, &installed.selector, 1).await?;
        let ns = a_new_namespace_pulls(world, SECRET).await?;

        let rotated = format!("rotated-{}", world.pull_password());
        world.change_pull_password(&rotated).await;
        let refused = pull_is_refused(world, &ns, "before-rewrite", "401 Unauthorized").await?;
        replace_patcher_source(world, NS, &rotated)?;
        wait_secret_holds(world, &ns, SECRET, &rotated).await?;
        let workload = Workload::new(&ns, "after-rewrite", world.workload_image());
        world.create_workload(&workload).await?;
        world.wait_pods_running(&ns, &workload.selector(), 1).await?;
        world.wait_pods_running(&ns, &refused.selector(), 1).await?;

        let after = world.wait_pods_running(NS, &installed.selector, 1).await?;
        ensure!(
            before[0].metadata.uid == after[0].metadata.uid && restarts(&after[0]) == restarts(&before[0]),
            "regcreds was restarted or replaced; the rotation must not need it"
        );
        Ok(())
    }
    .await;
    world.uninstall_regcreds(&installed).await?;
    outcome
}

/// Fills the private-registry keys of the upmc example's `secret.yaml`, as a user would.
fn fill_upmc_secret(example: &std::path::Path, server: &str, password: &str) -> Result<()> {
    node::fill_yaml_values(
        &example.join("secret.yaml"),
        &[
            ("DOCKER_PRIVATE_REGISTRY_SERVER", server),
            ("DOCKER_PRIVATE_REGISTRY_USER", node::PULL_USER),
            ("DOCKER_PRIVATE_REGISTRY_PASSWORD", password),
        ],
    )
}

/// The patcher README's command: a new `image-pull-secret-src` from a docker config file, applied.
fn replace_patcher_source(world: &NodeWorld, namespace: &str, password: &str) -> Result<()> {
    use base64::Engine;
    let auth = base64::engine::general_purpose::STANDARD.encode(format!("{}:{password}", node::PULL_USER));
    let config = serde_json::json!({ "auths": { world.registry_host(): { "auth": auth } } });
    let file = node::scratch_dir(world.dir(), "docker-config")?.join("config.json");
    std::fs::write(&file, config.to_string())?;
    let yaml = node::run(
        world
            .kubectl()
            .args([
                "-n",
                namespace,
                "create",
                "secret",
                "generic",
                "image-pull-secret-src",
            ])
            .arg("--type=kubernetes.io/dockerconfigjson")
            .arg(format!("--from-file=.dockerconfigjson={}", file.display()))
            .args(["--dry-run=client", "-o", "yaml"]),
    )?;
    node::run_with_stdin(world.kubectl().args(["apply", "-f", "-"]), &yaml)?;
    Ok(())
}

/// A new workload in `namespace` fails to pull with `error` in its events (the old credential is
/// refused); returns it.
async fn pull_is_refused(world: &NodeWorld, namespace: &str, name: &str, error: &str) -> Result<Workload> {
    let workload = Workload::new(namespace, name, world.workload_image());
    world.create_workload(&workload).await?;
    let pod = world
        .wait_pod_waiting(namespace, &workload.selector(), "ImagePullBackOff")
        .await?;
    world
        .wait_pod_event(namespace, &pod.metadata.name.unwrap_or_default(), error)
        .await?;
    Ok(workload)
}

/// Waits until Secret `name` in `namespace` carries `password` (regcreds propagated the rotation).
async fn wait_secret_holds(world: &NodeWorld, namespace: &str, name: &str, password: &str) -> Result<()> {
    use base64::Engine;
    let encoded = base64::engine::general_purpose::STANDARD.encode(format!("{}:{password}", node::PULL_USER));
    let secrets = Api::<Secret>::namespaced(world.client(), namespace);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    loop {
        let bytes = secrets
            .get_opt(name)
            .await?
            .and_then(|s| s.data?.get(".dockerconfigjson").map(|b| b.0.clone()))
            .unwrap_or_default();
        let text = String::from_utf8_lossy(&bytes);
        if text.contains(password) || text.contains(&encoded) {
            return Ok(());
        }
        ensure!(
            std::time::Instant::now() < deadline,
            "{namespace}/{name} did not get the rotated password within 120 s"
        );
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    }
}

fn restarts(pod: &Pod) -> i32 {
    pod.status
        .as_ref()
        .and_then(|s| s.container_statuses.as_ref())
        .map_or(0, |c| c.iter().map(|c| c.restart_count).sum())
}
