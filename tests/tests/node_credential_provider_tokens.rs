//! regcreds as the kubelet's image credential provider in its ServiceAccount token mode (issue #27,
//! point 3): the kubelet passes each pod's own ServiceAccount token (`tokenAttributes` in the
//! `CredentialProviderConfig`), regcreds exchanges it at the Quay fake's robot federation endpoint, and
//! Quay — not the node, not regcreds — decides which ServiceAccount may pull as the robot.
//!
//! `cargo test -p regcreds-e2e --test node_credential_provider_tokens` (root needed: the world's
//! namespaces). A binary of its own rather than a test in `node_credential_provider.rs`: these tests
//! add a registry user, RBAC for the kubelet and Quay fakes to the world, and restart the kubelet with
//! other verification policies — nothing the static-provider test should run beside.
//!
//! The world, per test: a namespace with ServiceAccounts `allowed`, `refused` and `ungranted`; the Quay
//! fake (HTTPS on the world's loopback, where the plugin the kubelet runs reaches it) federating robot
//! `myorg+puller` with `system:serviceaccount:<ns>:allowed` of the apiserver's own issuer, for tokens of
//! audience [`AUDIENCE`], and answering with a password the private registry accepts for user
//! `myorg+puller`; every ServiceAccount names that robot in annotation [`ROBOT_ANNOTATION`] (the kubelet
//! passes it: `optionalServiceAccountAnnotationKeys`), so only Quay's check of the token's subject tells
//! them apart; the kubelet may request tokens of that audience for `allowed` and `refused` only (RBAC,
//! `request-serviceaccounts-token-audience`).
//!
//! The world's apiserver signs ServiceAccount tokens with ECDSA P-256 (`ES256`, tests/src/pki.rs); real
//! Quay accepts RSA-signed tokens only (`oauth/oidc.py`: `ALLOWED_ALGORITHMS`, and its JWKS loader
//! refuses non-RSA keys), so the fake is told to accept ES256 too (`FAKE_QUAY_ALGORITHMS`). A cluster
//! federating with Quay needs an RSA service-account signing key (kubeadm's default).

use std::{
    process::ExitCode,
    time::{Duration, Instant},
};

use anyhow::{Context, Result, bail, ensure};
use base64::{
    Engine,
    engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD},
};
use k8s_openapi::api::{
    apps::v1::Deployment,
    core::v1::{Pod, ServiceAccount},
};
use kube::{
    Api,
    api::{DeleteParams, ListParams, ObjectMeta, PostParams},
};
use rand::distr::{Alphanumeric, SampleString};
use regcreds_fakes::github_quay::{FEDERATION_PATH, FakeGithubQuay, Request};
use regcreds_testkit::{
    metric_sum,
    node::{
        self, CredentialProvider, KubeletOptions, NodeWorld, TokenAttributes, TokenCacheType,
        VerificationPolicy, Workload,
    },
    node_tests, regcreds_binary, temp_namespace,
};

fn main() -> ExitCode {
    node::harness(node_tests![
        in_token_mode_each_pod_pulls_as_its_own_service_account_and_quay_decides,
        what_a_refused_service_account_may_run_from_the_node_under_each_verification_policy,
    ])
}

/// The kubelet's name for the plugin.
const PLUGIN: &str = "regcreds";
/// `tokenAttributes.serviceAccountTokenAudience`, and the audience the robot's federation expects.
const AUDIENCE: &str = "quay.regcreds.test";
/// The federated robot, also a user of the world's private registry.
const ROBOT: &str = "myorg+puller";
/// The ServiceAccount annotation naming a pod's robot (`REGCREDS_QUAY_ROBOT_ANNOTATION`).
const ROBOT_ANNOTATION: &str = "regcreds.dev/quay-robot";
/// `REGCREDS_QUAY_ROBOT`, the robot of a ServiceAccount without the annotation: one Quay does not know.
const FALLBACK_ROBOT: &str = "myorg+unknown";
/// Federated with the robot.
const ALLOWED: &str = "allowed";
/// Not federated: Quay refuses its token.
const REFUSED: &str = "refused";
/// The kubelet may not request tokens of [`AUDIENCE`] for it.
const UNGRANTED: &str = "ungranted";
/// The ClusterRole and ClusterRoleBinding letting kubelets request tokens of [`AUDIENCE`].
const AUDIENCE_GRANT: &str = "regcreds-test-kubelet-quay-audience";
/// containerd's answer to the registry's 401 challenge when the kubelet gave it no credential.
const NO_CREDENTIALS: &str = "no basic auth credentials";
/// What the kubelet logs when a provider gave nothing for a pod (`plugin.go`, `provideWithCoordinates`).
const PROVIDE_FAILED: &str = "Failed to provide credentials for image";
/// The kubelet's answer to a pod that may use an image already on the node (`image_manager.go`).
const MAY_USE: &str = "already present on machine and can be accessed by the pod";
/// From deleting a Deployment to none of its pods left (grace period 1 s).
const REMOVAL_TIMEOUT: Duration = Duration::from_secs(60);

