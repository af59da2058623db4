//! Issue 10: bad input, refused before anything is written.
//!
//! * ≥ 25 bad configurations of `regcreds run` against a live cluster: each exits 2 with its own
//!   message before its first request, and no Secret or ServiceAccount write reaches the apiserver;
//! * `regcreds mint` against unreachable provider endpoints fails naming the endpoint, and prints no
//!   credential.
//!
//! Faults of the cluster itself: `faults.rs`.

use regcreds_testkit::{
    ControlPlane, free_port, managed_secret_count, regcreds_clean_command, regcreds_command,
};

const SECRET: &str = "Bad-Input-Secret-9f3k";

/// Runs `regcreds run` with `env` against the admin kubeconfig; returns (exit code, stderr).
fn run_with(kubeconfig: &std::path::Path, env: &[(&str, &str)]) -> (Option<i32>, String) {
    let out = regcreds_command(kubeconfig)
        .arg("run")
        .env("REGCREDS_ADMIN_ADDR", format!("127.0.0.1:{}", free_port()))
        .env("REGCREDS_LEADER_ELECTION", "false")
        .envs(env.iter().copied())
        .output()
        .expect("regcreds runs");
    let text = String::from_utf8_lossy(&out.stderr).into_owned() + &String::from_utf8_lossy(&out.stdout);
    (out.status.code(), text)
}

