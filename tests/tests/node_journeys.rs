//! Users' journeys on a real node, starting where they are: a cluster on which upmc registry-creds or
//! imagepullsecret-patcher ran for years, its Secrets and ServiceAccount references in every namespace
//! and workloads running with them. regcreds replaces the old tool with the image swapped; pods are
//! created before, during and after the swap and through a credential rotation, and none may ever fail
//! to pull.
//!
//! The old tools' objects are written exactly as their code writes them (cited at each writer); their
//! own images cannot be pulled in this offline world, so their last state is written by the test.
//!
//! `cargo test -p regcreds-e2e --test node_journeys` (root needed; see `regcreds_testkit::node`).

use std::{
    collections::BTreeMap,
    process::ExitCode,
    time::{Duration, Instant},
};

use anyhow::{Result, ensure};
use base64::{Engine, engine::general_purpose::STANDARD};
use k8s_openapi::{
    ByteString,
    api::core::v1::{LocalObjectReference, Secret, ServiceAccount},
};
use kube::{
    Api, ResourceExt,
    api::{ObjectMeta, Patch, PatchParams, PostParams},
};
use regcreds_testkit::{
    moto::Moto,
    node::{self, Installed, NODE_IP, NodeWorld, PodStream, Workload, fill_yaml_values},
    node_tests,
};

fn main() -> ExitCode {
    node::harness(node_tests![
        upmc_users_swap_the_image_and_no_pod_fails_to_pull_through_the_takeover_and_a_token_rotation,
        patcher_users_swap_the_image_and_no_pod_fails_to_pull_through_the_takeover_and_a_source_rotation,
        helm_upgrade_that_renames_adds_and_retargets_then_rollback_keeps_pods_pulling_and_ends_as_a_fresh_install,
    ])
}

/// Longest the takeover or a rotation may take to reach every old namespace.
const CONVERGE: Duration = Duration::from_secs(120);
/// How often a pod is created while the journey goes on, and at most how many.
const STREAM_EVERY: Duration = Duration::from_secs(2);
const STREAM_LIMIT: usize = 40;
/// How long after every namespace holds the new credential the old one is revoked at the registry.
const REVOKE_AFTER: Duration = Duration::from_secs(10);
/// How long pods are created before the swap.
const BEFORE: Duration = Duration::from_secs(3);

/// upmc's ECR Secret name (`--aws-secret-name` default) and the account its `awsaccount` names.
const UPMC_SECRET: &str = "awsecr-cred";
const ACCOUNT: &str = "123456789012";