/// One namespace's ServiceAccounts, the Quay fake federating one of them, and the provider entry
/// aimed at it.
struct TokenWorld {
    ns: String,
    issuer: String,
    /// The robot's registry password: what Quay hands out for a federated token.
    robot_password: String,
    fake: FakeGithubQuay,
    provider: CredentialProvider,
}

impl TokenWorld {
    async fn start(world: &NodeWorld, prefix: &str) -> Result<Self> {
        let ns = temp_namespace(&world.client(), prefix).await;
        let accounts = Api::<ServiceAccount>::namespaced(world.client(), &ns);
        for name in [ALLOWED, REFUSED, UNGRANTED] {
            let account = ServiceAccount {
                metadata: ObjectMeta {
                    name: Some(name.into()),
                    annotations: Some([(ROBOT_ANNOTATION.to_string(), ROBOT.to_string())].into()),
                    ..ObjectMeta::default()
                },
                ..ServiceAccount::default()
            };
            accounts.create(&PostParams::default(), &account).await?;
        }

        let robot_password = Alphanumeric.sample_string(&mut rand::rng(), 24);
        world.add_registry_user(ROBOT, &robot_password).await;
        let issuer = world.service_account_issuer().await?;
        let federation = serde_json::json!([{
            "issuer": issuer,
            "subject": subject(&ns, ALLOWED),
            "audiences": [AUDIENCE],
        }])
        .to_string();
        let fake = FakeGithubQuay::start(&[
            ("FAKE_QUAY_ROBOT", ROBOT),
            ("FAKE_QUAY_TOKEN", &robot_password),
            ("FAKE_QUAY_FEDERATION", &federation),
            // See the module docs: this apiserver signs ES256.
            ("FAKE_QUAY_ALGORITHMS", "RS256,RS384,ES256"),
        ]);
        world
            .allow_node_token_audience(AUDIENCE_GRANT, AUDIENCE, &[ALLOWED, REFUSED])
            .await?;

        let ca = fake.ca_file().display().to_string();
        let provider = CredentialProvider::new(PLUGIN, &regcreds_binary(), &[world.registry_host()])
            .args(&["credential-provider"])
            .env("REGCREDS_QUAY_ROBOT", FALLBACK_ROBOT)
            .env("REGCREDS_QUAY_ROBOT_ANNOTATION", ROBOT_ANNOTATION)
            .env("REGCREDS_QUAY_REGISTRY", world.registry_host())
            .env("REGCREDS_QUAY_FEDERATION_URL", &fake.url)
            .env("REGCREDS_QUAY_CA_FILE", &ca)
            .env("REGCREDS_QUAY_TIMEOUT_SECONDS", "10")
            .token_attributes(
                // The robot token depends on the ServiceAccount only: one answer per ServiceAccount.
                TokenAttributes::new(AUDIENCE, TokenCacheType::ServiceAccount, true)
                    .optional_annotation(ROBOT_ANNOTATION),
            );
        eprintln!(
            "namespace {ns}; issuer {issuer}; Quay fake at {} federating {} for audience {AUDIENCE}",
            fake.url,
            subject(&ns, ALLOWED)
        );
        Ok(Self {
            ns,
            issuer,
            robot_password,
            fake,
            provider,
        })
    }

    /// A private image under a tag no pod pulled before.
    async fn fresh_image(&self, world: &NodeWorld) -> Result<String> {
        let tag = Alphanumeric.sample_string(&mut rand::rng(), 8).to_lowercase();
        let image = world.push_workload_image("demo/tokens", &tag).await?;
        ensure!(!world.has_image(&image)?, "{image} is already on the node");
        Ok(image)
    }

