//! regcreds as the kubelet's image credential provider (issue #27, point 3): on the real node (see
//! `regcreds_testkit::node`), the kubelet execs `regcreds credential-provider` at pull time, so a pod in a
//! namespace with no Secret and no `imagePullSecrets` pulls the private image from the TLS + htpasswd
//! registry; the same pod on the same node without the plugin fails with the registry's auth error. And
//! point 4: the chart's DaemonSet, run on that node from the real image, installs the plugin that a
//! kubelet then pulls with.
//!
//! `cargo test -p regcreds-e2e --test node_credential_provider` (root needed: the world's namespaces).
//! The world starts without a plugin, as every node world; each test restarts its kubelet with regcreds
//! as the provider and, before it ends, without it again.

use std::{os::unix::fs::PermissionsExt, path::Path, process::ExitCode, time::Instant};

use anyhow::{Context, Result, ensure};
use k8s_openapi::api::core::v1::{Pod, Secret, ServiceAccount};
use kube::{Api, api::ListParams};
use rand::distr::{Alphanumeric, SampleString};
use regcreds_testkit::{
    metric_sum,
    node::{self, CredentialProviderFiles, KubeletOptions, NodeWorld, Workload, kubelet_config_hash},
    node_tests, temp_namespace,
};

fn main() -> ExitCode {
    node::harness(node_tests![
        a_pod_with_no_pull_secret_pulls_the_private_image_through_the_regcreds_plugin_and_fails_without_it,
        the_charts_daemonset_installs_the_plugin_the_kubelet_then_pulls_with,
    ])
}

/// The kubelet's name for the plugin (its file in the bin dir, `plugin_name` in its metrics).
const PLUGIN: &str = "regcreds";
/// What containerd says when the registry answers the pull with a 401 Basic challenge and the
/// kubelet gave it no credential.
const NO_CREDENTIALS: &str = "no basic auth credentials";

/// One node, one pod spec (the busybox workload under a name no pod pulled before, no
/// `imagePullSecrets`, `imagePullPolicy: Always`), three kubelets:
/// 1. without a plugin (the world as it starts): ImagePullBackOff with containerd's answer to the
///    registry's 401 challenge, which the registry logged; the image stays off the node;
/// 2. with regcreds as the credential provider: a fresh namespace with no Secret runs the pod, pulled
///    by the kubelet (Pulled event, the registry authorized containerd's manifest request, the image
///    now in containerd, the kubelet ran the plugin and no run failed, the config it loaded is the
///    one written); the pod of step 1 recovers by itself; an image of a registry regcreds does not
///    serve still pulls (anonymously: the plugin ran for it, answered, and succeeded);
/// 3. without the plugin again: the same spec, the image now on the node, fails as in step 1.
async fn a_pod_with_no_pull_secret_pulls_the_private_image_through_the_regcreds_plugin_and_fails_without_it(
    world: &NodeWorld,
) -> Result<()> {
    ensure!(
        world.credential_provider().is_none(),
        "the world should start without a credential provider"
    );
    let tag = Alphanumeric.sample_string(&mut rand::rng(), 8).to_lowercase();
    let image = world.push_workload_image("demo/plugin", &tag).await?;
    ensure!(!world.has_image(&image)?, "{image} is already on the node");

    // 1. Without the plugin.
    let stuck_ns = namespace_without_credentials(world, "plugin-without").await?;
    let stuck = pull_fails_with_the_registry_auth_error(world, &stuck_ns, &image).await?;
    ensure!(
        !world.has_image(&image)?,
        "{image} reached the node without credentials"
    );

    // 2. With regcreds as the kubelet's credential provider; whatever happens, back without it.
    // From here on the pod of step 1 may pull at any moment (the new kubelet retries at once), so
    // the image was checked absent above, before the kubelet could pull it.
    let provider = world
        .regcreds_credential_provider()
        .match_image(world.public_registry().host());
    let with_plugin = async {
        world.restart_kubelet(Some(&provider)).await?;
        pulls_through_the_plugin(world, &image, &stuck_ns, &stuck).await
    }
    .await;
    let restored = world.restart_kubelet(None).await;
    with_plugin?;
    restored?;

    // 3. Without the plugin again: the image is on the node now, but `Always` asks the registry.
    ensure!(
        world.has_image(&image)?,
        "{image} should be on the node after step 2"
    );
    let again_ns = namespace_without_credentials(world, "plugin-again").await?;
    pull_fails_with_the_registry_auth_error(world, &again_ns, &image).await?;
    Ok(())
}

