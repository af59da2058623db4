//! Issue 23, point 3: `regcreds cleanup` never races a running controller of its instance. It takes the
//! instance's Lease before removing anything: while a controller holds it, cleanup waits (up to
//! `--lease-wait-seconds`) and then refuses, naming the holder; once the controller stops, a waiting
//! cleanup takes over and removes everything. `--dry-run` lists what would go and changes nothing.
//! Against the test control plane, with `regcreds run` and `regcreds cleanup` as processes.

use std::{
    collections::BTreeMap,
    process::{Output, Stdio},
    time::{Duration, Instant},
};

use k8s_openapi::api::core::v1::{Secret, ServiceAccount};
use kube::{
    Api, Client, ResourceExt,
    api::{ListParams, PostParams},
};
use regcreds_testkit::{
    ControlPlane, Regcreds, TEST_LABEL, append_pull_secret_ref, delete_namespaces, ensure_namespace,
    pull_secret_refs, regcreds_command, regcreds_leftovers, secret, users_opaque_secret, wait_for,
};

const SYSTEM: &str = "regcreds-system";
/// A pod of Deployment `hub` in regcreds' namespace: instance `hub.regcreds-system`, Lease `hub`.
const HUB_POD: &str = "hub-7d9f8b6c4-x2k5p";
const SECRET: &str = "hub-pull";
const USERS_SECRET: &str = "users-own";
const TIMEOUT: Duration = Duration::from_secs(60);

/// The controller's environment; cleanup gets the same (as in its pod, or a Job copying it).
fn env(test: &str) -> Vec<(&'static str, String)> {
    vec![
        (
            "REGCREDS_DOCKERCONFIGJSON",
            r#"{"auths":{"hub.example":{"username":"puller","password":"pw"}}}"#.into(),
        ),
        ("REGCREDS_DOCKERCONFIGJSON_SECRET_NAME", SECRET.into()),
        ("REGCREDS_NAMESPACE_SELECTOR", format!("{TEST_LABEL}={test}")),
        ("REGCREDS_NAMESPACE", SYSTEM.into()),
        ("REGCREDS_POD_NAME", HUB_POD.into()),
        ("REGCREDS_LEADER_ELECTION", "true".into()),
        ("REGCREDS_LEASE_DURATION_SECONDS", "15".into()),
    ]
}