    /// What the fake saw of the federation exchanges of `account`'s tokens.
    fn exchanges_of(&self, account: &str) -> Result<Vec<Exchange>> {
        let wanted = subject(&self.ns, account);
        let mut seen = Vec::new();
        for request in self.fake.requests_to(FEDERATION_PATH) {
            let exchange = Exchange::read(&request)?;
            if exchange.claims["sub"] == wanted.as_str() {
                seen.push(exchange);
            }
        }
        Ok(seen)
    }
}

/// One request to the federation endpoint: the Basic user and the claims of the JWT sent as password.
#[derive(Debug)]
struct Exchange {
    robot: String,
    claims: serde_json::Value,
    status: Option<u16>,
}

impl Exchange {
    fn read(request: &Request) -> Result<Self> {
        let basic = request
            .headers
            .get("authorization")
            .and_then(|a| a.strip_prefix("Basic "))
            .context("a federation request without Basic auth")?;
        let decoded = String::from_utf8(STANDARD.decode(basic)?)?;
        let (robot, jwt) = decoded.split_once(':').context("Basic auth without ':'")?;
        let claims = jwt.split('.').nth(1).context("the password is not a JWT")?;
        let claims = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(claims)?)?;
        Ok(Self {
            robot: robot.to_string(),
            claims,
            status: request.status,
        })
    }
}

fn subject(ns: &str, account: &str) -> String {
    format!("system:serviceaccount:{ns}:{account}")
}

/// Restarts the kubelet with `options`, runs `steps`, and restarts it as every world starts whatever
/// happened.
async fn with_kubelet<F: std::future::Future<Output = Result<()>>>(
    world: &NodeWorld,
    options: KubeletOptions<'_>,
    steps: impl FnOnce() -> F,
) -> Result<()> {
    let outcome = async {
        world.restart_kubelet_with(options).await?;
        steps().await
    }
    .await;
    let restored = world.restart_kubelet(None).await;
    outcome?;
    restored
}