/// Seed 000 (upmc registry-creds), the whole way: upmc's Secrets and `default` references in three
/// namespaces with workloads running; `deploy/examples/upmc-registry-creds` applied with the image
/// swapped (its `secret.yaml` filled for ECR; ECR's endpoint pointed at moto, as the only change a
/// test world needs); regcreds takes every old Secret over; then moto's token rotates (a new
/// generation, the old one revoked at the registry once regcreds has spread the new one) and new pods in
/// the old namespaces pull with it. A pod is created every few seconds all along; none ever fails.
async fn upmc_users_swap_the_image_and_no_pod_fails_to_pull_through_the_takeover_and_a_token_rotation(
    _world: &NodeWorld,
) -> Result<()> {
    const OLD: [&str; 3] = ["upmc-app1", "upmc-app2", "upmc-app3"];
    let world: &'static NodeWorld = NodeWorld::shared().await;
    let endpoint = format!("https://{}", world.registry_host());
    // ECR's token user is always AWS; each generation gets its own here (see ECR_USER in moto_ecr.py).
    let first = ("AWS", format!("ecr-token-1-{}", world.pull_password()));
    let second = ("AWS2", format!("ecr-token-2-{}", world.pull_password()));
    world.set_registry_user(first.0, &first.1).await;
    let moto_env = |(user, password): &(&str, String)| {
        vec![
            ("ECR_PROXY_ENDPOINT", endpoint.clone()),
            ("ECR_USER", user.to_string()),
            ("ECR_PASSWORD", password.clone()),
        ]
    };
    let env = moto_env(&first);
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let moto = Moto::start_on(NODE_IP.into(), 0, &env);

    for ns in OLD {
        world.create_namespace(ns).await?;
        write_as_upmc(world, ns, &endpoint, &first).await?;
        world
            .create_workload(&Workload::new(ns, "app", world.workload_image()))
            .await?;
    }
    for ns in OLD {
        world.wait_pods_running(ns, "app=app", 1).await?;
    }
    let stream = world.stream_pods(&OLD, STREAM_EVERY, STREAM_LIMIT);
    tokio::time::sleep(BEFORE).await;

    let patch = format!(
        "patches:\n  - target:\n      kind: Deployment\n      name: registry-creds\n    patch: |-\n{}",
        [
            ("REGCREDS_ECR_ENDPOINT_URL", moto.url()),
            ("REGCREDS_ECR_SCHEDULE", "*/3 * * * * *".into()),
            ("AWS_EC2_METADATA_DISABLED", "true".into()),
        ]
        .iter()
        .map(|(name, value)| format!(
            "      - op: add\n        path: /spec/template/spec/containers/0/env/-\n        value: {{name: {name}, value: \"{value}\"}}\n"
        ))
        .collect::<String>()
    );
    let example = world.copy_example("upmc-registry-creds", &patch).await?;
    fill_yaml_values(
        &example.join("secret.yaml"),
        &[
            ("AWS_ACCESS_KEY_ID", "AKIDJOURNEY"),
            ("AWS_SECRET_ACCESS_KEY", "journey-secret-key"),
            ("aws-account", ACCOUNT),
            ("aws-region", "us-east-1"),
        ],
    )?;
    let swapped = example.with_file_name("swapped");
    let swap = Instant::now();
    node::run(world.kubectl().args(["apply", "-k"]).arg(&swapped))?;
    let installed = Installed::kustomize(&swapped, "kube-system", "name=registry-creds");
    let outcome = async {
        for ns in OLD {
            wait_regcreds_holds(world, ns, UPMC_SECRET, &first).await?;
        }
        let taken_over = swap.elapsed();
        for ns in OLD {
            let refs = pull_secret_refs(world, ns).await?;
            ensure!(
                refs == ["users-own", UPMC_SECRET],
                "{ns}: the default ServiceAccount lists {refs:?}; upmc's entry must stay, once"
            );
        }

        // Rotation: moto issues a new generation; regcreds spreads it; then the old one is revoked.
        world.set_registry_user(second.0, &second.1).await;
        let port = moto.port;
        drop(moto);
        let env = moto_env(&second);
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let _moto = Moto::start_on(NODE_IP.into(), port, &env);
        let (rotated, pods) =
            rotation_reaches_every_old_namespace(world, &OLD, UPMC_SECRET, &first, &second, stream).await?;
        eprintln!(
            "upmc journey: swap → all {} old namespaces on regcreds' credential in {:.1?}; rotation → all in \
             {rotated:.1?}; {pods} pods created along the way, none failed to pull",
            OLD.len(),
            taken_over
        );
        Ok(())
    }
    .await;
    let removed = world.uninstall_regcreds(&installed).await;
    world.delete_namespaces(&OLD).await?;
    outcome?;
    removed
}