/// Step 2; `stuck` is the pod of step 1 in `stuck_ns`.
async fn pulls_through_the_plugin(world: &NodeWorld, image: &str, stuck_ns: &str, stuck: &Pod) -> Result<()> {
    let metrics = world.kubelet_metrics().await?;
    let config = world
        .credential_provider_config()
        .context("the kubelet runs with a credential provider")?;
    let hash = kubelet_config_hash(&std::fs::read(&config)?);
    ensure!(
        metrics.contains(&format!(
            "kubelet_credential_provider_config_info{{hash=\"{hash}\"}} 1"
        )),
        "the kubelet did not load {} ({hash}):\n{}",
        config.display(),
        kubelet_lines(&metrics, "kubelet_credential_provider")
    );

    let ns = namespace_without_credentials(world, "plugin-with").await?;
    let registry_before = world.registry_saw(image).await;
    let workload = Workload::new(&ns, "app", image);
    let created = Instant::now();
    world.create_workload(&workload).await?;
    let pods = world.wait_pods_running(&ns, &workload.selector(), 1).await?;
    let running_after = created.elapsed();
    let pod = &pods[0];
    ensure!(
        pod.spec
            .as_ref()
            .and_then(|s| s.image_pull_secrets.as_ref())
            .is_none_or(|refs| refs.is_empty()),
        "the pod has imagePullSecrets: {:?}",
        pod.spec.as_ref().map(|s| &s.image_pull_secrets)
    );
    let name = pod.metadata.name.clone().unwrap_or_default();
    let pulled = world
        .wait_pod_event(&ns, &name, &format!("Successfully pulled image \"{image}\""))
        .await?;
    ensure!(
        world.has_image(image)?,
        "{image} is not in containerd after the pull"
    );
    let registry_after = world.registry_saw(image).await;
    ensure!(
        registry_after.authorized > registry_before.authorized,
        "the registry authorized no manifest request of containerd for {image} \
         ({registry_before:?} → {registry_after:?})"
    );
    ensure!(no_secrets(world, &ns).await?, "a Secret appeared in {ns}");
    // This kubelet started with the plugin: its counters began at zero.
    let metrics = world.kubelet_metrics().await?;
    let runs = plugin_runs(&metrics);
    ensure!(
        runs >= 1.0 && plugin_errors(&metrics) == 0.0,
        "the kubelet should have run the plugin without an error:\n{}",
        kubelet_lines(&metrics, "kubelet_credential_provider")
    );
    eprintln!(
        "pod Running {:.2}s after the Deployment was created, no Secret, pulled through the plugin \
         ({runs} plugin run(s)); {pulled}",
        running_after.as_secs_f64()
    );

    // The pod of step 1: same spec, never changed; the new kubelet pulls for it too.
    let stuck_selector = Workload::new(stuck_ns, "app", image).selector();
    let recovered = Instant::now();
    let again = world.wait_pods_running(stuck_ns, &stuck_selector, 1).await?;
    ensure!(
        again[0].metadata.uid == stuck.metadata.uid,
        "the pod of step 1 was replaced instead of recovering"
    );
    eprintln!(
        "the pod stuck in ImagePullBackOff without the plugin is Running {:.2}s later, unchanged",
        recovered.elapsed().as_secs_f64()
    );

    // A registry regcreds does not serve, matched by the config all the same: the plugin answers
    // without credentials and exits 0, and the kubelet pulls anonymously.
    let runs_before = plugin_runs(&metrics);
    let public_ns = namespace_without_credentials(world, "plugin-public").await?;
    let public = Workload::new(&public_ns, "pause", world.sandbox_image());
    let mut deployment = public.deployment();
    deployment
        .spec
        .template
        .spec
        .as_mut()
        .context("pod spec")?
        .containers[0]
        .command = None;
    Api::namespaced(world.client(), &public_ns)
        .create(&Default::default(), &deployment)
        .await?;
    world.wait_pods_running(&public_ns, &public.selector(), 1).await?;
    let metrics = world.kubelet_metrics().await?;
    ensure!(
        plugin_runs(&metrics) > runs_before && plugin_errors(&metrics) == 0.0,
        "the plugin should have run for {} and succeeded:\n{}",
        world.sandbox_image(),
        kubelet_lines(&metrics, "kubelet_credential_provider")
    );
    Ok(())
}