/// One kubelet with regcreds in token mode:
/// 0. a pod of `ungranted`: the kubelet cannot get a token of the audience for it (NodeRestriction:
///    not authorized to request tokens for the audience), so the plugin is not run and the pull fails;
/// 1. (a) a pod of `allowed` pulls a fresh private image through the plugin with its own token: the fake
///    saw that token (issuer, subject, audience, bound to that pod) for the robot and answered; the
///    registry let containerd's pull in; Pulled event;
/// 2. (b) a pod of `refused`, another fresh tag: ErrImagePull → ImagePullBackOff with containerd's
///    answer to the registry's challenge; the kubelet logged the plugin's failure with Quay's refusal
///    ("Token does not match robot"), which the pod's events do not show; the image stays off the node.
async fn in_token_mode_each_pod_pulls_as_its_own_service_account_and_quay_decides(
    world: &NodeWorld,
) -> Result<()> {
    let setup = TokenWorld::start(world, "tokens").await?;
    let options = KubeletOptions {
        credential_provider: Some(&setup.provider),
        ..KubeletOptions::default()
    };
    with_kubelet(world, options, || async {
        // 0. No token for a ServiceAccount the kubelet may not request one of this audience for.
        let image = setup.fresh_image(world).await?;
        let workload = Workload::new(&setup.ns, "ungranted", &image).service_account(UNGRANTED);
        let (pod, event) = pull_fails(world, &workload).await?;
        let failure = provide_failure(world, &image, &pod)?;
        ensure!(
            failure.contains("is not authorized to request tokens for audience")
                && failure.contains(AUDIENCE),
            "the kubelet should have been refused the token:\n{failure}"
        );
        ensure!(
            setup.exchanges_of(UNGRANTED)?.is_empty(),
            "a token of {UNGRANTED} reached Quay"
        );
        eprintln!("{UNGRANTED}: {event}\n  kubelet: {failure}");
        remove_workload(world, &workload).await?;

        // (a) The allowed ServiceAccount pulls with its own token.
        let image = setup.fresh_image(world).await?;
        let registry_before = world.registry_saw(&image).await;
        let workload = Workload::new(&setup.ns, "allowed", &image).service_account(ALLOWED);
        let created = Instant::now();
        world.create_workload(&workload).await?;
        let pods = world
            .wait_pods_running(&setup.ns, &workload.selector(), 1)
            .await?;
        let running_after = created.elapsed();
        let name = pods[0].metadata.name.clone().unwrap_or_default();
        let pulled = world
            .wait_pod_event(
                &setup.ns,
                &name,
                &format!("Successfully pulled image \"{image}\""),
            )
            .await?;
        ensure!(
            world.has_image(&image)?,
            "{image} is not in containerd after the pull"
        );
        let exchanges = setup.exchanges_of(ALLOWED)?;
        let exchange = exchanges
            .iter()
            .find(|e| e.claims["kubernetes.io"]["pod"]["name"] == name.as_str())
            .with_context(|| {
                format!("the fake saw no token of {ALLOWED} bound to pod {name}: {exchanges:#?}")
            })?;
        ensure!(
            exchange.claims["iss"] == setup.issuer.as_str()
                && exchange.claims["aud"]
                    .as_array()
                    .is_some_and(|aud| aud.iter().any(|a| a == AUDIENCE))
                && exchange.robot == ROBOT
                && exchange.status == Some(200),
            "the exchange of {ALLOWED}'s token: {exchange:#?}"
        );
        let registry_after = world.registry_saw(&image).await;
        ensure!(
            registry_after.authorized > registry_before.authorized,
            "the registry let no request of containerd for {image} in \
             ({registry_before:?} → {registry_after:?})"
        );
        eprintln!(
            "{ALLOWED}: Running {:.2}s after the Deployment was created; the fake exchanged its token \
             (sub {}, aud {}, pod {name}) for {ROBOT}'s; {pulled}",
            running_after.as_secs_f64(),
            exchange.claims["sub"],
            exchange.claims["aud"]
        );

        // (b) Another ServiceAccount naming the same robot: Quay refuses its token.
        let image = setup.fresh_image(world).await?;
        let workload = Workload::new(&setup.ns, "refused", &image).service_account(REFUSED);
        let (pod, event) = pull_fails(world, &workload).await?;
        let failure = provide_failure(world, &image, &pod)?;
        ensure!(
            failure.contains("Token does not match robot"),
            "the kubelet should have logged Quay's refusal:\n{failure}"
        );
        let refused = setup.exchanges_of(REFUSED)?;
        ensure!(
            !refused.is_empty() && refused.iter().all(|e| e.status == Some(400) && e.robot == ROBOT),
            "the fake should have refused {REFUSED}'s tokens for {ROBOT}: {refused:#?}"
        );
        let events = world.pod_events(&setup.ns, &pod).await?;
        ensure!(
            events.iter().all(|e| !e.contains("Token does not match robot")),
            "the pod's events were expected to show containerd's error only: {events:#?}"
        );
        ensure!(!world.has_image(&image)?, "{image} reached the node");
        eprintln!("{REFUSED}: {event}\n  kubelet: {failure}");
        remove_workload(world, &workload).await
    })
    .await
}