/// Seed 001 (imagepullsecret-patcher), the whole way: the patcher's install (its example with its own
/// image, stopped: that image cannot be pulled here) with the user's source Secret, its Secret
/// `image-pull-secret` and the references it patched into every ServiceAccount of two namespaces, and
/// workloads running; the image swapped in place (`kubectl set image`, what a running install does —
/// re-applying the example would put its placeholder source back); then the mounted source rotates to
/// another user, and once every namespace has it the old password is revoked. No pod ever fails.
async fn patcher_users_swap_the_image_and_no_pod_fails_to_pull_through_the_takeover_and_a_source_rotation(
    _world: &NodeWorld,
) -> Result<()> {
    const OLD: [&str; 2] = ["patcher-app1", "patcher-app2"];
    const NS: &str = "imagepullsecret-patcher";
    const SECRET: &str = "image-pull-secret";
    let world: &'static NodeWorld = NodeWorld::shared().await;
    let first = ("patcher-user-1", format!("pw-1-{}", world.pull_password()));
    let second = ("patcher-user-2", format!("pw-2-{}", world.pull_password()));
    world.set_registry_user(first.0, &first.1).await;
    let source = docker_config(world.registry_host(), &first);

    // The patcher's install as it ran: upstream's image, and the user's own source Secret.
    let old_tool = "images:\n  - name: ghcr.io/regcreds/regcreds\n    newName: quay.io/titansoft/imagepullsecret-patcher\n    newTag: v0.14\n";
    let example = world.copy_example("imagepullsecret-patcher", "").await?;
    let installed_dir = example.with_file_name("patcher");
    std::fs::create_dir_all(&installed_dir)?;
    std::fs::write(
        installed_dir.join("kustomization.yaml"),
        format!(
            "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources:\n  - ../imagepullsecret-patcher\n{old_tool}\
             replicas:\n  - name: imagepullsecret-patcher\n    count: 0\n"
        ),
    )?;
    node::run(world.kubectl().args(["apply", "-k"]).arg(&installed_dir))?;
    set_patcher_source(world, NS, &source).await?;
    for ns in OLD {
        world.create_namespace(ns).await?;
        write_as_patcher(world, ns, SECRET, &source).await?;
        world
            .create_workload(&Workload::new(ns, "app", world.workload_image()))
            .await?;
    }
    for ns in OLD {
        world.wait_pods_running(ns, "app=app", 1).await?;
    }
    let stream = world.stream_pods(&OLD, STREAM_EVERY, STREAM_LIMIT);
    tokio::time::sleep(BEFORE).await;

    let image = world.regcreds_image().await?.to_string();
    let swap = Instant::now();
    node::run(world.kubectl().args([
        "-n",
        NS,
        "set",
        "image",
        "deployment/imagepullsecret-patcher",
        &format!("imagepullsecret-patcher={image}"),
    ]))?;
    node::run(world.kubectl().args([
        "-n",
        NS,
        "scale",
        "deployment/imagepullsecret-patcher",
        "--replicas=1",
    ]))?;
    let installed = Installed::kustomize(&installed_dir, NS, "name=imagepullsecret-patcher");
    let outcome = async {
        for ns in OLD {
            wait_labelled(world, ns, SECRET).await?;
        }
        let taken_over = swap.elapsed();
        for ns in OLD {
            let refs = pull_secret_refs(world, ns).await?;
            ensure!(
                refs == ["users-own", SECRET],
                "{ns}: the default ServiceAccount lists {refs:?}; the patcher's entry must stay, once"
            );
        }

        world.set_registry_user(second.0, &second.1).await;
        set_patcher_source(world, NS, &docker_config(world.registry_host(), &second)).await?;
        let (rotated, pods) =
            rotation_reaches_every_old_namespace(world, &OLD, SECRET, &first, &second, stream).await?;
        eprintln!(
            "patcher journey: swap → all {} old namespaces taken over in {:.1?}; source rotation → all in \
             {rotated:.1?} (the kubelet refreshes the mounted file within about a minute); {pods} pods \
             created along the way, none failed to pull",
            OLD.len(),
            taken_over
        );
        Ok(())
    }
    .await;
    let removed = world.uninstall_regcreds(&installed).await;
    world.delete_namespaces(&OLD).await?;
    outcome?;
    removed
}

