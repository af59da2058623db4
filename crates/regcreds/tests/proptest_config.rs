//! Fuzzing the environment configuration: arbitrary values for regcreds' variables make
//! `regcreds config check` exit 0 (valid) or 2 (invalid, explained) — never a panic (101), a signal or
//! a hang — and a value containing a secret marker is never echoed when it is a password.
//!
//! Bounded to 64 cases per property (each case starts a process) so it runs in `cargo xtask test`.
//! A longer run: `PROPTEST_CASES=5000 cargo test -p regcreds --test proptest_config`.

use std::{
    ffi::OsString,
    os::unix::ffi::OsStringExt,
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use proptest::prelude::*;

/// Every variable regcreds reads (providers, propagation, logging, compatibility names).
const VARIABLES: &[&str] = &[
    "ACR_CLIENT_ID",
    "ACR_PASSWORD",
    "ACR_URL",
    "CONFIG_ALLSERVICEACCOUNT",
    "CONFIG_DEBUG",
    "CONFIG_DOCKERCONFIGJSON",
    "CONFIG_DOCKERCONFIGJSONPATH",
    "CONFIG_EXCLUDED_NAMESPACES",
    "CONFIG_FORCE",
    "CONFIG_SECRETNAME",
    "CONFIG_SERVICEACCOUNTS",
    "DOCKER_PASSWORD",
    "DOCKER_PRIVATE_REGISTRY_PASSWORD",
    "DOCKER_PRIVATE_REGISTRY_SERVER",
    "DOCKER_PRIVATE_REGISTRY_USER",
    "DOCKER_USER",
    "GCR_APPLICATION_DEFAULT_CREDENTIALS",
    "GCR_URL",
    "REGCREDS_ACR_AUTH",
    "REGCREDS_ACR_AUTHORITY_HOST",
    "REGCREDS_ACR_CA_FILE",
    "REGCREDS_ACR_CLIENT_ID",
    "REGCREDS_ACR_CLIENT_SECRET",
    "REGCREDS_ACR_EXCHANGE_URL",
    "REGCREDS_ACR_REGISTRY",
    "REGCREDS_ACR_SCHEDULE",
    "REGCREDS_ACR_SECRET_NAME",
    "REGCREDS_ACR_TENANT_ID",
    "REGCREDS_ACR_TIMEOUT_SECONDS",
    "REGCREDS_CONCURRENCY",
    "REGCREDS_DOCKERCONFIGJSON",
    "REGCREDS_DOCKERCONFIGJSON_PATH",
    "REGCREDS_DOCKERCONFIGJSON_SCHEDULE",
    "REGCREDS_DOCKERCONFIGJSON_SECRET_NAME",
    "REGCREDS_DOCKERHUB_PASSWORD",
    "REGCREDS_DOCKERHUB_SCHEDULE",
    "REGCREDS_DOCKERHUB_SECRET_NAME",
    "REGCREDS_DOCKERHUB_USER",
    "REGCREDS_ECR_ACCOUNTS",
    "REGCREDS_ECR_ASSUME_ROLE",
    "REGCREDS_ECR_ASSUME_ROLE_EXTERNAL_ID",
    "REGCREDS_ECR_ENDPOINT_URL",
    "REGCREDS_ECR_PUBLIC",
    "REGCREDS_ECR_PUBLIC_ENDPOINT_URL",
    "REGCREDS_ECR_REGIONS",
    "REGCREDS_ECR_SCHEDULE",
    "REGCREDS_ECR_SECRET_NAME",
    "REGCREDS_ECR_TIMEOUT_SECONDS",
    "REGCREDS_EXCLUDE_NAMESPACES",
    "REGCREDS_FORCE",
    "REGCREDS_GCR_HOSTS",
    "REGCREDS_GCR_KEY",
    "REGCREDS_GCR_KEY_FILE",
    "REGCREDS_GCR_METADATA_URL",
    "REGCREDS_GCR_SCHEDULE",
    "REGCREDS_GCR_SECRET_NAME",
    "REGCREDS_GCR_TIMEOUT_SECONDS",
    "REGCREDS_GCR_USE_METADATA",
    "REGCREDS_HEAL_AFTER_CREDENTIAL_CHANGE",
    "REGCREDS_HEAL_BURST",
    "REGCREDS_HEAL_NAMESPACE_BURST",
    "REGCREDS_HEAL_NAMESPACE_RATE",
    "REGCREDS_HEAL_PODS",
    "REGCREDS_HEAL_RATE",
    "REGCREDS_LOG",
    "REGCREDS_LOG_FORMAT",
    "REGCREDS_NAMESPACE",
    "REGCREDS_NAMESPACE_SELECTOR",
    "REGCREDS_RESYNC_SECONDS",
    "REGCREDS_SERVICE_ACCOUNTS",
    "REGCREDS_STATIC_PASSWORD",
    "REGCREDS_STATIC_SCHEDULE",
    "REGCREDS_STATIC_SECRET_NAME",
    "REGCREDS_STATIC_SERVER",
    "REGCREDS_STATIC_USER",
    "REGCREDS_WATCH_MODE",
    "aws_assume_role",
    "awsaccount",
    "awsregion",
    "gcrurl",
];

/// Variables whose value is a secret and must never be printed.
const SECRET_VARIABLES: &[&str] = &[
    "REGCREDS_STATIC_PASSWORD",
    "DOCKER_PRIVATE_REGISTRY_PASSWORD",
    "REGCREDS_DOCKERHUB_PASSWORD",
    "DOCKER_PASSWORD",
    "REGCREDS_ACR_CLIENT_SECRET",
    "ACR_PASSWORD",
];

const MARKER: &str = "Pr0pS3cret";

fn value() -> impl Strategy<Value = OsString> {
    let plausible = prop::sample::select(vec![
        "",
        "true",
        "false",
        "1",
        "0",
        "-1",
        "yes",
        "*",
        "none",
        "default,builder",
        "us-east-1",
        "eu west 1",
        "123456789012",
        "arn:aws:iam::123456789012:role/r",
        "https://r.example:5000",
        "ftp://x",
        "r.example",
        "bob:pw@r.example",
        "0 0 */6 * * *",
        "*/5 * * * *",
        "0 0 25 * * *",
        "{\"auths\":{}}",
        "{\"auths\":{\"r.example\":{\"auth\":\"dTpw\"}}}",
        "{\"type\":\"service_account\"}",
        "/nonexistent/file",
        "/",
        "kube-[system",
        "env in (dev",
        "a=b,c!=d",
        "json",
        "plain",
        "client-secret",
        "managed-identity",
        "static",
        "127.0.0.1:0",
        "99999999999999999999",
    ])
    .prop_map(OsString::from);
    prop_oneof![
        4 => plausible,
        4 => "\\PC{0,40}".prop_map(OsString::from),
        1 => "[a-z]{1,8}".prop_map(|s| OsString::from(format!("{MARKER}{s}"))),
        1 => (1usize..20_000).prop_map(|n| OsString::from("a".repeat(n))),
        // Not UTF-8 (and never NUL, which the environment cannot carry).
        1 => prop::collection::vec(1u8..=255, 1..16).prop_map(OsString::from_vec),
    ]
}

fn environment() -> impl Strategy<Value = Vec<(&'static str, OsString)>> {
    prop::collection::vec((prop::sample::select(VARIABLES), value()), 1..8)
}

/// Runs regcreds with exactly `env`, killing it after 30 s. Returns (exit code, stdout + stderr).
fn regcreds(args: &[&str], env: &[(&str, OsString)]) -> (Option<i32>, String) {
    let dir = tempfile::tempdir().expect("tempdir");
    let (out, err) = (dir.path().join("out"), dir.path().join("err"));
    let mut child = Command::new(env!("CARGO_BIN_EXE_regcreds"))
        .args(args)
        .env_clear()
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&out).expect("out"))
        .stderr(std::fs::File::create(&err).expect("err"))
        .spawn()
        .expect("regcreds starts");
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("regcreds {args:?} hung for 30 s with {env:?}");
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    let text = std::fs::read_to_string(&out).unwrap_or_default()
        + &std::fs::read_to_string(&err).unwrap_or_default();
    (status.code(), text)
}

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: std::env::var("PROPTEST_CASES")
            .ok()
            .and_then(|c| c.parse().ok())
            .unwrap_or(64),
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn config_check_exits_0_or_2_whatever_the_environment(env in environment()) {
        let (code, output) = regcreds(&["config", "check"], &env);
        prop_assert!(
            matches!(code, Some(0 | 2)),
            "exit {code:?} (101 = panic, None = signal) for {env:?}:\n{output}"
        );
        prop_assert!(!output.contains("panicked"), "{output}");
        for (name, value) in &env {
            let value = value.to_string_lossy();
            if SECRET_VARIABLES.contains(name) && value.starts_with(MARKER) {
                prop_assert!(!output.contains(value.as_ref()), "{name} echoed:\n{output}");
            }
        }
    }

    #[test]
    fn run_rejects_or_accepts_propagation_settings_without_panicking(env in environment()) {
        // A valid provider, so the propagation settings decide; no cluster, so a valid configuration
        // stops at the connection step with exit 1.
        let mut env = env;
        env.extend([
            ("REGCREDS_STATIC_SERVER", OsString::from("r.example")),
            ("REGCREDS_STATIC_USER", OsString::from("u")),
            ("REGCREDS_STATIC_PASSWORD", OsString::from(format!("{MARKER}run"))),
            ("REGCREDS_ADMIN_ADDR", OsString::from("127.0.0.1:0")),
            ("KUBECONFIG", OsString::from("/nonexistent/kubeconfig")),
        ]);
        let (code, output) = regcreds(&["run"], &env);
        prop_assert!(
            matches!(code, Some(1 | 2)),
            "exit {code:?} (101 = panic, None = signal) for {env:?}:\n{output}"
        );
        prop_assert!(!output.contains("panicked"), "{output}");
        prop_assert!(!output.contains(&format!("{MARKER}run")), "password echoed:\n{output}");
    }
}