/// (c) `allowed` pulls a fresh image `pulled`; the kubelet records that ServiceAccount as what pulled it.
/// Another image, `preloaded` (distinct content), is put into containerd behind the kubelet's back with
/// the robot's credential, as a node image would carry it. Then, on the same node, pods of `refused`
/// ask for exactly those images with `imagePullPolicy: IfNotPresent`:
/// - default policy (`NeverVerifyPreloadedImages`): a second pod of `allowed` runs `pulled` without a
///   pull (its ServiceAccount is in the record); `refused` must authenticate for `pulled` (the plugin is
///   refused, ErrImagePull) but runs `preloaded` unchecked;
/// - `AlwaysVerify` (kubelet restarted, the record kept on disk): `refused` must authenticate for both;
/// - `NeverVerify`: `refused` runs `pulled` unchecked.
async fn what_a_refused_service_account_may_run_from_the_node_under_each_verification_policy(
    world: &NodeWorld,
) -> Result<()> {
    let setup = TokenWorld::start(world, "tokens-cached").await?;
    let pulled = setup.fresh_image(world).await?;
    let tag = Alphanumeric.sample_string(&mut rand::rng(), 8).to_lowercase();
    let preloaded = world.push_distinct_workload_image("demo/preloaded", &tag).await?;
    world.preload_image(&preloaded, ROBOT, &setup.robot_password)?;
    ensure!(world.has_image(&preloaded)?, "{preloaded} was not preloaded");

    let default_policy = KubeletOptions {
        credential_provider: Some(&setup.provider),
        ..KubeletOptions::default()
    };
    with_kubelet(world, default_policy, || async {
        let first = Workload::new(&setup.ns, "allowed", &pulled).service_account(ALLOWED);
        world.create_workload(&first).await?;
        world.wait_pods_running(&setup.ns, &first.selector(), 1).await?;
        ensure!(world.has_image(&pulled)?, "{pulled} is not on the node");
        let (record, accounts) = recorded_accounts(world, &pulled)?;
        ensure!(
            accounts.contains(&(setup.ns.clone(), ALLOWED.to_string()))
                && !accounts.contains(&(setup.ns.clone(), REFUSED.to_string())),
            "the kubelet should have recorded {ALLOWED} as what pulled {pulled}: {record:#}"
        );
        eprintln!("the kubelet's record of the pull: {record}");

        let checks = MustPullChecks::read(world).await?;
        let again = Workload::new(&setup.ns, "allowed-again", &pulled)
            .service_account(ALLOWED)
            .pull_policy("IfNotPresent");
        world.create_workload(&again).await?;
        let pods = world.wait_pods_running(&setup.ns, &again.selector(), 1).await?;
        let name = pods[0].metadata.name.clone().unwrap_or_default();
        let event = world.wait_pod_event(&setup.ns, &name, MAY_USE).await?;
        let delta = MustPullChecks::read(world).await?.since(checks);
        ensure!(
            delta.record_found >= 1.0 && delta.must_authenticate == 0.0,
            "{ALLOWED}'s second pod should have been let through by the record: {delta:?}"
        );
        eprintln!("default policy, {ALLOWED} again: {event} ({delta:?})");

        refused_pod_fails(world, &setup, &pulled, "refused-default").await?;
        refused_pod_runs(world, &setup, &preloaded, "preloaded-default").await
    })
    .await?;

    let always_verify = KubeletOptions {
        credential_provider: Some(&setup.provider),
        verification_policy: Some(VerificationPolicy::AlwaysVerify),
        ..KubeletOptions::default()
    };
    with_kubelet(world, always_verify, || async {
        refused_pod_fails(world, &setup, &pulled, "refused-always").await?;
        refused_pod_fails(world, &setup, &preloaded, "preloaded-always").await
    })
    .await?;

    let never_verify = KubeletOptions {
        credential_provider: Some(&setup.provider),
        verification_policy: Some(VerificationPolicy::NeverVerify),
        ..KubeletOptions::default()
    };
    with_kubelet(world, never_verify, || async {
        refused_pod_runs(world, &setup, &pulled, "refused-never").await?;
        let (record, accounts) = recorded_accounts(world, &pulled)?;
        ensure!(
            !accounts.contains(&(setup.ns.clone(), REFUSED.to_string())),
            "{REFUSED} never pulled {pulled}, yet the kubelet recorded it: {record:#}"
        );
        Ok(())
    })
    .await
}

/// A pod of `refused` asking for `image`, on the node already, with `IfNotPresent`: the policy lets it
/// use the image without a check (`credentialPolicyAllowed`), the plugin is not run, the pod runs.
/// The Deployment is removed afterwards.
async fn refused_pod_runs(world: &NodeWorld, setup: &TokenWorld, image: &str, name: &str) -> Result<()> {
    let policy = policy_name(world);
    ensure!(world.has_image(image)?, "{image} should be on the node");
    let exchanges_before = setup.exchanges_of(REFUSED)?.len();
    let checks = MustPullChecks::read(world).await?;
    let workload = Workload::new(&setup.ns, name, image)
        .service_account(REFUSED)
        .pull_policy("IfNotPresent");
    world.create_workload(&workload).await?;
    let pods = world
        .wait_pods_running(&setup.ns, &workload.selector(), 1)
        .await?;
    let pod = pods[0].metadata.name.clone().unwrap_or_default();
    let event = world.wait_pod_event(&setup.ns, &pod, MAY_USE).await?;
    let delta = MustPullChecks::read(world).await?.since(checks);
    ensure!(
        delta.policy_allowed >= 1.0 && delta.must_authenticate == 0.0 && delta.record_found == 0.0,
        "{policy}: {REFUSED} should have used {image} unchecked: {delta:?}"
    );
    ensure!(
        setup.exchanges_of(REFUSED)?.len() == exchanges_before,
        "{policy}: the plugin should not have run for {REFUSED}"
    );
    eprintln!(
        "{policy}, {REFUSED} with IfNotPresent for {image}: Running; {event} ({delta:?}), no credential asked for"
    );
    remove_workload(world, &workload).await
}