fn cleanup_command(
    cp: &ControlPlane,
    env: &[(&'static str, String)],
    args: &[&str],
) -> std::process::Command {
    let mut cmd = regcreds_command(cp.kubeconfig_path());
    cmd.arg("cleanup")
        .args(args)
        .envs(env.iter().cloned())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    cmd
}

async fn run_cleanup(cp: &ControlPlane, env: &[(&'static str, String)], args: &[&str]) -> Output {
    let mut cmd = cleanup_command(cp, env, args);
    tokio::task::spawn_blocking(move || cmd.output().expect("regcreds cleanup runs"))
        .await
        .expect("join")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// `resourceVersion` of every Secret and ServiceAccount in `namespaces`: equal snapshots mean nothing
/// was written.
async fn versions(client: &Client, namespaces: &[String]) -> BTreeMap<String, String> {
    let mut all = BTreeMap::new();
    for ns in namespaces {
        for secret in Api::<Secret>::namespaced(client.clone(), ns)
            .list_metadata(&ListParams::default())
            .await
            .expect("secrets")
        {
            all.insert(
                format!("secret {ns}/{}", secret.name_any()),
                secret.resource_version().unwrap_or_default(),
            );
        }
        for account in Api::<ServiceAccount>::namespaced(client.clone(), ns)
            .list_metadata(&ListParams::default())
            .await
            .expect("serviceaccounts")
        {
            all.insert(
                format!("serviceaccount {ns}/{}", account.name_any()),
                account.resource_version().unwrap_or_default(),
            );
        }
    }
    all
}

#[tokio::test]
async fn cleanup_refuses_while_a_controller_holds_the_lease_waits_for_it_to_stop_and_a_dry_run_changes_nothing()
 {
    let cp = ControlPlane::shared().await;
    let client = cp.client();
    let test = "cleanup-lease";
    ensure_namespace(&client, SYSTEM, &[]).await;
    let namespaces: Vec<String> = (0..3).map(|i| format!("{test}-{i}")).collect();
    for ns in &namespaces {
        ensure_namespace(&client, ns, &[(TEST_LABEL, test)]).await;
    }
    let env = env(test);
    let dir = tempfile::tempdir().expect("tempdir");
    let controller = Regcreds::spawn(cp.kubeconfig_path(), &env, dir.path().join("run.log"));
    controller.wait_log("acquired the lease", TIMEOUT).await;
    for ns in &namespaces {
        wait_for(&format!("{SECRET} in {ns}, referenced"), TIMEOUT, || async {
            let refs = pull_secret_refs(&client, ns, "default").await?;
            let present = secret(&client, ns, SECRET).await.is_some();
            (present && refs.iter().any(|r| r == SECRET)).then_some(())
        })
        .await;
    }
    // The user's own Secret and entry, next to regcreds' one.
    let users_ns = &namespaces[0];
    Api::<Secret>::namespaced(client.clone(), users_ns)
        .create(&PostParams::default(), &users_opaque_secret(USERS_SECRET))
        .await
        .expect("the user's Secret");
    append_pull_secret_ref(&client, users_ns, "default", USERS_SECRET)
        .await
        .expect("the user's entry");
    tokio::time::sleep(Duration::from_secs(1)).await;
    let before = versions(&client, &namespaces).await;

    // A dry run lists every Secret and reference, takes no Lease and writes nothing.
    let dry = run_cleanup(cp, &env, &["--dry-run"]).await;
    assert!(dry.status.success(), "dry run failed: {}", text(&dry.stderr));
    let listed = text(&dry.stdout);
    for ns in &namespaces {
        assert!(
            listed.contains(&format!("would delete secret {ns}/{SECRET}\n")),
            "{listed}"
        );
        assert!(
            listed.contains(&format!(
                "would remove imagePullSecrets entry {SECRET} from serviceaccount {ns}/default\n"
            )),
            "{listed}"
        );
    }
    assert!(
        !listed.contains(USERS_SECRET),
        "the user's objects are not listed: {listed}"
    );
    assert!(
        listed.ends_with(&format!(
            "dry run: would remove {n} secrets and clean {n} serviceaccounts; nothing was changed\n",
            n = namespaces.len()
        )),
        "{listed}"
    );
    assert_eq!(versions(&client, &namespaces).await, before, "a dry run wrote");

    // While the controller holds the Lease, cleanup waits, then refuses and names the holder. Also
    // when run with the controller's own pod name, as `kubectl exec deploy/hub -- /regcreds cleanup` does.
    let started = Instant::now();
    let refused = run_cleanup(cp, &env, &["--lease-wait-seconds=3"]).await;
    let took = started.elapsed();
    let said = text(&refused.stderr);
    assert_eq!(
        refused.status.code(),
        Some(3),
        "exit 3 while the Lease is held: {said}"
    );
    for needle in [
        "cleanup refused, nothing was removed: Lease regcreds-system/hub is held by hub-7d9f8b6c4-x2k5p",
        "a running regcreds of instance hub.regcreds-system",
        "kubectl -n regcreds-system scale deployment/hub --replicas=0",
        "--deployment hub --stop",
        "Waited 3s",
    ] {
        assert!(said.contains(needle), "{needle:?} in {said}");
    }
    assert!(
        took >= Duration::from_secs(3) && took < Duration::from_secs(20),
        "waited {took:?} for the Lease"
    );
    assert_eq!(
        versions(&client, &namespaces).await,
        before,
        "a refused cleanup wrote"
    );
    assert!(controller.logs().contains("acquired the lease"));

    // A cleanup started now waits for the Lease; the controller stops (a scale to zero: SIGTERM, it
    // releases the Lease), the cleanup takes it and removes everything, and nothing is repaired.
    let log_path = dir.path().join("cleanup.log");
    let mut waiting = cleanup_command(cp, &env, &["--lease-wait-seconds=60"])
        .stderr(std::fs::File::create(&log_path).expect("log file"))
        .spawn()
        .expect("regcreds cleanup starts");
    wait_for("cleanup waiting for the Lease", TIMEOUT, || async {
        let log = std::fs::read_to_string(&log_path).unwrap_or_default();
        log.contains("Lease regcreds-system/hub is held by hub-7d9f8b6c4-x2k5p; waiting up to 60s")
            .then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(
        waiting.try_wait().expect("status").is_none(),
        "cleanup did not wait for the Lease"
    );
    assert_eq!(
        versions(&client, &namespaces).await,
        before,
        "a waiting cleanup wrote"
    );
    assert!(controller.stop().await.success(), "the controller stops cleanly");
    let done = tokio::task::spawn_blocking(move || waiting.wait_with_output().expect("cleanup output"))
        .await
        .expect("join");
    let (out, log) = (
        text(&done.stdout),
        std::fs::read_to_string(&log_path).unwrap_or_default(),
    );
    assert!(done.status.success(), "cleanup failed: {log}");
    assert!(log.contains("holding Lease regcreds-system/hub"), "{log}");
    assert_eq!(
        out,
        format!(
            "removed {n} secrets and cleaned {n} serviceaccounts\n",
            n = namespaces.len()
        )
    );
    let left = regcreds_leftovers(&client, &[SECRET]).await.expect("leftovers");
    let ours: Vec<&String> = left
        .iter()
        .filter(|l| namespaces.iter().any(|ns| l.contains(&format!(" {ns}/"))))
        .collect();
    assert!(ours.is_empty(), "left behind: {ours:?}");
    assert_eq!(
        pull_secret_refs(&client, users_ns, "default").await,
        Some(vec![USERS_SECRET.to_string()]),
        "the user's entry stays"
    );
    let users = secret(&client, users_ns, USERS_SECRET)
        .await
        .expect("the user's Secret stays");
    assert_eq!(
        users.resource_version(),
        before.get(&format!("secret {users_ns}/{USERS_SECRET}")).cloned()
    );
    // Released at the end: a controller starting now would take it at once.
    let lease = Api::<k8s_openapi::api::coordination::v1::Lease>::namespaced(client.clone(), SYSTEM)
        .get("hub")
        .await
        .expect("lease");
    assert_eq!(
        lease.spec.and_then(|s| s.holder_identity),
        None,
        "cleanup released the Lease"
    );
    delete_namespaces(
        &client,
        &namespaces.iter().map(String::as_str).collect::<Vec<_>>(),
    )
    .await;
}