/// Complements `crates/regcreds/tests/cli_config.rs` (which covers `mint`/`config check` on the static,
/// dockerconfigjson and dockerhub basics): here `regcreds run` itself, against a live cluster, for the
/// propagation settings, ecr, gcr, acr, Secret names, registry keys and oversized input.
#[tokio::test]
async fn every_bad_configuration_of_regcreds_run_exits_2_with_its_own_message_and_writes_nothing() {
    let cp = ControlPlane::shared().await;
    let client = cp.client();
    let dir = tempfile::tempdir().expect("tempdir");
    let big = dir.path().join("big.json");
    let huge_password = "x".repeat(1_100_000);
    std::fs::write(
        &big,
        format!(r#"{{"auths":{{"r.example":{{"username":"u","password":"{huge_password}"}}}}}}"#),
    )
    .expect("write");
    let big = big.to_str().expect("utf8");
    let key_file = dir.path().join("missing-key.json");
    let key_file = key_file.to_str().expect("utf8");
    let static_ok = [
        ("REGCREDS_STATIC_SERVER", "r.example"),
        ("REGCREDS_STATIC_USER", "u"),
        ("REGCREDS_STATIC_PASSWORD", SECRET),
    ];
    let ecr = [
        ("REGCREDS_ECR_REGIONS", "us-east-1"),
        ("AWS_ACCESS_KEY_ID", "AKIDTEST"),
        ("AWS_SECRET_ACCESS_KEY", SECRET),
    ];
    let with = |base: &[(&'static str, &'static str)], extra: &[(&'static str, &'static str)]| {
        [base, extra].concat()
    };
    let eleven_accounts = "111111111111,111111111112,111111111113,111111111114,111111111115,\
                           111111111116,111111111117,111111111118,111111111119,111111111110,111111111121";
    let gcr_no_key = r#"{"type":"service_account","client_email":"a@p.iam.gserviceaccount.com"}"#;
    let gcr_not_pem = format!(
        r#"{{"type":"service_account","client_email":"a@p.iam.gserviceaccount.com","private_key":"{SECRET}"}}"#
    );
    let gcr_not_json = format!("not json {SECRET}");
    let empty_registry = format!(r#"{{"auths":{{"":{{"username":"u","password":"{SECRET}"}}}}}}"#);
    let spaced_registry =
        format!(r#"{{"auths":{{"r.example/a b":{{"username":"u","password":"{SECRET}"}}}}}}"#);

    let cases: Vec<(Vec<(&str, &str)>, &str)> = vec![
        (vec![], "providers: no provider is configured"),
        (
            with(&static_ok, &[("REGCREDS_NAMESPACE_SELECTOR", "env in (dev")]),
            "REGCREDS_NAMESPACE_SELECTOR (--namespace-selector): invalid label selector term \"env in (dev\"",
        ),
        (
            with(&static_ok, &[("REGCREDS_SERVICE_ACCOUNTS", "default,Builder")]),
            "REGCREDS_SERVICE_ACCOUNTS (--service-accounts): \"Builder\" is not a valid ServiceAccount name",
        ),
        (
            with(&static_ok, &[("CONFIG_FORCE", "maybe")]),
            "CONFIG_FORCE (--config-force): \"maybe\" is not a boolean",
        ),
        (
            with(&static_ok, &[("CONFIG_ALLSERVICEACCOUNT", "yes")]),
            "CONFIG_ALLSERVICEACCOUNT (--allserviceaccount): \"yes\" is not a boolean",
        ),
        (
            with(&static_ok, &[("REGCREDS_CONCURRENCY", "0")]),
            "REGCREDS_CONCURRENCY (--concurrency): must be at least 1",
        ),
        (
            with(&static_ok, &[("REGCREDS_EXCLUDE_NAMESPACES", "kube-[system")]),
            "REGCREDS_EXCLUDE_NAMESPACES (--exclude-namespaces): invalid glob pattern",
        ),
        (
            with(&static_ok, &[("REGCREDS_LEADER_ELECTION", "true")]),
            "REGCREDS_NAMESPACE (--namespace): is required for leader election outside a cluster",
        ),
        (
            with(
                &static_ok,
                &[
                    ("REGCREDS_LEADER_ELECTION", "true"),
                    ("REGCREDS_NAMESPACE", "regcreds-system"),
                    ("REGCREDS_LEASE_DURATION_SECONDS", "1"),
                ],
            ),
            "REGCREDS_LEASE_DURATION_SECONDS (--lease-duration-seconds): must be at least 2",
        ),
        (
            with(&static_ok, &[("REGCREDS_ADMIN_ADDR", "localhost")]),
            "invalid value 'localhost' for '--admin-addr <ADMIN_ADDR>'",
        ),
        (
            with(&static_ok, &[("REGCREDS_WATCH_MODE", "sometimes")]),
            "invalid value 'sometimes' for '--watch-mode <WATCH_MODE>'",
        ),
        (
            with(&static_ok, &[("REGCREDS_RESYNC_SECONDS", "-1")]),
            "invalid value '-1' for '--resync-seconds <RESYNC_SECONDS>'",
        ),
        (
            with(&static_ok, &[("REGCREDS_STATIC_SECRET_NAME", "Pull_Secret")]),
            "REGCREDS_STATIC_SECRET_NAME: \"Pull_Secret\" is not a valid Secret name",
        ),
        (
            with(&static_ok, &[("REGCREDS_STATIC_SCHEDULE", "0 0 * * * * * *")]),
            "REGCREDS_STATIC_SCHEDULE (--static-schedule): invalid cron expression \"0 0 * * * * * *\"",
        ),
        (
            vec![("REGCREDS_DOCKERCONFIGJSON_PATH", big)],
            "REGCREDS_DOCKERCONFIGJSON_PATH (--dockerconfigjson-path): ",
        ),
        (
            vec![("REGCREDS_DOCKERCONFIGJSON", &empty_registry)],
            "REGCREDS_DOCKERCONFIGJSON (--dockerconfigjson): dockerconfigjson auths key: registry is empty",
        ),
        (
            vec![("REGCREDS_DOCKERCONFIGJSON", &spaced_registry)],
            "dockerconfigjson auths key: registry \"r.example/a b\" contains whitespace or control characters",
        ),
        (
            vec![("CONFIG_DOCKERCONFIGJSON", r#"{"auths":{}}"#)],
            "CONFIG_DOCKERCONFIGJSON (--config-dockerconfigjson): dockerconfigjson \"auths\" is empty",
        ),
        (
            vec![("REGCREDS_ECR_REGIONS", "eu west 1")],
            "REGCREDS_ECR_REGIONS (--ecr-regions): region \"eu west 1\" is not an AWS region name",
        ),
        (
            with(&ecr, &[("REGCREDS_ECR_ACCOUNTS", "12345")]),
            "REGCREDS_ECR_ACCOUNTS (--ecr-accounts): registry ID \"12345\" is not a 12-digit AWS account ID",
        ),
        (
            with(&ecr, &[("REGCREDS_ECR_ACCOUNTS", eleven_accounts)]),
            "REGCREDS_ECR_ACCOUNTS (--ecr-accounts): 11 registry IDs given; GetAuthorizationToken accepts at most 10",
        ),
        (
            with(&ecr, &[("REGCREDS_ECR_ASSUME_ROLE", "ecr-reader")]),
            "REGCREDS_ECR_ASSUME_ROLE (--ecr-assume-role): role \"ecr-reader\" is not an IAM role ARN",
        ),
        (
            with(&ecr, &[("REGCREDS_ECR_ENDPOINT_URL", "localhost:5000")]),
            "REGCREDS_ECR_ENDPOINT_URL (--ecr-endpoint-url): endpoint_url \"localhost:5000\" is not an http:// or https:// URL",
        ),
        (
            with(&ecr, &[("REGCREDS_ECR_TIMEOUT_SECONDS", "0")]),
            "REGCREDS_ECR_TIMEOUT_SECONDS (--ecr-timeout-seconds): must be at least 1",
        ),
        (
            vec![("REGCREDS_GCR_KEY", gcr_no_key)],
            "REGCREDS_GCR_KEY (--gcr-key): service-account key (inline): \"private_key\" is missing or empty",
        ),
        (
            vec![("REGCREDS_GCR_KEY", &gcr_not_pem)],
            "REGCREDS_GCR_KEY (--gcr-key): service-account key (inline): \"private_key\" is not a PEM PKCS#8 RSA private key",
        ),
        (
            vec![("REGCREDS_GCR_KEY", &gcr_not_json)],
            "REGCREDS_GCR_KEY (--gcr-key): service-account key (inline): is not valid JSON",
        ),
        (
            vec![("REGCREDS_GCR_KEY_FILE", key_file)],
            "REGCREDS_GCR_KEY_FILE (--gcr-key-file): service-account key: cannot read",
        ),
        (
            vec![
                ("REGCREDS_GCR_USE_METADATA", "true"),
                ("REGCREDS_GCR_HOSTS", "ftp://gcr.io"),
            ],
            "REGCREDS_GCR_HOSTS (--gcr-hosts): registry: registry \"ftp://gcr.io\" has an unsupported scheme",
        ),
        (
            vec![
                ("REGCREDS_ACR_REGISTRY", "myreg.azurecr.io"),
                ("REGCREDS_ACR_AUTH", "client-secret"),
            ],
            "REGCREDS_ACR_TENANT_ID (--acr-tenant-id): is required with REGCREDS_ACR_AUTH=client-secret",
        ),
        (
            vec![("REGCREDS_ACR_REGISTRY", "http://my reg")],
            "REGCREDS_ACR_REGISTRY (--acr-registry): registry \"http://my reg\": only https:// may precede the login server",
        ),
        (
            vec![
                ("REGCREDS_ACR_REGISTRY", "myreg.azurecr.io"),
                ("REGCREDS_ACR_AUTH", "password"),
            ],
            "invalid value 'password' for '--acr-auth <ACR_AUTH>'",
        ),
    ];
    assert!(cases.len() >= 25, "{} cases", cases.len());

    let writes = ["POST", "PUT", "PATCH", "APPLY", "DELETE"];
    let secrets_before = managed_secret_count(&client).await;
    let secret_writes = cp.request_count(&writes, Some("secrets")).await.expect("count");
    let account_writes = cp
        .request_count(&writes, Some("serviceaccounts"))
        .await
        .expect("count");
    let mut messages = std::collections::BTreeSet::new();
    for (env, expected) in &cases {
        let (code, output) = run_with(cp.kubeconfig_path(), env);
        assert_eq!(code, Some(2), "{env:?} should exit 2; output: {output}");
        assert!(
            output.contains(expected),
            "{env:?}: expected {expected:?} in:\n{output}"
        );
        assert!(!output.contains(SECRET), "secret echoed for {env:?}: {output}");
        assert!(!output.contains(&huge_password[..64]), "oversized value echoed");
        assert!(
            !output.contains("connected to the Kubernetes API server"),
            "{env:?}: validation comes before any request: {output}"
        );
        assert!(
            messages.insert(expected.to_string()),
            "each case has its own message"
        );
    }
    assert_eq!(
        managed_secret_count(&client).await,
        secrets_before,
        "no Secret written"
    );
    assert_eq!(
        cp.request_count(&writes, Some("secrets")).await.expect("count"),
        secret_writes,
        "no write request on secrets reached the apiserver"
    );
    assert_eq!(
        cp.request_count(&writes, Some("serviceaccounts"))
            .await
            .expect("count"),
        account_writes,
        "no write request on serviceaccounts reached the apiserver"
    );
}

#[test]
fn mint_against_unreachable_provider_endpoints_fails_naming_the_endpoint_and_no_secret() {
    let closed = free_port();
    let url = format!("http://127.0.0.1:{closed}");
    let https = format!("https://127.0.0.1:{closed}");
    let cases: Vec<(Vec<(&str, &str)>, String)> = vec![
        (
            vec![
                ("REGCREDS_ECR_REGIONS", "us-east-1"),
                ("REGCREDS_ECR_ENDPOINT_URL", &url),
                ("REGCREDS_ECR_TIMEOUT_SECONDS", "5"),
                ("AWS_ACCESS_KEY_ID", "AKIDTEST"),
                ("AWS_SECRET_ACCESS_KEY", SECRET),
                ("AWS_EC2_METADATA_DISABLED", "true"),
            ],
            format!(
                "provider ecr: region us-east-1 (endpoint {url}): request could not be sent (Connection refused"
            ),
        ),
        (
            vec![
                ("REGCREDS_GCR_USE_METADATA", "true"),
                ("REGCREDS_GCR_METADATA_URL", &url),
            ],
            format!(
                "provider gcr: metadata server {url}/computeMetadata/v1/instance/service-accounts/default/token: request failed (Connection refused"
            ),
        ),
        (
            vec![
                ("REGCREDS_ACR_REGISTRY", "myreg.azurecr.io"),
                ("REGCREDS_ACR_AUTH", "client-secret"),
                ("REGCREDS_ACR_TENANT_ID", "00000000-0000-0000-0000-000000000000"),
                ("REGCREDS_ACR_CLIENT_ID", "11111111-1111-1111-1111-111111111111"),
                ("REGCREDS_ACR_CLIENT_SECRET", SECRET),
                ("REGCREDS_ACR_AUTHORITY_HOST", &https),
                ("REGCREDS_ACR_TIMEOUT_SECONDS", "5"),
            ],
            "provider acr: Entra token (client-secret): network error (Connection refused".to_string(),
        ),
    ];
    for (env, expected) in cases {
        let out = regcreds_clean_command()
            .arg("mint")
            .envs(env.iter().copied())
            .output()
            .expect("regcreds runs");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{env:?}: {stderr}");
        assert!(stderr.contains(&expected), "expected {expected:?} in:\n{stderr}");
        assert!(out.stdout.is_empty(), "no dockerconfigjson printed");
        assert!(!stderr.contains(SECRET));
    }
}