fn policy_name(world: &NodeWorld) -> &'static str {
    world
        .verification_policy()
        .map_or("NeverVerifyPreloadedImages (default)", VerificationPolicy::as_str)
}

/// A pod of `refused` asking for `image`, on the node already, with `IfNotPresent`: the kubelet wants
/// credentials (a `mustAuthenticate` check), runs the plugin for `refused`, Quay refuses, the pull
/// fails. The Deployment is removed afterwards, so that no pod of it retries under the next kubelet.
async fn refused_pod_fails(world: &NodeWorld, setup: &TokenWorld, image: &str, name: &str) -> Result<()> {
    let policy = policy_name(world);
    ensure!(world.has_image(image)?, "{image} should be on the node");
    let exchanges_before = setup.exchanges_of(REFUSED)?.len();
    let checks = MustPullChecks::read(world).await?;
    let workload = Workload::new(&setup.ns, name, image)
        .service_account(REFUSED)
        .pull_policy("IfNotPresent");
    let (pod, event) = pull_fails(world, &workload).await?;
    let delta = MustPullChecks::read(world).await?.since(checks);
    ensure!(
        delta.must_authenticate >= 1.0 && delta.record_found == 0.0 && delta.policy_allowed == 0.0,
        "{policy}: the kubelet should have asked {REFUSED} for credentials: {delta:?}"
    );
    let failure = provide_failure(world, image, &pod)?;
    ensure!(
        failure.contains("Token does not match robot")
            && setup.exchanges_of(REFUSED)?.len() > exchanges_before,
        "{policy}: the plugin should have run for {REFUSED} and been refused:\n{failure}"
    );
    eprintln!("{policy}, {REFUSED} with IfNotPresent for {image}: {event} ({delta:?})\n  kubelet: {failure}");
    remove_workload(world, &workload).await
}

/// Creates `workload` and waits for ErrImagePull → ImagePullBackOff with containerd's answer to the
/// registry's challenge for its image; returns the pod's name and that event.
async fn pull_fails(world: &NodeWorld, workload: &Workload) -> Result<(String, String)> {
    world.create_workload(workload).await?;
    let ns = &workload.namespace;
    let pod = world
        .wait_pod_waiting(ns, &workload.selector(), "ImagePullBackOff")
        .await?;
    let name = pod.metadata.name.clone().unwrap_or_default();
    let event = world.wait_pod_event(ns, &name, NO_CREDENTIALS).await?;
    ensure!(
        event.contains(&workload.image),
        "the failure names the image: {event}"
    );
    let events = world.pod_events(ns, &name).await?;
    ensure!(
        events.iter().any(|e| e.contains("ErrImagePull")),
        "no ErrImagePull event: {events:#?}"
    );
    Ok((name, event))
}

/// The kubelet's last log entry saying the provider gave nothing for `image` for pod `pod` (it names
/// the repository it looks credentials up for: the image without its tag).
fn provide_failure(world: &NodeWorld, image: &str, pod: &str) -> Result<String> {
    let log = world.kubelet_log()?;
    let entries = klog_entries(&log);
    let repository = format!("image=\"{}\"", image_name(image));
    let pod_field = format!("/{pod}\"");
    let entry = entries
        .iter()
        .rev()
        .find(|e| e.contains(PROVIDE_FAILED) && e.contains(&repository) && e.contains(&pod_field));
    match entry {
        Some(entry) => Ok(entry.clone()),
        None => bail!(
            "the kubelet logged no {PROVIDE_FAILED:?} for {image} and pod {pod}; its entries about the provider:\n{}",
            entries
                .iter()
                .filter(|e| e.contains(PROVIDE_FAILED))
                .cloned()
                .collect::<Vec<_>>()
                .join("\n")
        ),
    }
}

