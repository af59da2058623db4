//! Pod healing on a real node (kubelet + containerd + runc, the TLS + htpasswd registry): pods created
//! before their namespace had the credential really fail to pull, and really run once regcreds
//! recreates them. Every pod status here is kubelet's.
//!
//! * a namespace and a Deployment in one `kubectl apply`, regcreds installed afterwards with the real
//!   chart (`healPods.enabled=true`, 2 replicas): every replica Running soon after the reference
//!   appears (the time is printed, not asserted tightly); Events on the pods and the ReplicaSet, the
//!   metric and the log line — from the Lease holder only;
//! * the same without healing: the pods stay in ImagePullBackOff (same UIDs) over a bounded window,
//!   although kubelet retried with the ServiceAccount listing the Secret;
//! * a bare pod, a pod whose command does not exist and a pod missing a ConfigMap are left alone;
//! * 50 stuck pods: deletions never outrun the per-namespace token bucket;
//! * a credential fixed in place: pods in pull back-off are recreated at once instead of after
//!   kubelet's back-off; with that part switched off, kubelet recovers the same pods later.
//!
//! `cargo test -p regcreds-e2e --test heal_pods` (root: the node world needs its own namespaces).

use std::{
    collections::{BTreeMap, BTreeSet},
    path::{Path, PathBuf},
    process::{Child, Command, ExitCode, Stdio},
    time::Duration,
};

use anyhow::{Context, Result, bail, ensure};
use k8s_openapi::api::core::v1::{Event, Pod, Secret, ServiceAccount};
use kube::{
    Api, Client,
    api::{DeleteParams, ListParams},
};
use regcreds_testkit::{
    free_port,
    node::{self, NodeWorld, PULL_USER},
    node_tests, regcreds_binary,
};
use tokio::time::Instant;

fn main() -> ExitCode {
    node::harness(node_tests![
        pods_created_before_the_reference_run_soon_after_it_appears_with_healing,
        without_healing_the_same_pods_stay_in_image_pull_backoff,
        a_bare_pod_and_pods_failing_for_other_reasons_are_left_alone,
        the_rate_limit_holds_with_50_stuck_pods,
        a_fixed_credential_is_retried_at_once_instead_of_after_kubelet_s_back_off,
        with_credential_change_healing_off_kubelet_recovers_the_same_pods_after_its_back_off,
    ])
}

/// The Secret regcreds writes (the static provider's default name).
const SECRET: &str = "dpr-secret";
/// Label every namespace of these tests carries; regcreds selects on it.
const SELECTOR_LABEL: &str = "regcreds-e2e-heal";
/// Generous bounds: they catch a feature that does not work, not a slow machine.
const HEAL_BOUND: Duration = Duration::from_secs(90);
const POLL: Duration = Duration::from_millis(100);

// === set-up helpers ===

/// `kubectl apply -f -` of `yaml` as the admin.
fn kubectl_apply(world: &NodeWorld, yaml: &str) -> Result<()> {
    node::run_with_stdin(world.kubectl().args(["apply", "-f", "-"]), yaml).map(drop)
}

/// A namespace (labelled for `test`) and a Deployment of `replicas` pods of `image`, as one document
/// stream: what `kubectl apply` of a freshly written chart sends. No imagePullSecrets: the pods get
/// whatever the `default` ServiceAccount lists when each is created.
fn namespace_and_deployment(ns: &str, test: &str, deployment: &str, image: &str, replicas: u32) -> String {
    format!(
        r#"apiVersion: v1
kind: Namespace
metadata:
  name: {ns}
  labels:
    {SELECTOR_LABEL}: {test}
---
{}"#,
        deployment_yaml(ns, deployment, image, replicas, "[sleep, \"3600\"]", "")
    )
}

/// A Deployment; `extra` is appended to the container (indented 10 spaces).
fn deployment_yaml(ns: &str, name: &str, image: &str, replicas: u32, command: &str, extra: &str) -> String {
    format!(
        r#"apiVersion: apps/v1
kind: Deployment
metadata:
  name: {name}
  namespace: {ns}
spec:
  replicas: {replicas}
  selector:
    matchLabels:
      app: {name}
  template:
    metadata:
      labels:
        app: {name}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
        - name: main
          image: {image}
          imagePullPolicy: Always
          command: {command}
{extra}"#
    )
}

/// A random suffix for namespace names (tests may run again on the same world).
fn suffix() -> String {
    use rand::distr::{Alphanumeric, SampleString};
    Alphanumeric.sample_string(&mut rand::rng(), 5).to_lowercase()
}