/// `helm upgrade` of a running release that adds a provider (`dockerconfigjson`), renames the static
/// provider's Secret and adds a ServiceAccount to the list, then `helm rollback`, while pods keep being
/// created in two namespaces: every pod pulls; after each step exactly the Secrets and references of
/// that step's values exist; and the end state equals a fresh install of the final values.
///
/// A running pod keeps the `imagePullSecrets` names it was created with. When a rename removes that
/// Secret, a later container restart with `imagePullPolicy: Always` can no longer authenticate (pod
/// healing leaves pods whose containers already ran alone, by design): such workloads need a `kubectl
/// rollout restart` after the upgrade, as the README says. The journey restarts one such container, sees
/// kubelet's refusal, and restarts the workload.
async fn helm_upgrade_that_renames_adds_and_retargets_then_rollback_keeps_pods_pulling_and_ends_as_a_fresh_install(
    _world: &NodeWorld,
) -> Result<()> {
    const RELEASE: &str = "journey";
    const NS: &str = "regcreds-journey";
    const APPS: [&str; 2] = ["upgrade-app1", "upgrade-app2"];
    const RESTARTED: &str = "upgrade-restart";
    let world: &'static NodeWorld = NodeWorld::shared().await;
    for ns in APPS.iter().chain([&RESTARTED]) {
        world.create_namespace(ns).await?;
        wait_default_account(world, ns).await?;
        let mut builder = ServiceAccount::default();
        builder.metadata.name = Some("builder".into());
        Api::<ServiceAccount>::namespaced(world.client(), ns)
            .create(&PostParams::default(), &builder)
            .await?;
    }
    let installed = world.helm_install_regcreds(RELEASE, NS, &[]).await?;
    let outcome = async {
        for ns in APPS.iter().chain([&RESTARTED]) {
            world.wait_for_pull_credential(ns, "dpr-secret").await?;
            world
                .create_workload(&Workload::new(ns, "app", world.workload_image()))
                .await?;
        }
        for ns in APPS.iter().chain([&RESTARTED]) {
            world.wait_pods_running(ns, "app=app", 1).await?;
        }
        let first = snapshot(world, &APPS).await?;
        let stream = world.stream_pods(&APPS, STREAM_EVERY, STREAM_LIMIT);
        tokio::time::sleep(BEFORE).await;

        // Upgrade: a second provider, a renamed Secret, one more ServiceAccount.
        let chart = node::repo_root().join("deploy/helm/regcreds");
        world.create_pull_secret(NS, "regcreds-dockerconfigjson").await?;
        node::run(
            world
                .helm()
                .args(["upgrade", RELEASE])
                .arg(&chart)
                .args(["--namespace", NS, "--reuse-values", "--wait", "--timeout", "3m"])
                .args(["--set", "providers.static.secretName=regcreds-private"])
                .args(["--set", "providers.dockerconfigjson.enabled=true"])
                .args([
                    "--set",
                    "providers.dockerconfigjson.existingSecret=regcreds-dockerconfigjson",
                ])
                .args(["--set", "serviceAccounts={default,builder}"]),
        )?;
        let upgraded = ["regcreds-private", "image-pull-secret"];
        for ns in APPS.iter().chain([&RESTARTED]) {
            wait_state(
                world,
                ns,
                &upgraded,
                &[("default", &upgraded), ("builder", &upgraded)],
            )
            .await?;
        }

        // A pod created before the rename names only `dpr-secret`: its container restarts and pulls again.
        let before = world.wait_pods_running(RESTARTED, "app=app", 1).await?;
        let old_uid = before[0].metadata.uid.clone();
        let names: Vec<String> = before[0]
            .spec
            .iter()
            .flat_map(|s| s.image_pull_secrets.iter().flatten())
            .map(|r| r.name.clone())
            .collect();
        ensure!(names == ["dpr-secret"], "the old pod names {names:?}");
        kill_container(world, &before[0])?;
        let pod = before[0].metadata.name.clone().unwrap_or_default();
        world
            .wait_pod_event(
                RESTARTED,
                &pod,
                "Unable to retrieve some image pull secrets (dpr-secret)",
            )
            .await?;
        world
            .wait_pod_event(RESTARTED, &pod, "no basic auth credentials")
            .await?;
        // What the README tells users to do after a rename: restart the workloads.
        let restart = Instant::now();
        node::run(
            world
                .kubectl()
                .args(["-n", RESTARTED, "rollout", "restart", "deployment/app"]),
        )?;
        wait_replaced(world, RESTARTED, "app=app", old_uid.as_deref()).await?;
        eprintln!(
            "upgrade journey: a pod created before the rename could not pull on a container restart (its \
             Secret was renamed away); `kubectl rollout restart` gave a running pod in {:.1?}",
            restart.elapsed()
        );

        // Rollback to the first release's values.
        node::run(world.helm().args([
            "rollback",
            RELEASE,
            "1",
            "--namespace",
            NS,
            "--wait",
            "--timeout",
            "3m",
        ]))?;
        for ns in APPS {
            wait_state(
                world,
                ns,
                &["dpr-secret"],
                &[("default", &["dpr-secret"]), ("builder", &[])],
            )
            .await?;
        }
        let pods = stream.finish(world).await?;
        world.assert_no_failed_pull(&APPS).await?;
        let rolled_back = snapshot(world, &APPS).await?;
        ensure!(
            first == rolled_back,
            "after the rollback:\n{rolled_back:#?}\nthe first install:\n{first:#?}"
        );
        eprintln!("upgrade journey: {pods} pods created through upgrade and rollback, none failed to pull");
        Ok::<_, anyhow::Error>(rolled_back)
    }
    .await;
    let removed = world.uninstall_regcreds(&installed).await;
    let rolled_back = outcome?;
    removed?;
    node::run(
        world
            .kubectl()
            .args(["-n", NS, "delete", "secret", "regcreds-static"]),
    )?;

    // A fresh install of the final values converges to the same state.
    let fresh = world.helm_install_regcreds(RELEASE, NS, &[]).await?;
    let compared = async {
        for ns in APPS {
            wait_state(
                world,
                ns,
                &["dpr-secret"],
                &[("default", &["dpr-secret"]), ("builder", &[])],
            )
            .await?;
        }
        let fresh_state = snapshot(world, &APPS).await?;
        Ok::<_, anyhow::Error>(fresh_state)
    }
    .await;
    let removed = world.uninstall_regcreds(&fresh).await;
    world.delete_namespaces(&[APPS[0], APPS[1], RESTARTED]).await?;
    let fresh_state = compared?;
    removed?;
    ensure!(
        fresh_state == rolled_back,
        "a fresh install of the final values:\n{fresh_state:#?}\nafter upgrade and rollback:\n{rolled_back:#?}"
    );
    Ok(())
}