/// Point 4 as operators do it, on the real node: `helm install` of the chart with plugin mode alone
/// (`kubeletPlugin.enabled`, `secretMode.enabled=false`), the real image (the DaemonSet's only one), the
/// static provider reading its source Secret. Its DaemonSet's pod runs on the node and writes the binary (0755, the very binary of the
/// image) into `hostBinDir` and a root-only CredentialProviderConfig into `hostConfigDir`; a kubelet
/// started with the flags the README gives, naming those files, loads that config and pulls the private
/// image for a pod in a namespace with no Secret, through the plugin. Then the kubelet is restored and the
/// release removed.
async fn the_charts_daemonset_installs_the_plugin_the_kubelet_then_pulls_with(
    world: &NodeWorld,
) -> Result<()> {
    let host = world.dir().join("kubelet-plugin-host");
    let files = CredentialProviderFiles {
        config: host.join("config/credential-provider-config.yaml"),
        bin_dir: host.join("bin"),
    };
    let sets = [
        "secretMode.enabled=false".to_string(),
        "kubeletPlugin.enabled=true".to_string(),
        format!("kubeletPlugin.hostBinDir={}", files.bin_dir.display()),
        format!("kubeletPlugin.hostConfigDir={}", host.join("config").display()),
    ];
    let sets: Vec<&str> = sets.iter().map(String::as_str).collect();
    let installed = world
        .helm_install_regcreds("plugin", "regcreds-plugin", &sets)
        .await?;
    let pulled = async {
        // NB: helm's --wait can find a DaemonSet whose pods its controller has not created yet "ready".
        let selector = format!(
            "{},app.kubernetes.io/component=kubelet-plugin",
            installed.selector
        );
        world
            .wait_pods_running(&installed.namespace, &selector, 1)
            .await?;
        installed_as_the_chart_says(world, &files)?;
        world
            .restart_kubelet_with(KubeletOptions {
                credential_provider_files: Some(&files),
                ..KubeletOptions::default()
            })
            .await?;
        pulls_with_the_installed_plugin(world, &files).await
    }
    .await;
    let restored = world.restart_kubelet(None).await;
    let removed = world.uninstall_regcreds(&installed).await;
    pulled?;
    restored?;
    removed
}

/// The DaemonSet's files: the binary the image holds, executable, and a config only root may read
/// (its env list holds the password) naming the plugin, `credential-provider` and the static provider's
/// variables.
fn installed_as_the_chart_says(world: &NodeWorld, files: &CredentialProviderFiles) -> Result<()> {
    let binary = files.bin_dir.join(PLUGIN);
    let read = |path: &Path| std::fs::read(path).with_context(|| format!("reading {}", path.display()));
    ensure!(
        read(&binary)? == read(&world.regcreds_image_binary())?,
        "{} is not the image's binary",
        binary.display()
    );
    ensure!(
        mode(&binary)? == 0o755,
        "{} mode {:o}",
        binary.display(),
        mode(&binary)?
    );
    ensure!(
        mode(&files.config)? == 0o600,
        "{} mode {:o}",
        files.config.display(),
        mode(&files.config)?
    );
    let config = std::fs::read_to_string(&files.config)?;
    for expected in [
        "kind: CredentialProviderConfig",
        "args: [\"credential-provider\"]",
        "REGCREDS_STATIC_PASSWORD",
    ] {
        ensure!(config.contains(expected), "the config lacks {expected:?}");
    }
    Ok(())
}

fn mode(path: &Path) -> Result<u32> {
    Ok(std::fs::metadata(path)
        .with_context(|| format!("{} should exist", path.display()))?
        .permissions()
        .mode()
        & 0o7777)
}