/// The kubelet's log as klog entries: a value with line breaks (such as a plugin's stderr in `err`) is
/// written as `err=<`, its lines indented by a tab, then ` >` and the rest of the entry's fields.
fn klog_entries(log: &str) -> Vec<String> {
    let starts_entry = |line: &str| {
        let mut chars = line.chars();
        chars.next().is_some_and(|c| "IWEF".contains(c)) && chars.take(4).all(|c| c.is_ascii_digit())
    };
    let mut entries: Vec<String> = Vec::new();
    for line in log.lines() {
        match entries.last_mut() {
            Some(entry) if !starts_entry(line) => {
                entry.push('\n');
                entry.push_str(line);
            }
            _ => entries.push(line.to_string()),
        }
    }
    entries
}

/// Deletes the Deployment (its pods go with it) and waits until no pod of it is left.
async fn remove_workload(world: &NodeWorld, workload: &Workload) -> Result<()> {
    Api::<Deployment>::namespaced(world.client(), &workload.namespace)
        .delete(&workload.name, &DeleteParams::foreground())
        .await?;
    let pods = Api::<Pod>::namespaced(world.client(), &workload.namespace);
    let selector = ListParams::default().labels(&workload.selector());
    let deadline = Instant::now() + REMOVAL_TIMEOUT;
    while !pods.list(&selector).await?.items.is_empty() {
        ensure!(Instant::now() < deadline, "pods of {} still there", workload.name);
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    Ok(())
}

/// The image name without its tag, as the kubelet keys `credentialMapping`.
fn image_name(image: &str) -> &str {
    image.rsplit_once(':').map_or(image, |(name, _)| name)
}

/// The kubelet's pulled record naming `image`'s repository, and the ServiceAccounts (namespace, name)
/// it lists for that repository. The kubelet keeps one record per image ID (`imageRef`), keyed inside
/// by repository without tag: every tag of the same content shares it.
fn recorded_accounts(world: &NodeWorld, image: &str) -> Result<(serde_json::Value, Vec<(String, String)>)> {
    let record = world
        .kubelet_pulled_records()?
        .into_iter()
        .find(|r| r["credentialMapping"].get(image_name(image)).is_some())
        .with_context(|| format!("the kubelet has no pulled record for {image}"))?;
    let accounts = record["credentialMapping"][image_name(image)]["kubernetesServiceAccounts"]
        .as_array()
        .map(|accounts| {
            accounts
                .iter()
                .map(|a| {
                    let field = |k: &str| a[k].as_str().unwrap_or_default().to_string();
                    (field("namespace"), field("name"))
                })
                .collect()
        })
        .unwrap_or_default();
    Ok((record, accounts))
}

/// `kubelet_imagemanager_image_mustpull_checks_total` by `result`
/// (`pkg/kubelet/images/pullmanager/metrics.go`): why the kubelet let a pod use an image on the node,
/// or made it authenticate. Counters of the running kubelet: compare within one kubelet's life.
#[derive(Debug, Clone, Copy)]
struct MustPullChecks {
    /// `credentialPolicyAllowed`: the policy required no check.
    policy_allowed: f64,
    /// `credentialRecordFound`: the pod's credentials (Secret, ServiceAccount) are in the record.
    record_found: f64,
    /// `mustAuthenticate`: pull with the pod's own credentials.
    must_authenticate: f64,
}

impl MustPullChecks {
    async fn read(world: &NodeWorld) -> Result<Self> {
        let metrics = world.kubelet_metrics().await?;
        let count = |result: &str| {
            metric_sum(
                &metrics,
                "kubelet_imagemanager_image_mustpull_checks_total",
                &[("result", result)],
            )
        };
        Ok(Self {
            policy_allowed: count("credentialPolicyAllowed"),
            record_found: count("credentialRecordFound"),
            must_authenticate: count("mustAuthenticate"),
        })
    }

    fn since(self, before: Self) -> Self {
        Self {
            policy_allowed: self.policy_allowed - before.policy_allowed,
            record_found: self.record_found - before.record_found,
            must_authenticate: self.must_authenticate - before.must_authenticate,
        }
    }
}