/// What regcreds wrote in some namespaces: each managed Secret's name, type, labels and data, and each
/// ServiceAccount's `imagePullSecrets` and regcreds annotations.
#[derive(Debug, PartialEq, Eq)]
struct Snapshot(BTreeMap<String, String>);

async fn snapshot(world: &NodeWorld, namespaces: &[&str]) -> Result<Snapshot> {
    let mut state = BTreeMap::new();
    for ns in namespaces {
        let secrets = Api::<Secret>::namespaced(world.client(), ns)
            .list(&kube::api::ListParams::default().labels("app.kubernetes.io/managed-by=regcreds"))
            .await?;
        for secret in secrets {
            let data = secret
                .data
                .as_ref()
                .and_then(|d| d.get(".dockerconfigjson"))
                .map(|b| String::from_utf8_lossy(&b.0).into_owned())
                .unwrap_or_default();
            state.insert(
                format!("{ns}/secret/{}", secret.name_any()),
                format!("{:?} {:?} {data}", secret.type_, secret.labels()),
            );
        }
        let accounts = Api::<ServiceAccount>::namespaced(world.client(), ns)
            .list(&kube::api::ListParams::default())
            .await?;
        for account in accounts {
            let refs: Vec<String> = account
                .image_pull_secrets
                .iter()
                .flatten()
                .map(|r| r.name.clone())
                .collect();
            let recorded: BTreeMap<&String, &String> = account
                .annotations()
                .iter()
                .filter(|(k, _)| k.contains("regcreds.dev"))
                .collect();
            state.insert(
                format!("{ns}/serviceaccount/{}", account.name_any()),
                format!("{refs:?} {recorded:?}"),
            );
        }
    }
    Ok(Snapshot(state))
}

