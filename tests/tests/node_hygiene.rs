//! A node world leaves the host exactly as it found it: sysctls, mounts, cgroups, links, addresses,
//! routes, iptables rules, `/etc/hosts`, the fixed paths kubelet and containerd write, processes —
//! also when a test panics with pods running, and when the whole test run is SIGKILLed.
//!
//! Each test plays up to three roles of this same binary (the pattern of `rusty-fork`):
//! - on the host it captures the host's state, starts the other role(s), captures again, compares;
//! - `ROLE=launcher` (host side, SIGKILL scenario): the test run that gets killed, running the world;
//! - inside the world it starts a node, runs a pod through a private pull, prints [`PODS_RUNNING`],
//!   then panics (or waits to be killed).

use std::{
    ffi::OsString,
    io::{BufRead, BufReader},
    process::{Command, Stdio},
    sync::{Mutex, MutexGuard, PoisonError},
    time::{Duration, Instant},
};

use regcreds_testkit::{
    node::{self, NodeWorld, Workload, host_state::HostState},
    temp_namespace,
};

/// Printed inside the world once its pods run; the host side waits for it.
const PODS_RUNNING: &str = "HYGIENE: pods running on the node";
/// Which role a re-run of this binary plays on the host side.
const ROLE_ENV: &str = "REGCREDS_HYGIENE_ROLE";
/// Longest a world may take to start and run its pods on a loaded CI machine.
const WORLD_TIMEOUT: Duration = Duration::from_secs(300);

/// The host side of one test at a time: a second world would show up in the first one's "after".
fn host_to_myself() -> MutexGuard<'static, ()> {
    static HOST: Mutex<()> = Mutex::new(());
    HOST.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Inside a world: start the node, make it create everything a real workload creates (pod network
/// namespaces, veths, bridge, iptables rules, overlay mounts, cgroups, shims), then say so.
fn populate_the_world() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let world = NodeWorld::start().await.expect("the node world starts");
        let ns = temp_namespace(&world.client(), "hygiene").await;
        world
            .create_pull_secret(&ns, "regcred")
            .await
            .expect("pull secret");
        let mut workload = Workload::new(&ns, "app", world.workload_image());
        workload.replicas = 2;
        let mut deployment = workload.deployment();
        deployment
            .spec
            .template
            .spec
            .as_mut()
            .expect("pod spec")
            .image_pull_secrets = Some(vec![k8s_openapi::api::core::v1::LocalObjectReference {
            name: "regcred".into(),
        }]);
        kube::Api::namespaced(world.client(), &ns)
            .create(&Default::default(), &deployment)
            .await
            .expect("create the deployment");
        world
            .wait_pods_running(&ns, &workload.selector(), 2)
            .await
            .expect("pods run");
        println!("{PODS_RUNNING}");
        // Leak the world on purpose: nothing is stopped cleanly, as after a real panic.
        std::mem::forget(world);
    });
}

/// `--exact <this test> --nocapture`, so the re-run executes only this test and prints at once.
fn this_test(name: &str) -> Vec<OsString> {
    ["--exact", name, "--nocapture", "--test-threads=1"]
        .map(OsString::from)
        .to_vec()
}

#[test]
fn a_world_whose_test_panics_with_pods_running_leaves_the_host_unchanged() {
    const NAME: &str = "a_world_whose_test_panics_with_pods_running_leaves_the_host_unchanged";
    if node::inside_world() {
        populate_the_world();
        panic!("deliberate panic with pods running");
    }
    let _host = host_to_myself();
    let before = HostState::capture();
    let program = std::env::current_exe().expect("this test binary");
    let output = node::run_in_world_with(&program, &this_test(NAME), |cmd| {
        cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    })
    .expect("run the world");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stdout.contains(PODS_RUNNING) && stderr.contains("deliberate panic with pods running"),
        "the world should have run its pods, then panicked ({}):\n{stdout}\n{stderr}",
        output.status
    );
    assert!(!output.status.success(), "the panicking world reported success");
    let after = HostState::capture();
    let diff = before.diff(&after);
    assert!(diff.is_empty(), "the host changed:\n{diff}");
}

#[test]
fn a_test_run_killed_with_sigkill_while_pods_run_leaves_the_host_unchanged() {
    const NAME: &str = "a_test_run_killed_with_sigkill_while_pods_run_leaves_the_host_unchanged";
    if node::inside_world() {
        populate_the_world();
        std::thread::sleep(WORLD_TIMEOUT);
        return;
    }
    let program = std::env::current_exe().expect("this test binary");
    if std::env::var_os(ROLE_ENV).is_some() {
        // The launcher: the test run that is about to be killed.
        let status = node::run_in_world(&program, &this_test(NAME)).expect("run the world");
        panic!("the world ended by itself ({status}) instead of being killed");
    }
    let _host = host_to_myself();
    let before = HostState::capture();
    let mut launcher = Command::new(&program)
        .args(this_test(NAME))
        .env(ROLE_ENV, "launcher")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start the launcher");
    let stdout = launcher.stdout.take().expect("piped stdout");
    let mut seen = String::new();
    for line in BufReader::new(stdout).lines() {
        let line = line.expect("launcher output");
        seen += &line;
        seen.push('\n');
        if line.contains(PODS_RUNNING) {
            break;
        }
    }
    assert!(
        seen.contains(PODS_RUNNING),
        "the world never ran its pods:\n{seen}"
    );
    let launcher_pid = launcher.id();
    launcher.kill().expect("SIGKILL the launcher");
    launcher.wait().expect("reap the launcher");

    // The launcher's janitor cleans up once it notices the launcher is gone (about a second).
    let world_prefix = format!("regcreds-node-{launcher_pid}-");
    let deadline = Instant::now() + Duration::from_secs(60);
    let after = loop {
        let after = HostState::capture();
        let janitor_done = std::fs::read_dir(std::env::temp_dir())
            .expect("temp dir")
            .flatten()
            .all(|e| !e.file_name().to_string_lossy().starts_with(&world_prefix));
        if (janitor_done && before.diff(&after).is_empty()) || Instant::now() > deadline {
            break after;
        }
        std::thread::sleep(Duration::from_millis(250));
    };
    let diff = before.diff(&after);
    assert!(diff.is_empty(), "the host changed after a SIGKILLed run:\n{diff}");
}