/// A `regcreds run` child inside the world (admin kubeconfig, static provider for the private
/// registry, only namespaces labelled for `test`), killed on drop.
struct Regcreds {
    child: Child,
    admin_port: u16,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl Regcreds {
    fn start(world: &NodeWorld, test: &str, password: &str, env: &[(&str, &str)]) -> Result<Self> {
        let dir = tempfile::tempdir()?;
        let log = dir.path().join("regcreds.log");
        let admin_port = free_port();
        let child = Command::new(regcreds_binary())
            .arg("run")
            .env_clear()
            .env("KUBECONFIG", world.kubeconfig())
            .env("REGCREDS_ADMIN_ADDR", format!("127.0.0.1:{admin_port}"))
            .env("REGCREDS_LEADER_ELECTION", "false")
            .env("REGCREDS_LOG_FORMAT", "json")
            .env("REGCREDS_NAMESPACE_SELECTOR", format!("{SELECTOR_LABEL}={test}"))
            .env("REGCREDS_STATIC_SERVER", world.registry_host())
            .env("REGCREDS_STATIC_USER", PULL_USER)
            .env("REGCREDS_STATIC_PASSWORD", password)
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log)?)
            .spawn()
            .context("starting regcreds")?;
        Ok(Self {
            child,
            admin_port,
            log,
            _dir: dir,
        })
    }

    fn logs(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    async fn metrics(&self) -> String {
        let addr = ([127, 0, 0, 1], self.admin_port).into();
        tokio::task::spawn_blocking(move || node::http_get(addr, "/metrics"))
            .await
            .ok()
            .flatten()
            .map(|(_, body)| body)
            .unwrap_or_default()
    }
}