/// Waits until exactly `secrets` are regcreds' Secrets in `ns` and each listed ServiceAccount references
/// exactly the given names.
async fn wait_state(
    world: &NodeWorld,
    ns: &str,
    secrets: &[&str],
    accounts: &[(&str, &[&str])],
) -> Result<()> {
    let deadline = Instant::now() + CONVERGE;
    loop {
        let mut found: Vec<String> = Api::<Secret>::namespaced(world.client(), ns)
            .list(&kube::api::ListParams::default().labels("app.kubernetes.io/managed-by=regcreds"))
            .await?
            .into_iter()
            .map(|s| s.name_any())
            .collect();
        found.sort();
        let mut wanted: Vec<String> = secrets.iter().map(|s| s.to_string()).collect();
        wanted.sort();
        let mut mismatch = (found != wanted).then(|| format!("secrets {found:?}, want {wanted:?}"));
        for (account, names) in accounts {
            let mut refs = Api::<ServiceAccount>::namespaced(world.client(), ns)
                .get(account)
                .await?
                .image_pull_secrets
                .unwrap_or_default()
                .into_iter()
                .map(|r| r.name)
                .collect::<Vec<_>>();
            refs.sort();
            let mut want: Vec<String> = names.iter().map(|s| s.to_string()).collect();
            want.sort();
            if refs != want && mismatch.is_none() {
                mismatch = Some(format!("{account} references {refs:?}, want {want:?}"));
            }
        }
        let Some(mismatch) = mismatch else {
            return Ok(());
        };
        ensure!(
            Instant::now() < deadline,
            "{ns}: {mismatch} after {CONVERGE:?}:\n{}",
            world.log_tails(40)
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Kills the first container of `pod` through containerd, as a crash would: kubelet restarts it and,
/// with `imagePullPolicy: Always`, pulls again with the pod's `imagePullSecrets`.
fn kill_container(world: &NodeWorld, pod: &k8s_openapi::api::core::v1::Pod) -> Result<()> {
    let id = pod
        .status
        .as_ref()
        .and_then(|s| s.container_statuses.as_ref())
        .and_then(|c| c.first())
        .and_then(|c| c.container_id.clone())
        .unwrap_or_default();
    let id = id.trim_start_matches("containerd://");
    ensure!(!id.is_empty(), "pod has no container id");
    node::run(world.ctr().args(["task", "kill", "--signal", "SIGKILL", id]))?;
    Ok(())
}

/// Waits until the pod of `selector` in `ns` is a new one (another UID) Running; returns how long.
async fn wait_replaced(
    world: &NodeWorld,
    ns: &str,
    selector: &str,
    old_uid: Option<&str>,
) -> Result<Duration> {
    let started = Instant::now();
    let deadline = started + Duration::from_secs(180);
    loop {
        let pods = Api::<k8s_openapi::api::core::v1::Pod>::namespaced(world.client(), ns)
            .list(&kube::api::ListParams::default().labels(selector))
            .await?;
        if pods.items.iter().any(|p| {
            p.metadata.uid.as_deref() != old_uid
                && p.metadata.deletion_timestamp.is_none()
                && node::is_running_and_ready(p)
        }) {
            return Ok(started.elapsed());
        }
        ensure!(
            Instant::now() < deadline,
            "{ns}: the pod was not replaced by a running one:\n{}",
            world.describe_pods(ns, selector).await
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// The second half of a migration journey, once the credential rotated from `first` to `second`: waits
/// until Secret `secret` in every old namespace holds `second` (how long: the first result), revokes
/// `first` at the registry `REVOKE_AFTER` later, shows new pods there pull, stops the pod stream and
/// checks that no pod ever failed to pull (how many were created: the second result).
async fn rotation_reaches_every_old_namespace(
    world: &'static NodeWorld,
    old: &[&str],
    secret: &str,
    first: &(&str, String),
    second: &(&str, String),
    stream: PodStream,
) -> Result<(Duration, usize)> {
    let rotation = Instant::now();
    for ns in old {
        wait_regcreds_holds(world, ns, secret, second).await?;
    }
    let rotated = rotation.elapsed();
    // NB: kubelet reads pull Secrets through its own watch-fed cache, a moment behind the apiserver;
    // ECR keeps an old token valid for 12 h, a user revokes an old password later still.
    tokio::time::sleep(REVOKE_AFTER).await;
    world.set_registry_user(first.0, "revoked").await;
    for ns in old {
        let workload = Workload::new(ns, "after-rotation", world.workload_image());
        world.create_workload(&workload).await?;
        world.wait_pods_running(ns, &workload.selector(), 1).await?;
    }
    let pods = stream.finish(world).await?;
    world.assert_no_failed_pull(old).await?;
    Ok((rotated, pods))
}

/// A dockerconfigjson for the private registry with `user`'s password.
fn docker_config(registry: &str, (user, password): &(&str, String)) -> Vec<u8> {
    let auth = STANDARD.encode(format!("{user}:{password}"));
    serde_json::json!({ "auths": { registry: { "auth": auth } } })
        .to_string()
        .into_bytes()
}

/// upmc's last state in `ns`: the Secret its `generateSecretObj` builds for ECR (only a name; one
/// `{"auth":…,"email":"none"}` entry keyed by the proxy endpoint) created by `processNamespace`, which
/// then appends the name to the `default` ServiceAccount (Get, then a full Update). The user's own entry
/// came first.
async fn write_as_upmc(world: &NodeWorld, ns: &str, endpoint: &str, token: &(&str, String)) -> Result<()> {
    let auth = STANDARD.encode(format!("{}:{}", token.0, token.1));
    let data = format!(r#"{{"auths":{{"{endpoint}":{{"auth":"{auth}","email":"none"}}}}}}"#);
    let secret = Secret {
        metadata: ObjectMeta {
            name: Some(UPMC_SECRET.into()),
            ..Default::default()
        },
        type_: Some("kubernetes.io/dockerconfigjson".into()),
        data: Some(BTreeMap::from([(
            ".dockerconfigjson".to_string(),
            ByteString(data.into_bytes()),
        )])),
        ..Default::default()
    };
    Api::<Secret>::namespaced(world.client(), ns)
        .create(&PostParams::default(), &secret)
        .await?;
    let accounts = Api::<ServiceAccount>::namespaced(world.client(), ns);
    let mut account = wait_default_account(world, ns).await?;
    account.image_pull_secrets = Some(vec![
        LocalObjectReference {
            name: "users-own".into(),
        },
        LocalObjectReference {
            name: UPMC_SECRET.into(),
        },
    ]);
    accounts
        .replace("default", &PostParams::default(), &account)
        .await?;
    Ok(())
}

/// The patcher's last state in `ns`: `dockerconfigSecret` (its annotation, the source bytes) created by
/// `processSecret`, and `processServiceAccount`'s strategic merge patch appending the name to every
/// ServiceAccount (`CONFIG_ALLSERVICEACCOUNT=true` in its example). The user's own entry came first.
async fn write_as_patcher(world: &NodeWorld, ns: &str, name: &str, source: &[u8]) -> Result<()> {
    let secret = Secret {
        metadata: ObjectMeta {
            name: Some(name.into()),
            namespace: Some(ns.into()),
            annotations: Some(BTreeMap::from([(
                "app.kubernetes.io/managed-by".to_string(),
                "imagepullsecret-patcher".to_string(),
            )])),
            ..Default::default()
        },
        type_: Some("kubernetes.io/dockerconfigjson".into()),
        data: Some(BTreeMap::from([(
            ".dockerconfigjson".to_string(),
            ByteString(source.to_vec()),
        )])),
        ..Default::default()
    };
    Api::<Secret>::namespaced(world.client(), ns)
        .create(&PostParams::default(), &secret)
        .await?;
    wait_default_account(world, ns).await?;
    let patch = serde_json::json!({ "imagePullSecrets": [{ "name": "users-own" }, { "name": name }] });
    Api::<ServiceAccount>::namespaced(world.client(), ns)
        .patch("default", &PatchParams::default(), &Patch::Strategic(patch))
        .await?;
    Ok(())
}

/// The patcher's source Secret, as its README has users write it (`kubectl create secret generic …
/// --type=kubernetes.io/dockerconfigjson --from-file=…`, applied).
async fn set_patcher_source(world: &NodeWorld, ns: &str, config: &[u8]) -> Result<()> {
    let secret = Secret {
        metadata: ObjectMeta {
            name: Some("image-pull-secret-src".into()),
            namespace: Some(ns.into()),
            ..Default::default()
        },
        type_: Some("kubernetes.io/dockerconfigjson".into()),
        data: Some(BTreeMap::from([(
            ".dockerconfigjson".to_string(),
            ByteString(config.to_vec()),
        )])),
        ..Default::default()
    };
    Api::<Secret>::namespaced(world.client(), ns)
        .patch(
            "image-pull-secret-src",
            &PatchParams::apply("kubectl").force(),
            &Patch::Apply(secret),
        )
        .await?;
    Ok(())
}

async fn wait_default_account(world: &NodeWorld, ns: &str) -> Result<ServiceAccount> {
    let accounts = Api::<ServiceAccount>::namespaced(world.client(), ns);
    let deadline = Instant::now() + CONVERGE;
    loop {
        if let Some(account) = accounts.get_opt("default").await? {
            return Ok(account);
        }
        ensure!(Instant::now() < deadline, "{ns}: no default ServiceAccount");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn pull_secret_refs(world: &NodeWorld, ns: &str) -> Result<Vec<String>> {
    let account = Api::<ServiceAccount>::namespaced(world.client(), ns)
        .get("default")
        .await?;
    Ok(account
        .image_pull_secrets
        .unwrap_or_default()
        .into_iter()
        .map(|r| r.name)
        .collect())
}

/// Waits until Secret `name` in `ns` is regcreds' (its label) and holds `user`'s credential.
async fn wait_regcreds_holds(
    world: &NodeWorld,
    ns: &str,
    name: &str,
    (user, password): &(&str, String),
) -> Result<()> {
    let encoded = STANDARD.encode(format!("{user}:{password}"));
    let secrets = Api::<Secret>::namespaced(world.client(), ns);
    let deadline = Instant::now() + CONVERGE;
    loop {
        let secret = secrets.get_opt(name).await?;
        let ours = secret.as_ref().is_some_and(|s| {
            s.labels().get("app.kubernetes.io/managed-by").map(String::as_str) == Some("regcreds")
        });
        let bytes = secret
            .and_then(|s| s.data?.get(".dockerconfigjson").map(|b| b.0.clone()))
            .unwrap_or_default();
        let text = String::from_utf8_lossy(&bytes);
        if ours && (text.contains(&encoded) || text.contains(password.as_str())) {
            return Ok(());
        }
        ensure!(
            Instant::now() < deadline,
            "{ns}/{name}: not regcreds' with {user}'s credential after {CONVERGE:?}:\n{}",
            world.log_tails(40)
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Waits until Secret `name` in `ns` carries regcreds' label.
async fn wait_labelled(world: &NodeWorld, ns: &str, name: &str) -> Result<()> {
    let secrets = Api::<Secret>::namespaced(world.client(), ns);
    let deadline = Instant::now() + CONVERGE;
    loop {
        let labelled = secrets.get_opt(name).await?.is_some_and(|s| {
            s.labels().get("app.kubernetes.io/managed-by").map(String::as_str) == Some("regcreds")
        });
        if labelled {
            return Ok(());
        }
        ensure!(
            Instant::now() < deadline,
            "{ns}/{name}: not taken over after {CONVERGE:?}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}
