//! `regcreds credential-provider` as the kubelet runs it: a CredentialProviderRequest on stdin, the
//! per-provider variables in the environment (the CredentialProviderConfig's `env` list), the answer
//! on stdout. The kubelet's side of the exchange is `k8s.io/kubernetes@v1.37.2/pkg/credentialprovider/
//! plugin/plugin.go`; the node test (`tests/tests/node_credential_provider.rs`) runs it with a real
//! kubelet.

use std::{
    io::Write,
    path::Path,
    process::{Command, Output, Stdio},
};

use regcreds_fakes::{
    github_quay::{FEDERATION_PATH, FakeGithubQuay, FakeWorld, INSTALLATION_PATH, SA_JWT},
    tokens::{CLUSTER_ISSUER, service_account_token},
};

const QUAY_TOKEN: &str = "quay-plugin-robot-token";
const POD_TOKEN: &str = "eyJhbGciOiJSUzI1NiJ9.pod-token-never-echoed.c2ln";

/// Runs `regcreds credential-provider` with exactly `env` and `stdin`, as the kubelet's exec does.
fn plugin(env: &[(&str, &str)], stdin: &str) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_regcreds"))
        .arg("credential-provider")
        .env_clear()
        .envs(env.iter().copied())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("regcreds runs");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(stdin.as_bytes())
        .expect("request written");
    child.wait_with_output().expect("regcreds exits")
}

fn request(image: &str) -> String {
    format!(
        r#"{{"kind":"CredentialProviderRequest","apiVersion":"credentialprovider.kubelet.k8s.io/v1","image":"{image}"}}"#
    )
}