impl Drop for Regcreds {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Sum of the samples of `name` whose labels contain every `key="value"` of `labels`.
fn metric(text: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    text.lines()
        .filter(|line| line.starts_with(name))
        .filter(|line| labels.iter().all(|(k, v)| line.contains(&format!("{k}=\"{v}\""))))
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

// === observing what kubelet reports ===

async fn pods(client: &Client, ns: &str, selector: &str) -> Result<Vec<Pod>> {
    Ok(Api::<Pod>::namespaced(client.clone(), ns)
        .list(&ListParams::default().labels(selector))
        .await?
        .items)
}

fn uid(pod: &Pod) -> String {
    pod.metadata.uid.clone().unwrap_or_default()
}

fn name(pod: &Pod) -> String {
    pod.metadata.name.clone().unwrap_or_default()
}

fn pull_secrets(pod: &Pod) -> Vec<String> {
    pod.spec
        .iter()
        .flat_map(|s| s.image_pull_secrets.iter().flatten())
        .map(|r| r.name.clone())
        .collect()
}

/// Phase Running and every container ready.
fn is_running_and_ready(pod: &Pod) -> bool {
    let Some(status) = &pod.status else { return false };
    status.phase.as_deref() == Some("Running")
        && status
            .container_statuses
            .as_ref()
            .is_some_and(|c| !c.is_empty() && c.iter().all(|c| c.ready))
}

/// The `waiting.reason` of each waiting container (init containers included).
fn waiting_reasons(pod: &Pod) -> Vec<String> {
    let Some(status) = &pod.status else {
        return Vec::new();
    };
    status
        .init_container_statuses
        .iter()
        .flatten()
        .chain(status.container_statuses.iter().flatten())
        .filter_map(|c| c.state.as_ref()?.waiting.as_ref()?.reason.clone())
        .collect()
}

/// Whether a container of `pod` waits with ErrImagePull or ImagePullBackOff.
fn failing_to_pull(pod: &Pod) -> bool {
    waiting_reasons(pod)
        .iter()
        .any(|r| r == "ErrImagePull" || r == "ImagePullBackOff")
}

/// Waits until `count` pods of `selector` exist and every one fails to pull; returns them.
async fn wait_stuck(world: &NodeWorld, ns: &str, selector: &str, count: usize) -> Result<Vec<Pod>> {
    let client = world.client();
    let deadline = Instant::now() + HEAL_BOUND;
    loop {
        let pods = pods(&client, ns, selector).await?;
        if pods.len() == count && pods.iter().all(failing_to_pull) {
            return Ok(pods);
        }
        if Instant::now() > deadline {
            bail!(
                "{ns}: {count} pods `{selector}` not all failing to pull:\n{}",
                world.describe_pods(ns, selector).await
            );
        }
        tokio::time::sleep(POLL).await;
    }
}

/// Waits until the `default` ServiceAccount of `ns` lists [`SECRET`]; returns when that was seen.
async fn wait_reference(client: &Client, ns: &str) -> Result<Instant> {
    let accounts = Api::<ServiceAccount>::namespaced(client.clone(), ns);
    let deadline = Instant::now() + HEAL_BOUND;
    loop {
        let listed = accounts
            .get_opt("default")
            .await?
            .is_some_and(|sa| sa.image_pull_secrets.iter().flatten().any(|r| r.name == SECRET));
        if listed {
            return Ok(Instant::now());
        }
        if Instant::now() > deadline {
            bail!("{ns}: the default ServiceAccount never listed {SECRET}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits until exactly `count` pods of `selector` run (ready, not terminating), none of them one of
/// `old`; returns them and when that was seen.
async fn wait_replaced_and_running(
    world: &NodeWorld,
    ns: &str,
    selector: &str,
    count: usize,
    old: &BTreeSet<String>,
    bound: Duration,
) -> Result<(Vec<Pod>, Instant)> {
    let client = world.client();
    let deadline = Instant::now() + bound;
    loop {
        let pods = pods(&client, ns, selector).await?;
        let running: Vec<Pod> = pods
            .iter()
            .filter(|p| p.metadata.deletion_timestamp.is_none() && is_running_and_ready(p))
            .cloned()
            .collect();
        if pods.len() == count && running.len() == count && running.iter().all(|p| !old.contains(&uid(p))) {
            return Ok((running, Instant::now()));
        }
        if Instant::now() > deadline {
            bail!(
                "{ns}: {count} new pods `{selector}` not Running after {bound:?}:\n{}",
                world.describe_pods(ns, selector).await
            );
        }
        tokio::time::sleep(POLL).await;
    }
}

/// Events in `ns` with `reason`, as (involved kind, involved name, message).
async fn events(client: &Client, ns: &str, reason: &str) -> Result<Vec<(String, String, String)>> {
    let list = Api::<Event>::namespaced(client.clone(), ns)
        .list(&ListParams::default().fields(&format!("reason={reason}")))
        .await?;
    Ok(list
        .items
        .into_iter()
        .map(|e| {
            (
                e.involved_object.kind.unwrap_or_default(),
                e.involved_object.name.unwrap_or_default(),
                e.message.unwrap_or_default(),
            )
        })
        .collect())
}

/// How often kubelet has tried to pull for pod `name` so far (its `Pulling` events, with their counts).
async fn pull_attempts(client: &Client, ns: &str, name: &str) -> Result<i32> {
    let list = Api::<Event>::namespaced(client.clone(), ns)
        .list(&ListParams::default().fields(&format!("involvedObject.name={name},reason=Pulling")))
        .await?;
    Ok(list
        .items
        .iter()
        .map(|e| {
            e.count
                .or(e.series.as_ref().and_then(|s| s.count))
                .unwrap_or(1)
                .max(1)
        })
        .sum())
}

async fn delete_namespace(client: &Client, ns: &str) {
    let api = Api::<k8s_openapi::api::core::v1::Namespace>::all(client.clone());
    let _ = api.delete(ns, &DeleteParams::default()).await;
}

// === the tests ===

/// The race of issue #14, end to end: the namespace and the Deployment arrive together, before
/// regcreds (installed afterwards with the real chart and `healPods.enabled=true`) has written
/// anything; the first pods get no reference and fail to pull. Once regcreds lists its Secret on the
/// `default` ServiceAccount, it recreates every stuck replica and each pulls and runs.
async fn pods_created_before_the_reference_run_soon_after_it_appears_with_healing(
    world: &NodeWorld,
) -> Result<()> {
    let client = world.client();
    let test = "race";
    let ns = format!("heal-race-{}", suffix());
    let replicas = 3;
    kubectl_apply(
        world,
        &namespace_and_deployment(&ns, test, "web", world.workload_image(), replicas),
    )?;
    let stuck = wait_stuck(world, &ns, "app=web", replicas as usize).await?;
    ensure!(
        stuck.iter().all(|p| pull_secrets(p).is_empty()),
        "created without a reference"
    );
    let old: BTreeSet<String> = stuck.iter().map(uid).collect();

    // regcreds arrives late, the way users install it, with healing on.
    let release = "heal";
    // NB: on a thread of its own: `helm install --wait` blocks, and this test's runtime must keep
    // watching meanwhile to time the healing.
    let selector = format!("namespaceSelector={SELECTOR_LABEL}={test}");
    let install = std::thread::spawn(move || -> Result<node::Installed> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        runtime.block_on(async {
            let world = NodeWorld::shared().await;
            world
                .helm_install_regcreds(
                    release,
                    "regcreds-heal",
                    &["healPods.enabled=true", "replicaCount=2", &selector],
                )
                .await
        })
    });
    let referenced = wait_reference(&client, &ns).await?;
    let (running, all_running) =
        wait_replaced_and_running(world, &ns, "app=web", replicas as usize, &old, HEAL_BOUND).await?;
    let healing_time = all_running.duration_since(referenced);
    eprintln!(
        "MEASURED heal: reference on ServiceAccount default → {replicas}/{replicas} new replicas Running in {:.2} s",
        healing_time.as_secs_f64()
    );
    let installed = tokio::task::spawn_blocking(move || install.join())
        .await?
        .map_err(|_| anyhow::anyhow!("the helm install thread panicked"))??;
    for pod in &running {
        ensure!(
            pull_secrets(pod).contains(&SECRET.to_string()),
            "replacement {} got the reference: {:?}",
            name(pod),
            pull_secrets(pod)
        );
    }

    // Told: an Event on every deleted pod and on their ReplicaSet; the metric; the log line.
    let told = events(&client, &ns, "RecreatedForPullSecret").await?;
    let on_pods: BTreeSet<&str> = told
        .iter()
        .filter(|e| e.0 == "Pod")
        .map(|e| e.1.as_str())
        .collect();
    let stuck_names: BTreeSet<String> = stuck.iter().map(name).collect();
    ensure!(
        on_pods == stuck_names.iter().map(String::as_str).collect(),
        "an Event on each healed pod: {told:?}"
    );
    ensure!(
        told.iter().any(|e| e.0 == "ReplicaSet" && e.2.contains(SECRET)),
        "an Event on the ReplicaSet naming the Secret: {told:?}"
    );
    // Two replicas: only the Lease holder heals; the standby watches nothing and deletes nothing.
    // NB: the Lease is named after the Deployment: `<release>-regcreds`.
    let leader = world
        .lease_holder(&installed.namespace, &format!("{release}-regcreds"))
        .await?
        .context("a Lease holder")?;
    let replicas_of_regcreds = pods(&client, &installed.namespace, &installed.selector).await?;
    ensure!(replicas_of_regcreds.len() == 2, "two regcreds replicas");
    let mut all_logs = String::new();
    for regcreds_pod in &replicas_of_regcreds {
        all_logs += &format!(
            "--- {} ---\n{}\n",
            name(regcreds_pod),
            node::run(
                world
                    .kubectl()
                    .args(["logs", "-n", &installed.namespace, &name(regcreds_pod)])
            )?
        );
    }
    for regcreds_pod in &replicas_of_regcreds {
        let is_leader = name(regcreds_pod) == leader;
        let (_, metrics) = world.http_get_pod(regcreds_pod, 8080, "/metrics").await?;
        let healed = metric(
            &metrics,
            "regcreds_pods_healed_total",
            &[("reason", "missing_reference")],
        );
        let expected = if is_leader { f64::from(replicas) } else { 0.0 };
        ensure!(
            healed == expected
                && metric(&metrics, "regcreds_pod_healing_enabled", &[]) == f64::from(u8::from(is_leader)),
            "{} (leader: {is_leader}) healed {healed}:\n{}",
            name(regcreds_pod),
            metrics
                .lines()
                .filter(|l| l.contains("heal"))
                .collect::<Vec<_>>()
                .join("\n")
        );
        let logs =
            node::run(
                world
                    .kubectl()
                    .args(["logs", "-n", &installed.namespace, &name(regcreds_pod)]),
            )?;
        ensure!(!logs.contains(&world.pull_password()), "no credential in the log");
        if !is_leader {
            ensure!(
                !logs.contains("deleted pod"),
                "the standby deleted nothing:\n{logs}"
            );
            continue;
        }
        for pod in &stuck_names {
            ensure!(
                logs.contains(&format!("deleted pod {ns}/{pod} of ReplicaSet/web-")),
                "a log line names {ns}/{pod} and its ReplicaSet:\n{logs}"
            );
        }
    }
    world.uninstall_regcreds(&installed).await?;
    delete_namespace(&client, &ns).await;
    Ok(())
}

/// The negative: the same race without healing. The reference appears, kubelet retries, and the pods
/// still fail — admission copied the ServiceAccount's list only when they were created.
async fn without_healing_the_same_pods_stay_in_image_pull_backoff(world: &NodeWorld) -> Result<()> {
    const WINDOW: Duration = Duration::from_secs(45);
    let client = world.client();
    let test = "noheal";
    let ns = format!("heal-off-{}", suffix());
    kubectl_apply(
        world,
        &namespace_and_deployment(&ns, test, "web", world.workload_image(), 2),
    )?;
    let stuck = wait_stuck(world, &ns, "app=web", 2).await?;
    let old: BTreeSet<String> = stuck.iter().map(uid).collect();
    let regcreds = Regcreds::start(world, test, &world.pull_password(), &[])?;
    wait_reference(&client, &ns).await?;
    let attempts_before = pull_attempts(&client, &ns, &name(&stuck[0])).await?;
    let until = Instant::now() + WINDOW;
    while Instant::now() < until {
        let now = pods(&client, &ns, "app=web").await?;
        let uids: BTreeSet<String> = now.iter().map(uid).collect();
        ensure!(uids == old, "no pod was replaced: {old:?} → {uids:?}");
        ensure!(
            now.iter().all(|p| !is_running_and_ready(p)),
            "no pod runs without its reference:\n{}",
            world.describe_pods(&ns, "app=web").await
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let attempts_after = pull_attempts(&client, &ns, &name(&stuck[0])).await?;
    eprintln!(
        "MEASURED no-heal: {} s after the reference appeared, 0/2 Running; kubelet pulled {attempts_before} times before, {attempts_after} times after",
        WINDOW.as_secs()
    );
    ensure!(
        attempts_after > attempts_before,
        "kubelet retried within {WINDOW:?} ({attempts_before} → {attempts_after} pulls) and still failed"
    );
    let still = pods(&client, &ns, "app=web").await?;
    ensure!(still.iter().all(failing_to_pull), "still failing to pull");
    ensure!(
        metric(&regcreds.metrics().await, "regcreds_pod_healing_enabled", &[]) == 0.0,
        "healing is off by default"
    );
    drop(regcreds);
    delete_namespace(&client, &ns).await;
    Ok(())
}

/// Healing on, but nothing it may touch: a bare pod stuck pulling (told once in the log), a pod whose
/// command does not exist, and a pod waiting for a missing ConfigMap — all three lack the reference.
/// A Deployment stuck pulling in the same namespace is healed meanwhile, so healing was active there.
async fn a_bare_pod_and_pods_failing_for_other_reasons_are_left_alone(world: &NodeWorld) -> Result<()> {
    let client = world.client();
    let test = "alone";
    let ns = format!("heal-alone-{}", suffix());
    let image = world.workload_image();
    let public_image = format!(
        "{}/regcreds-test/pause:v{}",
        world.public_registry().host(),
        regcreds_testkit::versions::K8S_VERSION
    );
    let missing_config = r#"          env:
            - name: FROM_CONFIG
              valueFrom:
                configMapKeyRef:
                  name: does-not-exist
                  key: value
"#;
    let yaml = [
        namespace_and_deployment(&ns, test, "healme", image, 1),
        format!(
            r#"apiVersion: v1
kind: Pod
metadata:
  name: bare
  namespace: {ns}
  labels:
    app: bare
spec:
  terminationGracePeriodSeconds: 1
  containers:
    - name: main
      image: {image}
      command: [sleep, "3600"]
"#
        ),
        deployment_yaml(&ns, "badcommand", &public_image, 1, "[/no-such-command]", ""),
        deployment_yaml(&ns, "noconfig", &public_image, 1, "[/pause]", missing_config),
    ]
    .join("---\n");
    kubectl_apply(world, &yaml)?;
    let bare = wait_stuck(world, &ns, "app=bare", 1).await?;
    let healme = wait_stuck(world, &ns, "app=healme", 1).await?;
    world
        .wait_pod_waiting(&ns, "app=noconfig", "CreateContainerConfigError")
        .await?;
    let badcommand_failed = async {
        let deadline = Instant::now() + HEAL_BOUND;
        loop {
            let pods = pods(&client, &ns, "app=badcommand").await?;
            let failed = pods.iter().any(|p| {
                p.status
                    .iter()
                    .flat_map(|s| s.container_statuses.iter().flatten())
                    .any(|c| {
                        c.last_state
                            .as_ref()
                            .and_then(|s| s.terminated.as_ref())
                            .is_some()
                            || c.restart_count > 0
                    })
            });
            if failed {
                return Ok::<_, anyhow::Error>(pods);
            }
            if Instant::now() > deadline {
                bail!(
                    "badcommand never failed:\n{}",
                    world.describe_pods(&ns, "app=badcommand").await
                );
            }
            tokio::time::sleep(POLL).await;
        }
    };
    let badcommand = badcommand_failed.await?;
    let noconfig = pods(&client, &ns, "app=noconfig").await?;
    let before: BTreeMap<String, String> = bare
        .iter()
        .chain(&badcommand)
        .chain(&noconfig)
        .map(|p| (name(p), uid(p)))
        .collect();

    let regcreds = Regcreds::start(
        world,
        test,
        &world.pull_password(),
        &[("REGCREDS_HEAL_PODS", "true")],
    )?;
    wait_reference(&client, &ns).await?;
    let old: BTreeSet<String> = healme.iter().map(uid).collect();
    wait_replaced_and_running(world, &ns, "app=healme", 1, &old, HEAL_BOUND).await?;
    // Give regcreds time to act on the others too, if it were going to.
    tokio::time::sleep(Duration::from_secs(10)).await;
    let mut after = BTreeMap::new();
    for selector in ["app=bare", "app=badcommand", "app=noconfig"] {
        for pod in pods(&client, &ns, selector).await? {
            ensure!(
                pod.metadata.deletion_timestamp.is_none(),
                "{} is not being deleted",
                name(&pod)
            );
            after.insert(name(&pod), uid(&pod));
        }
    }
    ensure!(before == after, "left alone: {before:?} → {after:?}");
    ensure!(
        failing_to_pull(&pods(&client, &ns, "app=bare").await?[0]),
        "the bare pod still fails to pull (only its owner could fix it)"
    );
    let logs = regcreds.logs();
    let told = format!("pod {ns}/bare cannot pull");
    ensure!(
        logs.matches(&told).count() == 1,
        "said once about the bare pod:\n{logs}"
    );
    ensure!(logs.contains("no controller owns it"), "{logs}");
    let metrics = regcreds.metrics().await;
    ensure!(
        metric(&metrics, "regcreds_pods_healed_total", &[]) == 1.0,
        "only healme:\n{metrics}"
    );
    ensure!(
        metric(
            &metrics,
            "regcreds_pods_not_healable_total",
            &[("reason", "bare_pod")]
        ) == 1.0
    );
    drop(regcreds);
    delete_namespace(&client, &ns).await;
    Ok(())
}

/// 50 replicas stuck at once; with at most 5 at once and 2 per second in the namespace, the
/// deletions (seen by this test's own watch of the pods) never outrun the bucket, and all end up
/// replaced.
async fn the_rate_limit_holds_with_50_stuck_pods(world: &NodeWorld) -> Result<()> {
    const PODS: usize = 50;
    const BURST: f64 = 5.0;
    const RATE: f64 = 2.0;
    let client = world.client();
    let test = "fifty";
    let ns = format!("heal-fifty-{}", suffix());
    kubectl_apply(
        world,
        &namespace_and_deployment(&ns, test, "many", world.workload_image(), PODS as u32),
    )?;
    let stuck = wait_stuck(world, &ns, "app=many", PODS).await?;
    let old: BTreeSet<String> = stuck.iter().map(uid).collect();
    let regcreds = Regcreds::start(
        world,
        test,
        &world.pull_password(),
        &[
            ("REGCREDS_HEAL_PODS", "true"),
            ("REGCREDS_HEAL_NAMESPACE_BURST", "5"),
            ("REGCREDS_HEAL_NAMESPACE_RATE", "2"),
        ],
    )?;
    // When each original pod was first seen terminating or gone.
    let mut deleted_at: BTreeMap<String, Instant> = BTreeMap::new();
    let deadline = Instant::now() + Duration::from_secs(180);
    while deleted_at.len() < PODS {
        let now = Instant::now();
        let present: BTreeMap<String, bool> = pods(&client, &ns, "app=many")
            .await?
            .iter()
            .map(|p| (uid(p), p.metadata.deletion_timestamp.is_some()))
            .collect();
        for uid in &old {
            if present.get(uid).is_none_or(|terminating| *terminating) {
                deleted_at.entry(uid.clone()).or_insert(now);
            }
        }
        if now > deadline {
            bail!(
                "only {} of {PODS} stuck pods deleted after 180 s",
                deleted_at.len()
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut times: Vec<Instant> = deleted_at.values().copied().collect();
    times.sort();
    let first = times[0];
    // The observation loop lags by one poll (plus a list call): one token of slack.
    for (i, at) in times.iter().enumerate() {
        let elapsed = at.duration_since(first).as_secs_f64();
        let allowed = BURST + RATE * elapsed + 1.0;
        ensure!(
            (i + 1) as f64 <= allowed,
            "{} deletions after {elapsed:.2} s exceed burst {BURST} + {RATE}/s",
            i + 1
        );
    }
    let span = times[PODS - 1].duration_since(first).as_secs_f64();
    eprintln!(
        "MEASURED rate limit: {PODS} deletions over {span:.1} s (bucket: burst {BURST}, {RATE}/s → at least {:.1} s)",
        (PODS as f64 - BURST) / RATE
    );
    ensure!(
        span >= (PODS as f64 - BURST - 1.0) / RATE,
        "the deletions were spread by the rate limit ({span:.1} s)"
    );
    let metrics = regcreds.metrics().await;
    ensure!(
        metric(&metrics, "regcreds_pod_heal_rate_limited_total", &[]) > 0.0,
        "{metrics}"
    );
    ensure!(
        metric(
            &metrics,
            "regcreds_pods_healed_total",
            &[("reason", "missing_reference")]
        ) == PODS as f64,
        "each pod deleted once"
    );
    wait_replaced_and_running(world, &ns, "app=many", PODS, &old, Duration::from_secs(240)).await?;
    drop(regcreds);
    delete_namespace(&client, &ns).await;
    Ok(())
}

/// A credential fixed in place (the mounted dockerconfigjson corrected, as after a rotation that went
/// wrong): pods that list the Secret and wait in kubelet's pull back-off are recreated as soon as the
/// new content is in their namespace, instead of at kubelet's next retry (up to 5 minutes away).
async fn a_fixed_credential_is_retried_at_once_instead_of_after_kubelet_s_back_off(
    world: &NodeWorld,
) -> Result<()> {
    let fixed = credential_fix(world, "fixed", true).await?;
    eprintln!(
        "MEASURED credential fix, healing: Secret updated in the namespace → 2/2 recreated pods Running in {:.2} s",
        fixed.recovery.as_secs_f64()
    );
    ensure!(fixed.replaced, "the pods were recreated, not retried by kubelet");
    let told = events(
        &world.client(),
        &fixed.namespace,
        "RecreatedAfterCredentialChange",
    )
    .await?;
    ensure!(told.iter().filter(|e| e.0 == "Pod").count() == 2, "{told:?}");
    ensure!(
        metric(
            &fixed.metrics,
            "regcreds_pods_healed_total",
            &[("reason", "credential_changed")]
        ) == 2.0,
        "{}",
        fixed.metrics
    );
    delete_namespace(&world.client(), &fixed.namespace).await;
    Ok(())
}

/// The same with `REGCREDS_HEAL_AFTER_CREDENTIAL_CHANGE=false`: regcreds leaves the pods alone and
/// kubelet recovers the very same pods at its next retry, later.
async fn with_credential_change_healing_off_kubelet_recovers_the_same_pods_after_its_back_off(
    world: &NodeWorld,
) -> Result<()> {
    let fixed = credential_fix(world, "fixedoff", false).await?;
    eprintln!(
        "MEASURED credential fix, kubelet alone: Secret updated in the namespace → the same 2 pods Running in {:.2} s",
        fixed.recovery.as_secs_f64()
    );
    ensure!(!fixed.replaced, "no pod was deleted");
    ensure!(
        metric(&fixed.metrics, "regcreds_pods_healed_total", &[]) == 0.0,
        "{}",
        fixed.metrics
    );
    delete_namespace(&world.client(), &fixed.namespace).await;
    Ok(())
}

/// What [`credential_fix`] saw.
struct Fixed {
    namespace: String,
    /// From the corrected Secret appearing in the namespace to both pods Running.
    recovery: Duration,
    /// Whether the running pods are replacements (else the original pods recovered).
    replaced: bool,
    /// regcreds' metrics at the end.
    metrics: String,
}

/// regcreds with the dockerconfigjson provider fed a wrong password; a Deployment of 2 whose pods list
/// the Secret fails to pull until kubelet has retried 3 times; then the file is corrected.
async fn credential_fix(world: &NodeWorld, test: &str, heal_after_change: bool) -> Result<Fixed> {
    let client = world.client();
    let ns = format!("heal-{test}-{}", suffix());
    let dir = tempfile::tempdir()?;
    let source = dir.path().join(".dockerconfigjson");
    let write_source = |password: &str| -> Result<()> {
        use base64::{Engine, engine::general_purpose::STANDARD};
        let auth = STANDARD.encode(format!("{PULL_USER}:{password}"));
        let config = serde_json::json!({"auths": {world.registry_host(): {
            "username": PULL_USER, "password": password, "auth": auth}}});
        std::fs::write(&source, serde_json::to_vec(&config)?)?;
        Ok(())
    };
    write_source("a-wrong-password")?;
    let regcreds = Regcreds::start(
        world,
        test,
        "unused",
        &[
            ("REGCREDS_HEAL_PODS", "true"),
            (
                "REGCREDS_HEAL_AFTER_CREDENTIAL_CHANGE",
                if heal_after_change { "true" } else { "false" },
            ),
            ("REGCREDS_DOCKERCONFIGJSON_PATH", path_str(&source)?),
            ("REGCREDS_DOCKERCONFIGJSON_SECRET_NAME", SECRET),
            // Re-read the file every second (the default is every 10 s).
            ("REGCREDS_DOCKERCONFIGJSON_SCHEDULE", "* * * * * *"),
            // Only the dockerconfigjson provider: blank counts as unset.
            ("REGCREDS_STATIC_SERVER", ""),
            ("REGCREDS_STATIC_USER", ""),
            ("REGCREDS_STATIC_PASSWORD", ""),
        ],
    )?;
    // The namespace first, then the workload: its pods list the (wrong) Secret from the start.
    kubectl_apply(
        world,
        &format!(
            "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {ns}\n  labels:\n    {SELECTOR_LABEL}: {test}\n"
        ),
    )?;
    wait_reference(&client, &ns).await?;
    kubectl_apply(
        world,
        &deployment_yaml(&ns, "web", world.workload_image(), 2, "[sleep, \"3600\"]", ""),
    )?;
    let stuck = wait_stuck(world, &ns, "app=web", 2).await?;
    ensure!(
        stuck.iter().all(|p| pull_secrets(p) == [SECRET]),
        "the pods list the Secret; it is its content that is wrong"
    );
    // Let kubelet's back-off grow past its first steps, so that its next retry is well away.
    let first = name(&stuck[0]);
    let deadline = Instant::now() + HEAL_BOUND;
    while pull_attempts(&client, &ns, &first).await? < 3 {
        ensure!(Instant::now() < deadline, "kubelet did not retry 3 times");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let old: BTreeSet<String> = stuck.iter().map(uid).collect();
    let secrets = Api::<Secret>::namespaced(client.clone(), &ns);
    let before = secrets.get(SECRET).await?.metadata.resource_version;

    write_source(&world.pull_password())?;
    let deadline = Instant::now() + HEAL_BOUND;
    let updated = loop {
        if secrets.get(SECRET).await?.metadata.resource_version != before {
            break Instant::now();
        }
        ensure!(
            Instant::now() < deadline,
            "the corrected credential never reached {ns}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    // kubelet's back-off is capped at 5 minutes; after 3 failures its next retry is at most ~80 s away.
    let deadline = Instant::now() + Duration::from_secs(330);
    let (running, at) = loop {
        let now = pods(&client, &ns, "app=web").await?;
        let running: Vec<Pod> = now
            .iter()
            .filter(|p| p.metadata.deletion_timestamp.is_none() && is_running_and_ready(p))
            .cloned()
            .collect();
        if now.len() == 2 && running.len() == 2 {
            break (running, Instant::now());
        }
        if Instant::now() > deadline {
            bail!(
                "{ns}: 2 pods not Running:\n{}",
                world.describe_pods(&ns, "app=web").await
            );
        }
        tokio::time::sleep(POLL).await;
    };
    let replaced = running.iter().all(|p| !old.contains(&uid(p)));
    ensure!(
        replaced || running.iter().all(|p| old.contains(&uid(p))),
        "either both recreated or both recovered in place"
    );
    ensure!(
        !regcreds.logs().contains(&world.pull_password()),
        "no credential in the log"
    );
    Ok(Fixed {
        namespace: ns,
        recovery: at.duration_since(updated),
        replaced,
        metrics: regcreds.metrics().await,
    })
}

fn path_str(path: &Path) -> Result<&str> {
    path.to_str().context("a UTF-8 temp path")
}
