//! `cargo xtask demo`: regcreds end to end on this machine, step by step, then everything stops.
//!
//! ```text
//!  0  setup-test-deps.sh (only if a tool is missing) · controlplane build (cached) · cargo build -p regcreds
//!     then the demo runs itself again inside a node world (own network, mount and PID namespaces)
//!  1  NodeWorld::start()             control plane, kube-scheduler, containerd, kubelet, kube-proxy,
//!                                    a private registry (TLS, htpasswd user `puller`, demo/busybox:v1)
//!  2  regcreds run                   static provider → that registry (child process, JSON log file)
//!  3  create namespace demo     ──►  regcreds writes Secret dpr-secret        (read back via the API)
//!  4                            ──►  default ServiceAccount.imagePullSecrets; a Pod inherits it, and
//!                                    kubelet pulls the private image with it: Running
//!  5  regcreds check (right and wrong password) · /metrics regcreds_registry_check
//!     the world ends: every process, mount and address goes with it (--keep: wait for Ctrl-C first)
//! ```
//!
//! The registry's password is random per run and printed masked.

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    process::{Child, ChildStdin, Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::{Context, Result, bail};
use k8s_openapi::api::core::v1::{Container, Namespace, Pod, PodSpec, Secret, ServiceAccount};
use kube::{Api, Client, api::PostParams};
use regcreds_testkit::{
    admin_get,
    binaries::{Binaries, NodeBinaries},
    free_ports,
    node::{self, NODE_NAME, NodeWorld, PULL_USER},
    regcreds_binary,
};
use serde_json::{Value, json};

use crate::shell::{self, cargo, human};

/// Namespace the demo creates.
const NAMESPACE: &str = "demo";
/// The static provider's default Secret name.
const SECRET: &str = "dpr-secret";
/// How long any one thing may take to appear.
const TIMEOUT: Duration = Duration::from_secs(60);
/// Per process, between SIGTERM and SIGKILL on shutdown.
const STOP_GRACE: Duration = Duration::from_secs(5);
const STEPS: u32 = 5;

/// Options of `demo`.
#[derive(clap::Args)]
pub struct Args {
    /// Leave everything running and print how to reach it; Ctrl-C stops.
    #[arg(long)]
    keep: bool,
}

/// Prepares (cached), runs every step inside a node world, which ends with everything in it.
pub fn run(args: Args) -> Result<()> {
    if node::inside_world() {
        let runtime = tokio::runtime::Runtime::new()?;
        return runtime.block_on(demo(regcreds_binary(), args.keep));
    }
    let started = Instant::now();
    println!(
        "regcreds demo: a Kubernetes cluster with a real node, a private registry, and regcreds connecting them."
    );
    prepare()?;
    let program = std::env::current_exe()?;
    let status = node::run_in_world(&program, &std::env::args_os().skip(1).collect::<Vec<_>>())?;
    if !status.success() {
        bail!("the demo failed ({status})");
    }
    println!("\ndemo finished in {}", human(started.elapsed()));
    Ok(())
}

/// Step 0: tools, control-plane and node binaries, the regcreds binary, each only if missing or stale.
fn prepare() -> Result<()> {
    step(0, "Preparing (cached after the first run)", "");
    let tools_missing = ["skopeo", "docker-registry", "runc", "busybox"]
        .iter()
        .any(|tool| Command::new(tool).arg("--help").output().is_err());
    if tools_missing {
        let script = shell::repo_root().join("xtask/scripts/setup-test-deps.sh");
        shell::run(Command::new("bash").arg(script))?;
    }
    if Binaries::locate().is_err() || NodeBinaries::locate().is_err() {
        crate::controlplane_build::newest()?;
    }
    shell::run(cargo().args(["build", "-p", "regcreds", "--bin", "regcreds"]))
}

async fn demo(binary: PathBuf, keep: bool) -> Result<()> {
    step(
        1,
        "Starting a Kubernetes cluster with one real node, and a private registry",
        "control plane · kube-scheduler · containerd + runc + CNI · kubelet · kube-proxy, in namespaces of their own",
    );
    let took = Instant::now();
    let world = NodeWorld::start().await?;
    println!(
        "      node {NODE_NAME} Ready in {} (apiserver {})",
        human(took.elapsed()),
        world.control_plane().server_url()
    );
    println!(
        "      registry https://{} (user {PULL_USER}, password {}), private image {}",
        world.registry_host(),
        mask(&world.pull_password()),
        world.workload_image()
    );
    let mut demo = Demo::start(world, binary).await?;
    let shown = demo.show().await;
    if shown.is_ok() && keep {
        demo.print_how_to_reach();
        demo.serve_until_ctrl_c().await?;
    }
    demo.stop();
    shown
}

/// Everything the demo started.
struct Demo {
    // Field order is drop order: regcreds before the world it talks to.
    regcreds: Supervised,
    world: NodeWorld,
    client: Client,
    binary: PathBuf,
    admin_port: u16,
}

impl Demo {
    /// Step 2: regcreds pointed at the world's registry.
    async fn start(world: NodeWorld, binary: PathBuf) -> Result<Self> {
        step(
            2,
            "Starting regcreds",
            "static provider: one registry, one user, one password; every namespace gets it",
        );
        let [admin_port] = free_ports()?;
        let env = regcreds_env(&world, &world.pull_password(), admin_port).await;
        println!("  $ {} {} run", masked_env(&env), binary.display());
        let log = world.dir().join("logs/regcreds.log");
        let regcreds = Supervised::spawn(&binary, &["run"], &env, &log)?;
        let took = Instant::now();
        poll("regcreds /readyz", || {
            admin_get(admin_port, "/readyz").filter(|(s, _)| *s == 200)
        })
        .await?;
        println!(
            "      ready (/readyz 200) after {}; log {}",
            human(took.elapsed()),
            regcreds.log.display()
        );
        let client = world.client();
        Ok(Self {
            regcreds,
            world,
            client,
            binary,
            admin_port,
        })
    }

    /// Steps 3 to 5.
    async fn show(&mut self) -> Result<()> {
        self.create_namespace_and_wait_for_the_secret().await?;
        self.show_service_account_and_running_pod().await?;
        self.show_check_and_metrics().await
    }

    async fn create_namespace_and_wait_for_the_secret(&self) -> Result<Secret> {
        step(
            3,
            "Creating a namespace",
            "regcreds watches namespaces and writes its Secret into each new one",
        );
        println!("  $ kubectl create namespace {NAMESPACE}");
        let mut namespace = Namespace::default();
        namespace.metadata.name = Some(NAMESPACE.into());
        let took = Instant::now();
        Api::<Namespace>::all(self.client.clone())
            .create(&PostParams::default(), &namespace)
            .await
            .context("creating the namespace")?;
        let secrets = Api::<Secret>::namespaced(self.client.clone(), NAMESPACE);
        let secret = poll_api("the Secret", || secrets.get_opt(SECRET)).await?;
        println!(
            "      Secret {NAMESPACE}/{SECRET} appeared {} later",
            human(took.elapsed())
        );
        println!(
            "  $ kubectl get secret {SECRET} -n {NAMESPACE} -o yaml      # .dockerconfigjson decoded, password masked"
        );
        print_block(&to_yaml(&secret_view(&secret)?));
        for line in self.regcreds.log_lines(&[NAMESPACE, "minted"]) {
            println!("      regcreds log: {line}");
        }
        Ok(secret)
    }

    async fn show_service_account_and_running_pod(&self) -> Result<()> {
        step(
            4,
            "The default ServiceAccount refers to it, so a Pod pulls the private image",
            "nothing in the Pod mentions credentials: admission copies them from the ServiceAccount",
        );
        let accounts = Api::<ServiceAccount>::namespaced(self.client.clone(), NAMESPACE);
        let sa = poll_api("the patched default ServiceAccount", || async {
            let sa = accounts.get_opt("default").await?;
            Ok(sa.filter(|sa| sa.image_pull_secrets.iter().flatten().any(|r| r.name == SECRET)))
        })
        .await?;
        println!("  $ kubectl get serviceaccount default -n {NAMESPACE} -o yaml");
        print_block(&to_yaml(&json!({
            "metadata": { "name": sa.metadata.name, "namespace": sa.metadata.namespace },
            "imagePullSecrets": sa.image_pull_secrets,
        })));
        let image = self.world.workload_image().to_string();
        println!("  $ kubectl run hello -n {NAMESPACE} --image={image} -- sleep 3600");
        let took = Instant::now();
        self.create_pod(&image).await?;
        let pods = Api::<Pod>::namespaced(self.client.clone(), NAMESPACE);
        let pod = poll_api("the Pod to run", || async {
            let pod = pods.get_opt("hello").await?;
            Ok(pod.filter(|p| p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running")))
        })
        .await?;
        let status = pod.status.clone().unwrap_or_default();
        print_block(&to_yaml(&json!({
            "spec": { "nodeName": pod.spec.as_ref().and_then(|s| s.node_name.clone()),
                      "imagePullSecrets": pod.spec.as_ref().and_then(|s| s.image_pull_secrets.clone()) },
            "status": { "phase": status.phase, "podIP": status.pod_ip },
        })));
        let events = self.world.pod_events(NAMESPACE, "hello").await?;
        if let Some(pulled) = events.iter().find(|e| e.starts_with("Pulled:")) {
            println!("      event {pulled}");
        }
        println!(
            "      Running {} after it was created: kubelet pulled the private image with {SECRET}",
            human(took.elapsed())
        );
        Ok(())
    }

    async fn create_pod(&self, image: &str) -> Result<Pod> {
        let mut pod = Pod::default();
        pod.metadata.name = Some("hello".into());
        pod.spec = Some(PodSpec {
            termination_grace_period_seconds: Some(1),
            containers: vec![Container {
                name: "hello".into(),
                image: Some(image.into()),
                command: Some(vec!["sleep".into(), "3600".into()]),
                ..Container::default()
            }],
            ..PodSpec::default()
        });
        Api::<Pod>::namespaced(self.client.clone(), NAMESPACE)
            .create(&PostParams::default(), &pod)
            .await
            .context("creating the Pod")
    }

    /// Step 5: `regcreds check` with the right and a wrong password, and the controller's own metric.
    async fn show_check_and_metrics(&self) -> Result<()> {
        step(
            5,
            "Proving the credential: regcreds check",
            "GET /v2/, answer the auth challenge, HEAD the probe image's manifest",
        );
        let env = regcreds_env(&self.world, &self.world.pull_password(), 0).await;
        self.run_check(&env, 0)?;
        println!("      and with a wrong password (exit code 1):");
        let wrong = regcreds_env(&self.world, "not-the-password", 0).await;
        self.run_check(&wrong, 1)?;
        println!("      the controller runs the same check after each mint and hourly:");
        println!(
            "  $ curl -s http://127.0.0.1:{}/metrics | grep '^regcreds_registry_check{{'",
            self.admin_port
        );
        let lines = poll("the regcreds_registry_check metric", || {
            let (_, body) = admin_get(self.admin_port, "/metrics")?;
            let mut lines: Vec<String> = body
                .lines()
                .filter(|l| l.starts_with("regcreds_registry_check{"))
                .map(String::from)
                .collect();
            // Families are hash maps: sort so the output reads the same every run.
            lines.sort();
            (!lines.is_empty()).then_some(lines)
        })
        .await?;
        print_block(&lines.join("\n"));
        Ok(())
    }

    fn run_check(&self, env: &[(&str, String)], expected: i32) -> Result<()> {
        println!("  $ regcreds check");
        let output = Command::new(&self.binary)
            .arg("check")
            .env_clear()
            .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
            .output()
            .context("running regcreds check")?;
        print_block(String::from_utf8_lossy(&output.stdout).trim_end());
        if output.status.code() != Some(expected) {
            bail!(
                "regcreds check exited {} (expected {expected}): {}",
                output.status,
                String::from_utf8_lossy(&output.stderr)
            );
        }
        Ok(())
    }

    fn print_how_to_reach(&self) {
        let kubeconfig = self.world.kubeconfig().display();
        println!("\nEverything keeps running inside the node world's namespaces. From another terminal:");
        println!("  sudo nsenter --target $(pgrep -nf regcreds-node-init) --net --mount --pid \\");
        println!(
            "    {} --kubeconfig {kubeconfig} get pods -A -o wide",
            regcreds_testkit::binaries::kubectl().display()
        );
        println!(
            "  metrics (inside): curl -s http://127.0.0.1:{}/metrics",
            self.admin_port
        );
        println!("  regcreds log: {}", self.regcreds.log.display());
        println!("\nCtrl-C stops everything and removes the temporary files.");
    }

    /// `--keep`: waits for Ctrl-C; fails if regcreds or a node process dies meanwhile.
    async fn serve_until_ctrl_c(&mut self) -> Result<()> {
        let ctrl_c = tokio::signal::ctrl_c();
        tokio::pin!(ctrl_c);
        loop {
            tokio::select! {
                signal = &mut ctrl_c => return signal.context("waiting for Ctrl-C"),
                () = tokio::time::sleep(Duration::from_secs(1)) => {
                    self.world.check_running()?;
                    if self.regcreds.exited() {
                        bail!("regcreds exited; see {}", self.regcreds.log.display());
                    }
                }
            }
        }
    }

    fn stop(self) {
        println!("\nstopping regcreds and the node world ...");
        let Self { regcreds, world, .. } = self;
        drop(regcreds);
        world.stop_node();
        println!("stopped; the world's namespaces and temporary files go with it");
    }
}

/// regcreds' whole environment: nothing from the caller's shell can enable another provider.
async fn regcreds_env(world: &NodeWorld, password: &str, admin_port: u16) -> Vec<(&'static str, String)> {
    let registry = world.registry().await;
    vec![
        ("KUBECONFIG", world.kubeconfig().display().to_string()),
        ("REGCREDS_STATIC_SERVER", world.registry_host().to_string()),
        ("REGCREDS_STATIC_USER", PULL_USER.to_string()),
        ("REGCREDS_STATIC_PASSWORD", password.to_string()),
        // One replica, so no Lease (and no namespace for it) is needed.
        ("REGCREDS_LEADER_ELECTION", "false".to_string()),
        ("REGCREDS_ADMIN_ADDR", format!("127.0.0.1:{admin_port}")),
        (
            "REGCREDS_CHECK_CA_FILE",
            registry.cert_dir().join("ca.crt").display().to_string(),
        ),
        ("REGCREDS_CHECK_IMAGES", world.workload_image().to_string()),
        ("REGCREDS_LOG_FORMAT", "json".to_string()),
    ]
}

fn masked_env(env: &[(&str, String)]) -> String {
    env.iter()
        .filter(|(k, _)| k.starts_with("REGCREDS_STATIC") || *k == "REGCREDS_CHECK_IMAGES")
        .map(|(k, v)| {
            if k.ends_with("PASSWORD") {
                format!("{k}={}", mask(v))
            } else {
                format!("{k}={v}")
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
        + " ..."
}

/// The Secret as `kubectl get -o yaml` shows it, minus server bookkeeping, with the
/// dockerconfigjson decoded and its passwords masked.
fn secret_view(secret: &Secret) -> Result<Value> {
    let mut config: Value =
        serde_json::from_slice(&dockerconfigjson(secret)?).context("parsing .dockerconfigjson")?;
    for entry in config["auths"]
        .as_object_mut()
        .into_iter()
        .flat_map(|a| a.values_mut())
    {
        for field in ["password", "auth"] {
            if let Some(value) = entry.get_mut(field) {
                *value = mask(value.as_str().unwrap_or_default()).into();
            }
        }
    }
    let meta = &secret.metadata;
    Ok(json!({
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": { "name": meta.name, "namespace": meta.namespace, "labels": meta.labels, "annotations": meta.annotations },
        "type": secret.type_,
        "data": { ".dockerconfigjson (decoded)": config },
    }))
}

fn dockerconfigjson(secret: &Secret) -> Result<Vec<u8>> {
    let data = secret.data.as_ref().and_then(|d| d.get(".dockerconfigjson"));
    Ok(data.context("the Secret has no .dockerconfigjson")?.0.clone())
}

/// `ab******` (a hint which value it is, never enough to use it).
fn mask(secret: &str) -> String {
    let shown: String = secret.chars().take(2).collect();
    format!("{shown}******")
}

// === output ===

/// `[n/7] title` and a one-line explanation.
fn step(n: u32, title: &str, why: &str) {
    println!("\n[{n}/{STEPS}] {title}");
    if !why.is_empty() {
        println!("      {why}");
    }
}

fn print_block(text: &str) {
    for line in text.lines() {
        println!("      {line}");
    }
}

/// A small YAML rendering of JSON (maps, lists, scalars), enough to read objects like kubectl shows them.
fn to_yaml(value: &Value) -> String {
    let mut out = String::new();
    write_yaml(value, 0, &mut out);
    out
}

fn write_yaml(value: &Value, indent: usize, out: &mut String) {
    let pad = " ".repeat(indent);
    match value {
        Value::Object(map) => {
            for (key, value) in map.iter().filter(|(_, v)| !v.is_null()) {
                match value {
                    Value::Object(m) if !m.is_empty() => {
                        out.push_str(&format!("{pad}{key}:\n"));
                        write_yaml(value, indent + 2, out);
                    }
                    Value::Array(a) if !a.is_empty() => {
                        out.push_str(&format!("{pad}{key}:\n"));
                        write_yaml(value, indent, out);
                    }
                    _ => out.push_str(&format!("{pad}{key}: {}\n", scalar(value))),
                }
            }
        }
        Value::Array(items) => {
            for item in items {
                let mut nested = String::new();
                write_yaml(item, indent + 2, &mut nested);
                let nested = nested.trim_start();
                out.push_str(&format!("{pad}- {nested}"));
                if !nested.ends_with('\n') {
                    out.push('\n');
                }
            }
        }
        scalar_value => out.push_str(&format!("{pad}{}\n", scalar(scalar_value))),
    }
}

fn scalar(value: &Value) -> String {
    match value {
        Value::String(s) if s.is_empty() || s.contains(": ") || s.starts_with(['{', '[', '*', '&', '!']) => {
            Value::String(s.clone()).to_string()
        }
        Value::String(s) => s.clone(),
        Value::Object(_) => "{}".into(),
        Value::Array(_) => "[]".into(),
        other => other.to_string(),
    }
}

// === processes and polling ===

/// A child under a tiny shell that stops it (SIGTERM) when its stdin closes: on [`Drop`], or when
/// xtask dies in any way, so a demo never leaves a regcreds behind. Its own process group keeps the
/// terminal's Ctrl-C away from it; the demo stops it in order instead.
struct Supervised {
    shell: Child,
    stdin: Option<ChildStdin>,
    log: PathBuf,
}

impl Supervised {
    const SCRIPT: &'static str = r#""$@" </dev/null & pid=$!
cat >/dev/null
kill -TERM "$pid" 2>/dev/null
wait "$pid""#;

    fn spawn(program: &Path, args: &[&str], env: &[(&str, String)], log: &Path) -> Result<Self> {
        use std::os::unix::process::CommandExt;
        let file = std::fs::File::create(log).with_context(|| format!("creating {}", log.display()))?;
        let mut shell = Command::new("sh")
            .arg("-c")
            .arg(Self::SCRIPT)
            .arg("regcreds-demo")
            .arg(program)
            .args(args)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
            .stdin(Stdio::piped())
            .stdout(file.try_clone()?)
            .stderr(file)
            .process_group(0)
            .spawn()
            .with_context(|| format!("starting {}", program.display()))?;
        let stdin = shell.stdin.take();
        Ok(Self {
            shell,
            stdin,
            log: log.to_path_buf(),
        })
    }

    fn exited(&mut self) -> bool {
        matches!(self.shell.try_wait(), Ok(Some(_)))
    }

    /// `level message` of JSON log lines mentioning any of `needles`.
    fn log_lines(&self, needles: &[&str]) -> Vec<String> {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        text.lines()
            .filter_map(|line| serde_json::from_str::<BTreeMap<String, Value>>(line).ok())
            .filter_map(|fields| {
                let message = fields.get("message")?.as_str()?.to_string();
                let level = fields.get("level")?.as_str()?.to_string();
                needles
                    .iter()
                    .any(|n| message.contains(n))
                    .then(|| format!("{level:<5} {message}"))
            })
            .collect()
    }
}

impl Drop for Supervised {
    fn drop(&mut self) {
        drop(self.stdin.take());
        let deadline = Instant::now() + STOP_GRACE * 2;
        while !self.exited() {
            if Instant::now() > deadline {
                let _ = self.shell.kill();
                let _ = self.shell.wait();
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// Polls `check` every 100 ms until it returns `Some`, for at most [`TIMEOUT`].
async fn poll<T>(what: &str, mut check: impl FnMut() -> Option<T>) -> Result<T> {
    let deadline = Instant::now() + TIMEOUT;
    loop {
        if let Some(value) = check() {
            return Ok(value);
        }
        if Instant::now() > deadline {
            bail!("timed out after {TIMEOUT:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Like [`poll`] for an API read that returns `Ok(None)` until the object is there.
async fn poll_api<T, F, Fut>(what: &str, mut get: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = kube::Result<Option<T>>>,
{
    let deadline = Instant::now() + TIMEOUT;
    loop {
        if let Some(value) = get().await.with_context(|| format!("reading {what}"))? {
            return Ok(value);
        }
        if Instant::now() > deadline {
            bail!("timed out after {TIMEOUT:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn yaml_shows_nested_maps_lists_and_skips_nulls() {
        let value = json!({
            "metadata": { "name": "dpr-secret", "labels": null },
            "imagePullSecrets": [{ "name": "dpr-secret" }],
            "auth": "",
        });
        assert_eq!(
            to_yaml(&value),
            "auth: \"\"\nimagePullSecrets:\n- name: dpr-secret\nmetadata:\n  name: dpr-secret\n"
        );
    }

    #[test]
    fn masks_keep_two_characters_at_most() {
        assert_eq!(mask("demo-0123456789abcdef"), "de******");
        assert_eq!(mask(""), "******");
    }
}