fn answer(output: &Output) -> serde_json::Value {
    assert!(
        output.status.success(),
        "exit {:?}: {}",
        output.status.code(),
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("stdout is one JSON document")
}

const STATIC: [(&str, &str); 3] = [
    ("REGCREDS_STATIC_SERVER", "registry.example.com:5000"),
    ("REGCREDS_STATIC_USER", "puller"),
    ("REGCREDS_STATIC_PASSWORD", "Top-Secret-Pa55"),
];

#[test]
fn a_static_credential_answers_its_registrys_images_and_nothing_else() {
    let served = answer(&plugin(
        &STATIC,
        &request("registry.example.com:5000/team/app:1.2"),
    ));
    assert_eq!(served["apiVersion"], "credentialprovider.kubelet.k8s.io/v1");
    assert_eq!(served["kind"], "CredentialProviderResponse");
    assert_eq!(served["cacheKeyType"], "Registry");
    assert!(
        served.get("cacheDuration").is_none(),
        "never expires: the config's default applies"
    );
    assert_eq!(
        served["auth"]["registry.example.com:5000"],
        serde_json::json!({"username": "puller", "password": "Top-Secret-Pa55"})
    );
    let other = answer(&plugin(&STATIC, &request("quay.io/someone/else:1")));
    assert!(other.get("auth").is_none(), "{other}");
    assert_eq!(other["cacheDuration"], "0s");
}

#[test]
fn token_providers_answer_with_an_expiry_and_only_the_provider_for_the_image_is_called() {
    let world = FakeWorld::start(&[("FAKE_QUAY_TOKEN", QUAY_TOKEN)]);
    let fake = &world.fake;
    let env = world.env();
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let response = answer(&plugin(&env, &request("quay.example.com/myorg/app:1")));
    assert_eq!(
        response["auth"]["quay.example.com"]["password"], QUAY_TOKEN,
        "{response}"
    );
    let seconds: u64 = response["cacheDuration"]
        .as_str()
        .and_then(|d| d.strip_suffix('s'))
        .and_then(|d| d.parse().ok())
        .expect("cacheDuration in seconds");
    assert!(
        seconds > 0 && seconds <= 1800,
        "half the hour the fake's token lives: {seconds}"
    );
    assert_eq!(fake.requests_to(FEDERATION_PATH).len(), 1);
    assert!(
        fake.requests_to(INSTALLATION_PATH).is_empty(),
        "ghcr.io is not the image's registry: GitHub is not asked"
    );
}

#[test]
fn a_failed_mint_exits_1_naming_provider_and_image_without_a_secret() {
    let keys = tempfile::tempdir().expect("tempdir");
    let token_file = keys.path().join("sa-token");
    std::fs::write(&token_file, SA_JWT).expect("token file");
    let closed = format!("https://127.0.0.1:{}", regcreds_fakes::ports::free_port());
    let env = [
        ("REGCREDS_QUAY_ROBOT", "myorg+puller"),
        ("REGCREDS_QUAY_REGISTRY", "quay.example.com"),
        ("REGCREDS_QUAY_TOKEN_FILE", path(&token_file)),
        ("REGCREDS_QUAY_FEDERATION_URL", closed.as_str()),
        ("REGCREDS_QUAY_TIMEOUT_SECONDS", "3"),
    ];
    let failed = plugin(
        &env,
        &pod_request("quay.example.com/myorg/app:1", POD_TOKEN, serde_json::json!({})),
    );
    let stderr = String::from_utf8_lossy(&failed.stderr);
    assert_eq!(failed.status.code(), Some(1), "{stderr}");
    assert!(failed.stdout.is_empty(), "no half answer on stdout");
    assert!(
        stderr.contains("image quay.example.com/myorg/app:1") && stderr.contains("quay"),
        "{stderr}"
    );
    assert!(!stderr.contains(POD_TOKEN) && !stderr.contains("eyJ"), "{stderr}");
    let unrelated = answer(&plugin(&env, &request("registry.example.com:5000/app:1")));
    assert!(
        unrelated.get("auth").is_none(),
        "another registry is answered without calling Quay"
    );
}

fn pod_token(subject: &str) -> String {
    service_account_token(CLUSTER_ISSUER, subject, "quay.example.com")
}

fn pod_request(image: &str, token: &str, annotations: serde_json::Value) -> String {
    serde_json::json!({
        "kind": "CredentialProviderRequest",
        "apiVersion": "credentialprovider.kubelet.k8s.io/v1",
        "image": image,
        "serviceAccountToken": token,
        "serviceAccountAnnotations": annotations,
    })
    .to_string()
}

#[test]
fn in_token_mode_each_pod_exchanges_its_own_token_and_quay_decides() {
    let fake = FakeGithubQuay::start(&[
        ("FAKE_QUAY_TOKEN", QUAY_TOKEN),
        (
            "FAKE_QUAY_FEDERATION",
            r#"[{"issuer":"https://kubernetes.default.svc.cluster.local","subject":"system:serviceaccount:team-a:puller"}]"#,
        ),
    ]);
    let ca = fake.ca_file();
    // NB: no token file: in token mode the kubelet passes each pod's token.
    let env = [
        ("REGCREDS_QUAY_ROBOT", "myorg+puller"),
        ("REGCREDS_QUAY_REGISTRY", "quay.example.com"),
        ("REGCREDS_QUAY_TOKEN_FILE", "/nonexistent/regcreds-test/token"),
        ("REGCREDS_QUAY_FEDERATION_URL", fake.url.as_str()),
        ("REGCREDS_QUAY_CA_FILE", path(&ca)),
        ("REGCREDS_QUAY_ROBOT_ANNOTATION", "regcreds.dev/quay-robot"),
    ];
    let image = "quay.example.com/myorg/app:1";
    let allowed = pod_token("system:serviceaccount:team-a:puller");
    let response = answer(&plugin(
        &env,
        &pod_request(image, &allowed, serde_json::json!({})),
    ));
    assert_eq!(
        response["auth"]["quay.example.com"]["username"], "myorg+puller",
        "{response}"
    );
    assert_eq!(response["auth"]["quay.example.com"]["password"], QUAY_TOKEN);
    let sent = fake.sent_credentials();
    let basic = sent.last().map(|b| {
        use base64::{Engine, engine::general_purpose::STANDARD};
        String::from_utf8(STANDARD.decode(b).expect("base64")).expect("utf8")
    });
    assert_eq!(
        basic,
        Some(format!("myorg+puller:{allowed}")),
        "the pod's own token went to Quay"
    );

    let other = pod_token("system:serviceaccount:team-b:other");
    let refused = plugin(&env, &pod_request(image, &other, serde_json::json!({})));
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert_eq!(refused.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("Token does not match robot"), "{stderr}");
    assert!(!stderr.contains(&other) && refused.stdout.is_empty(), "{stderr}");

    let annotated = serde_json::json!({"regcreds.dev/quay-robot": "myorg+other"});
    let unknown_robot = plugin(&env, &pod_request(image, &allowed, annotated));
    let stderr = String::from_utf8_lossy(&unknown_robot.stderr);
    assert_eq!(unknown_robot.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("Could not find robot"),
        "the annotation chose the robot: {stderr}"
    );

    let bad = serde_json::json!({"regcreds.dev/quay-robot": "no-plus-sign"});
    let invalid = plugin(&env, &pod_request(image, &allowed, bad));
    let stderr = String::from_utf8_lossy(&invalid.stderr);
    assert_eq!(invalid.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("annotation regcreds.dev/quay-robot"), "{stderr}");

    let without_token = plugin(
        &env,
        &request(image).replace(&format!(r#","serviceAccountToken":"{POD_TOKEN}""#), ""),
    );
    let stderr = String::from_utf8_lossy(&without_token.stderr);
    assert_eq!(
        without_token.status.code(),
        Some(2),
        "regcreds' own token file is needed then: {stderr}"
    );
    assert!(stderr.contains("REGCREDS_QUAY_TOKEN_FILE"), "{stderr}");
}

#[test]
fn in_token_mode_an_ecr_pod_pulls_as_the_role_its_service_account_names() {
    let moto =
        regcreds_fakes::process::FixtureProcess::start("moto_ecr.py", |_| Vec::new(), "ECR_REQUEST_LOG", &[]);
    let url = format!("http://127.0.0.1:{}", moto.port);
    let env = [
        ("REGCREDS_ECR_REGIONS", "eu-west-1"),
        // NB: STS and ECR both at moto; no AWS keys at all: the pod's token is the only identity.
        ("AWS_ENDPOINT_URL", url.as_str()),
        ("AWS_EC2_METADATA_DISABLED", "true"),
    ];
    let image = "111111111111.dkr.ecr.eu-west-1.amazonaws.com/team-a/app:1";
    let role =
        serde_json::json!({"eks.amazonaws.com/role-arn": "arn:aws:iam::111111111111:role/team-a-pull"});
    let response = answer(&plugin(&env, &pod_request(image, "pod-token-a", role)));
    let key = "https://111111111111.dkr.ecr.eu-west-1.amazonaws.com";
    assert_eq!(response["auth"][key]["username"], "AWS", "{response}");
    assert_eq!(response["auth"][key]["password"], "111111111111-auth-token");
    let no_role = plugin(&env, &pod_request(image, "pod-token-b", serde_json::json!({})));
    let stderr = String::from_utf8_lossy(&no_role.stderr);
    assert_eq!(no_role.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("no eks.amazonaws.com/role-arn annotation"),
        "{stderr}"
    );
    let requests: Vec<serde_json::Value> = moto.requests();
    let assumed = requests
        .iter()
        .filter(|r| r["action"] == "AssumeRoleWithWebIdentity")
        .count();
    assert_eq!(assumed, 1, "only the pod with a role reached STS: {requests:?}");
}

/// ECR's endpoints are https: the SDK's TLS client (its start deferred to the first https request, see
/// regcreds-ecr's `http_client.rs`) verifies moto's certificate against the roots `SSL_CERT_FILE` names,
/// and refuses it without them.
#[test]
fn over_https_the_ecr_answer_needs_a_trusted_certificate() {
    let moto = regcreds_fakes::process::FixtureProcess::start(
        "moto_ecr.py",
        |dir| vec!["--tls".into(), dir.as_os_str().to_owned()],
        "ECR_REQUEST_LOG",
        &[],
    );
    let url = format!("https://127.0.0.1:{}", moto.port);
    let ca = moto.dir().join("ca.pem");
    let mut env = vec![
        ("REGCREDS_ECR_REGIONS", "us-east-1"),
        ("AWS_ACCESS_KEY_ID", "AKIDPLUGINTEST"),
        ("AWS_SECRET_ACCESS_KEY", "plugin-test-secret"),
        ("AWS_ENDPOINT_URL_ECR", url.as_str()),
        ("AWS_EC2_METADATA_DISABLED", "true"),
    ];
    let image = "123456789012.dkr.ecr.us-east-1.amazonaws.com/team/app:1";

    let untrusted = plugin(&env, &request(image));
    let stderr = String::from_utf8_lossy(&untrusted.stderr);
    assert_eq!(untrusted.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("ecr"), "the failure names the provider: {stderr}");
    assert!(
        moto.requests::<serde_json::Value>().is_empty(),
        "no request got through"
    );

    env.push(("SSL_CERT_FILE", path(&ca)));
    let response = answer(&plugin(&env, &request(image)));
    let key = "https://123456789012.dkr.ecr.us-east-1.amazonaws.com";
    assert_eq!(response["auth"][key]["username"], "AWS", "{response}");
    assert_eq!(moto.requests::<serde_json::Value>().len(), 1);
}

/// A plugin answer is a new process: over http it must not pay for the system's root store. With
/// `SSL_CERT_FILE` naming no file, loading the store would log aws-smithy's "root CA certificate
/// loading errors" warning on stderr; the http answer has none, the https one does (and fails: exit 1,
/// or in a debug build aws-smithy's assertion that a store is not empty).
#[test]
fn over_http_the_ecr_answer_never_loads_the_root_store() {
    let moto =
        regcreds_fakes::process::FixtureProcess::start("moto_ecr.py", |_| Vec::new(), "ECR_REQUEST_LOG", &[]);
    let missing = moto.dir().join("no-such-roots.pem");
    let endpoint = |scheme: &str| format!("{scheme}://127.0.0.1:{}", moto.port);
    let (http, https) = (endpoint("http"), endpoint("https"));
    let env = |url: &str| {
        [
            ("REGCREDS_ECR_REGIONS", "us-east-1"),
            ("AWS_ACCESS_KEY_ID", "AKIDPLUGINTEST"),
            ("AWS_SECRET_ACCESS_KEY", "plugin-test-secret"),
            ("AWS_ENDPOINT_URL_ECR", url),
            ("AWS_EC2_METADATA_DISABLED", "true"),
            ("SSL_CERT_FILE", path(&missing)),
            ("REGCREDS_LOG", "warn"),
        ]
        .map(|(k, v)| (k, v.to_string()))
    };
    let run = |url: &str| {
        let env = env(url);
        let pairs: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        plugin(
            &pairs,
            &request("123456789012.dkr.ecr.us-east-1.amazonaws.com/team/app:1"),
        )
    };

    let plain = run(&http);
    answer(&plain);
    assert!(
        plain.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&plain.stderr)
    );

    let tls = run(&https);
    let stderr = String::from_utf8_lossy(&tls.stderr);
    assert!(!tls.status.success(), "{stderr}");
    assert!(
        stderr.contains("root CA certificate"),
        "the store was loaded for https: {stderr}"
    );
}

#[test]
fn a_malformed_request_or_bad_settings_exit_2_with_the_reason() {
    let garbage = plugin(&STATIC, "{\"image\": ");
    assert_eq!(garbage.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&garbage.stderr).contains("stdin is not a CredentialProviderRequest"),
        "{}",
        String::from_utf8_lossy(&garbage.stderr)
    );
    let wrong_version = plugin(
        &STATIC,
        &request("x").replace("kubelet.k8s.io/v1", "kubelet.k8s.io/v2"),
    );
    assert_eq!(wrong_version.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&wrong_version.stderr).contains("is not supported"));
    let unset = plugin(&STATIC[..1], &request("registry.example.com:5000/app"));
    assert_eq!(unset.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&unset.stderr);
    assert!(
        stderr.contains("REGCREDS_STATIC_USER (--static-user): is required"),
        "{stderr}"
    );
    assert!(unset.stdout.is_empty());
}

fn path(p: &Path) -> &str {
    p.to_str().expect("utf8 path")
}