/// The kubelet loaded the DaemonSet's config and, for a pod with no Secret, ran the plugin and pulled.
async fn pulls_with_the_installed_plugin(world: &NodeWorld, files: &CredentialProviderFiles) -> Result<()> {
    let metrics = world.kubelet_metrics().await?;
    let hash = kubelet_config_hash(&std::fs::read(&files.config)?);
    ensure!(
        metrics.contains(&format!(
            "kubelet_credential_provider_config_info{{hash=\"{hash}\"}} 1"
        )),
        "the kubelet did not load the DaemonSet's config ({hash}):\n{}",
        kubelet_lines(&metrics, "kubelet_credential_provider")
    );
    let tag = Alphanumeric.sample_string(&mut rand::rng(), 8).to_lowercase();
    let image = world.push_workload_image("demo/chart-plugin", &tag).await?;
    let ns = namespace_without_credentials(world, "chart-plugin").await?;
    let registry_before = world.registry_saw(&image).await;
    let workload = Workload::new(&ns, "app", &image);
    world.create_workload(&workload).await?;
    let pods = world.wait_pods_running(&ns, &workload.selector(), 1).await?;
    let name = pods[0].metadata.name.clone().unwrap_or_default();
    world
        .wait_pod_event(&ns, &name, &format!("Successfully pulled image \"{image}\""))
        .await?;
    let registry_after = world.registry_saw(&image).await;
    ensure!(
        registry_after.authorized > registry_before.authorized,
        "the registry authorized no request of containerd for {image}"
    );
    ensure!(no_secrets(world, &ns).await?, "a Secret appeared in {ns}");
    let metrics = world.kubelet_metrics().await?;
    ensure!(
        plugin_runs(&metrics) >= 1.0 && plugin_errors(&metrics) == 0.0,
        "the kubelet should have run the installed plugin without an error:\n{}",
        kubelet_lines(&metrics, "kubelet_credential_provider")
    );
    eprintln!("pulled {image} through the plugin the chart's DaemonSet installed");
    Ok(())
}

/// A fresh namespace, checked to hold no Secret and a `default` ServiceAccount without
/// `imagePullSecrets`: nothing in it can give the kubelet a credential.
async fn namespace_without_credentials(world: &NodeWorld, prefix: &str) -> Result<String> {
    let ns = temp_namespace(&world.client(), prefix).await;
    ensure!(no_secrets(world, &ns).await?, "{ns} holds Secrets");
    let default = Api::<ServiceAccount>::namespaced(world.client(), &ns)
        .get("default")
        .await?;
    ensure!(
        default.image_pull_secrets.is_none_or(|refs| refs.is_empty()),
        "{ns}/default has imagePullSecrets"
    );
    Ok(ns)
}

async fn no_secrets(world: &NodeWorld, ns: &str) -> Result<bool> {
    let secrets = Api::<Secret>::namespaced(world.client(), ns)
        .list(&ListParams::default())
        .await?;
    Ok(secrets.items.is_empty())
}

/// The workload of `image` in `ns` ends in ImagePullBackOff; its Failed event names the image and
/// containerd's answer to the registry's 401 challenge, which the registry logged for the image's
/// manifest (and authorized no request of containerd for it meanwhile).
async fn pull_fails_with_the_registry_auth_error(world: &NodeWorld, ns: &str, image: &str) -> Result<Pod> {
    let before = world.registry_saw(image).await;
    let workload = Workload::new(ns, "app", image);
    world.create_workload(&workload).await?;
    let pod = world
        .wait_pod_waiting(ns, &workload.selector(), "ImagePullBackOff")
        .await?;
    let name = pod.metadata.name.clone().unwrap_or_default();
    let event = world.wait_pod_event(ns, &name, NO_CREDENTIALS).await?;
    ensure!(event.contains(image), "the failure names the image: {event}");
    let after = world.registry_saw(image).await;
    ensure!(
        after.challenged > before.challenged && after.authorized == before.authorized,
        "the registry should have challenged containerd's request for {image} and authorized none \
         ({before:?} → {after:?})"
    );
    eprintln!("{ns}/{name}: {event}");
    Ok(pod)
}

/// How often the kubelet ran the plugin (`kubelet_credential_provider_plugin_duration`'s count).
fn plugin_runs(metrics: &str) -> f64 {
    metric_sum(
        metrics,
        "kubelet_credential_provider_plugin_duration_count",
        &[("plugin_name", PLUGIN)],
    )
}

/// How often a run of the plugin failed.
fn plugin_errors(metrics: &str) -> f64 {
    metric_sum(
        metrics,
        "kubelet_credential_provider_plugin_errors_total",
        &[("plugin_name", PLUGIN)],
    )
}

/// The exposition lines starting with `prefix`, for failure messages.
fn kubelet_lines(metrics: &str, prefix: &str) -> String {
    metrics
        .lines()
        .filter(|l| l.starts_with(prefix))
        .collect::<Vec<_>>()
        .join("\n")
}
