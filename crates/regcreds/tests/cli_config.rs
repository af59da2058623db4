//! The `regcreds` command as a user runs it: environment in, exit code and messages out.

use std::{
    collections::BTreeSet,
    process::{Command, Output, Stdio},
    time::{Duration, Instant},
};

const SECRET: &str = "Top-Secret-Pa55";

/// Runs `regcreds <args>` with exactly `env` (nothing inherited but PATH).
fn regcreds(args: &[&str], env: &[(&str, &str)]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_regcreds"))
        .args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .envs(env.iter().copied())
        .output()
        .expect("regcreds runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// The variables of config/static.env, read from the file itself so the example stays honest.
fn static_example() -> Vec<(String, String)> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../config/static.env");
    std::fs::read_to_string(path)
        .expect("config/static.env exists")
        .lines()
        .filter(|l| !l.trim_start().starts_with('#') && l.contains('='))
        .filter_map(|l| {
            l.split_once('=')
                .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        })
        .collect()
}

#[test]
fn mint_with_the_static_example_prints_a_valid_dockerconfigjson() {
    let vars = static_example();
    let env: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let out = regcreds(&["mint", "--provider", "static", "--show-secrets"], &env);
    assert!(out.status.success(), "stderr: {}", text(&out.stderr));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).expect("stdout is JSON");
    let entry = &doc["auths"]["registry.example.com:5000"];
    assert_eq!(entry["username"], "puller");
    assert_eq!(entry["password"], "change-me");
    assert_eq!(entry["auth"], "cHVsbGVyOmNoYW5nZS1tZQ==");
}

#[test]
fn mint_masks_secrets_unless_asked() {
    let out = regcreds(
        &["mint"],
        &[
            ("REGCREDS_STATIC_SERVER", "r.example"),
            ("REGCREDS_STATIC_USER", "u"),
            ("REGCREDS_STATIC_PASSWORD", SECRET),
        ],
    );
    assert!(out.status.success(), "stderr: {}", text(&out.stderr));
    let all = text(&out.stdout) + &text(&out.stderr);
    assert!(!all.contains(SECRET), "{all}");
    assert!(
        !all.contains("dTpUb3AtU2VjcmV0LVBhNTU"),
        "auth value leaked: {all}"
    );
    assert!(all.contains("r.example"));
}

#[test]
fn upmc_and_patcher_variable_names_are_accepted() {
    let out = regcreds(
        &["mint", "--show-secrets"],
        &[
            ("DOCKER_PRIVATE_REGISTRY_SERVER", "dpr.example"),
            ("DOCKER_PRIVATE_REGISTRY_USER", "u"),
            ("DOCKER_PRIVATE_REGISTRY_PASSWORD", "p"),
            (
                "CONFIG_DOCKERCONFIGJSON",
                r#"{"auths":{"ipsp.example":{"username":"a","password":"b"}}}"#,
            ),
            ("CONFIG_SECRETNAME", "custom-name"),
            ("DOCKER_USER", "hubuser"),
            ("DOCKER_PASSWORD", "hubpass"),
        ],
    );
    assert!(out.status.success(), "stderr: {}", text(&out.stderr));
    let stderr = text(&out.stderr);
    for expected in [
        "Secret dpr-secret",
        "Secret custom-name",
        "Secret dockerhub-secret",
    ] {
        assert!(stderr.contains(expected), "missing {expected:?} in {stderr}");
    }
    let stdout = text(&out.stdout);
    for registry in ["dpr.example", "ipsp.example", "https://index.docker.io/v1/"] {
        assert!(stdout.contains(registry), "missing {registry} in {stdout}");
    }
}

#[test]
fn config_check_explains_what_is_enabled_and_why() {
    let out = regcreds(
        &["config", "check"],
        &[("DOCKER_USER", "hubuser"), ("DOCKER_PASSWORD", SECRET)],
    );
    assert!(out.status.success(), "stderr: {}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains("dockerhub") && stdout.contains("enabled  (DOCKER_USER is set)"),
        "{stdout}"
    );
    assert!(
        stdout.contains("static") && stdout.contains("disabled (not configured"),
        "{stdout}"
    );
    assert!(!stdout.contains(SECRET));
}

/// Each bad input exits 2 with its own message naming the variable, and never echoes a secret.
#[test]
fn every_bad_input_exits_2_naming_the_variable() {
    let dir = tempfile::tempdir().expect("tempdir");
    let unreadable = dir.path().join("missing.json");
    let unreadable = unreadable.to_str().expect("utf8 path");
    let not_json = dir.path().join("notjson");
    std::fs::write(&not_json, format!("password={SECRET}")).expect("write");
    let not_json = not_json.to_str().expect("utf8 path");
    let static_ok = [
        ("REGCREDS_STATIC_SERVER", "r.example"),
        ("REGCREDS_STATIC_USER", "u"),
    ];
    let b64 = |s: &str| base64_encode(s.as_bytes());
    let no_colon = format!(r#"{{"auths":{{"r.example":{{"auth":"{}"}}}}}}"#, b64(SECRET));
    let empty_user = format!(
        r#"{{"auths":{{"r.example":{{"auth":"{}"}}}}}}"#,
        b64(&format!(":{SECRET}"))
    );
    let not_b64 = format!(r#"{{"auths":{{"r.example":{{"auth":"{SECRET}!"}}}}}}"#);
    let malformed = format!(r#"{{"auths":{{"r.example":{{"password":"{SECRET}"}}"#);
    let no_auths = format!(r#"{{"r.example":{{"password":"{SECRET}"}}}}"#);

    /// Command-line arguments, environment, expected message.
    type Case<'a> = (Vec<&'a str>, Vec<(&'a str, &'a str)>, &'a str);
    let cases: Vec<Case> = vec![
        (
            vec!["mint", "--provider", "nosuch"],
            vec![],
            "REGCREDS_MINT_PROVIDER (--provider): unknown provider \"nosuch\"",
        ),
        (
            vec!["mint", "--provider", "dockerhub"],
            vec![
                ("REGCREDS_STATIC_SERVER", "r.example"),
                ("REGCREDS_STATIC_USER", "u"),
                ("REGCREDS_STATIC_PASSWORD", SECRET),
            ],
            "provider \"dockerhub\" is not configured",
        ),
        (
            vec!["mint"],
            vec![("REGCREDS_STATIC_SERVER", "r.example")],
            "REGCREDS_STATIC_USER (--static-user): is required",
        ),
        (
            vec!["mint"],
            static_ok.to_vec(),
            "REGCREDS_STATIC_PASSWORD (--static-password): is required",
        ),
        (
            vec!["mint"],
            vec![
                ("REGCREDS_STATIC_SERVER", "ftp://r"),
                ("REGCREDS_STATIC_USER", "u"),
                ("REGCREDS_STATIC_PASSWORD", SECRET),
            ],
            "REGCREDS_STATIC_SERVER (--static-server): server: registry \"ftp://r\" has an unsupported scheme",
        ),
        (
            vec!["mint"],
            vec![
                ("DOCKER_PRIVATE_REGISTRY_SERVER", "r.example"),
                ("DOCKER_PRIVATE_REGISTRY_USER", "a:b"),
                ("DOCKER_PRIVATE_REGISTRY_PASSWORD", SECRET),
            ],
            "DOCKER_PRIVATE_REGISTRY_USER (--dpr-user): user must not contain ':'",
        ),
        (
            vec!["mint"],
            vec![
                ("REGCREDS_STATIC_SERVER", "r.example"),
                ("REGCREDS_STATIC_USER", "u"),
                ("REGCREDS_STATIC_PASSWORD", SECRET),
                ("REGCREDS_STATIC_SCHEDULE", "*/5 * * * *"),
            ],
            "REGCREDS_STATIC_SCHEDULE (--static-schedule): invalid cron expression \"*/5 * * * *\": has 5 fields",
        ),
        (
            vec!["mint"],
            vec![
                ("REGCREDS_STATIC_SERVER", "r.example"),
                ("REGCREDS_STATIC_USER", "u"),
                ("REGCREDS_STATIC_PASSWORD", SECRET),
                ("REGCREDS_STATIC_SCHEDULE", "0 0 25 * * *"),
            ],
            "REGCREDS_STATIC_SCHEDULE (--static-schedule): invalid cron expression \"0 0 25 * * *\"",
        ),
        (
            vec!["mint"],
            vec![("REGCREDS_DOCKERCONFIGJSON_PATH", unreadable)],
            "REGCREDS_DOCKERCONFIGJSON_PATH (--dockerconfigjson-path): cannot read",
        ),
        (
            vec!["mint"],
            vec![("CONFIG_DOCKERCONFIGJSONPATH", not_json)],
            "CONFIG_DOCKERCONFIGJSONPATH (--config-dockerconfigjsonpath): ",
        ),
        (
            vec!["mint"],
            vec![("REGCREDS_DOCKERCONFIGJSON", &malformed)],
            "REGCREDS_DOCKERCONFIGJSON (--dockerconfigjson): dockerconfigjson is not valid JSON (syntax error at line 1",
        ),
        (
            vec!["mint"],
            vec![("CONFIG_DOCKERCONFIGJSON", &no_auths)],
            "CONFIG_DOCKERCONFIGJSON (--config-dockerconfigjson): dockerconfigjson has no \"auths\" object",
        ),
        (
            vec!["mint"],
            vec![("REGCREDS_DOCKERCONFIGJSON", &not_b64)],
            "auths[\"r.example\"].auth is not valid base64",
        ),
        (
            vec!["mint"],
            vec![("REGCREDS_DOCKERCONFIGJSON", &no_colon)],
            "auths[\"r.example\"].auth must decode to \"username:password\" but has no ':'",
        ),
        (
            vec!["mint"],
            vec![("REGCREDS_DOCKERCONFIGJSON", &empty_user)],
            "auths[\"r.example\"] has an empty username",
        ),
        (
            vec!["mint"],
            vec![
                ("REGCREDS_DOCKERCONFIGJSON", r#"{"auths":{}}"#),
                ("REGCREDS_DOCKERCONFIGJSON_PATH", unreadable),
            ],
            "REGCREDS_DOCKERCONFIGJSON (--dockerconfigjson): cannot be combined with REGCREDS_DOCKERCONFIGJSON_PATH",
        ),
        (
            vec!["mint"],
            vec![("DOCKER_USER", "alice")],
            "REGCREDS_DOCKERHUB_PASSWORD (DOCKER_PASSWORD): is required",
        ),
        (
            vec!["mint"],
            vec![("DOCKER_USER", "al ice"), ("DOCKER_PASSWORD", SECRET)],
            "DOCKER_USER (--docker-user): user (Docker ID) must not contain",
        ),
        (
            vec!["mint"],
            vec![
                ("REGCREDS_STATIC_SERVER", "r.example"),
                ("REGCREDS_STATIC_USER", "u"),
                ("REGCREDS_STATIC_PASSWORD", SECRET),
                ("DOCKER_USER", "alice"),
                ("DOCKER_PASSWORD", SECRET),
                ("REGCREDS_DOCKERHUB_SECRET_NAME", "dpr-secret"),
            ],
            "static and dockerhub secret names: both write Secret \"dpr-secret\"",
        ),
        (
            vec!["config", "check"],
            vec![("REGCREDS_STATIC_SERVER", "bob:pw@r.example")],
            "registry \"***@r.example\" must not contain credentials",
        ),
    ];
    assert!(cases.len() >= 15);
    for (args, env, expected) in &cases {
        let out = regcreds(args, env);
        let stderr = text(&out.stderr);
        assert_eq!(
            out.status.code(),
            Some(2),
            "{args:?} {env:?} should exit 2; stderr: {stderr}"
        );
        assert!(
            stderr.contains(expected),
            "{args:?}: expected {expected:?} in:\n{stderr}"
        );
        assert!(
            stderr.lines().all(|l| l.starts_with("invalid configuration: ")),
            "one line per problem: {stderr}"
        );
        let all = stderr + &text(&out.stdout);
        assert!(!all.contains(SECRET), "secret leaked for {args:?}: {all}");
    }
}

/// Runs `regcreds <args>` like [`regcreds`], but gives up (and fails) after `limit`: an unbounded read
/// of `/dev/zero` would otherwise hang the test instead of failing it.
fn regcreds_within(args: &[&str], env: &[(&str, &str)], limit: Duration) -> (Output, Duration) {
    let started = Instant::now();
    let mut child = Command::new(env!("CARGO_BIN_EXE_regcreds"))
        .args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .envs(env.iter().copied())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("regcreds runs");
    while child.try_wait().expect("wait").is_none() {
        if started.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            panic!("regcreds {args:?} {env:?} did not finish within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    (child.wait_with_output().expect("output"), started.elapsed())
}

/// Runs each case and checks: exit 2, the expected text on stderr, one line per problem, no secret.
/// Command-line arguments, environment, the text expected on stderr.
type BadInput<'a> = (Vec<&'a str>, Vec<(&'a str, &'a str)>, String);

fn assert_each_exits_2(cases: &[BadInput]) {
    for (args, env, expected) in cases {
        let (out, took) = regcreds_within(args, env, Duration::from_secs(30));
        let stderr = text(&out.stderr);
        assert_eq!(
            out.status.code(),
            Some(2),
            "{args:?} {env:?} should exit 2; stderr: {stderr}"
        );
        assert!(
            stderr.contains(expected.as_str()),
            "{args:?} {env:?}: expected {expected:?} in:\n{stderr}"
        );
        assert!(
            stderr.lines().all(|l| l.starts_with("invalid configuration: ")),
            "one line per problem: {stderr}"
        );
        let all = stderr + &text(&out.stdout);
        assert!(!all.contains(SECRET), "secret leaked for {args:?} {env:?}: {all}");
        assert!(took < Duration::from_secs(10), "{args:?} {env:?} took {took:?}");
    }
}

/// The compatible names in the README's configuration tables (second column "compatible name"):
/// upmc registry-creds' and imagepullsecret-patcher's variables.
fn readme_compatible_names() -> BTreeSet<String> {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../README.md")).expect("README.md");
    let mut names = BTreeSet::new();
    let mut in_table = false;
    for line in readme.lines() {
        if line.starts_with("| variable | compatible name |") {
            in_table = true;
            continue;
        }
        if !line.starts_with('|') {
            in_table = false;
            continue;
        }
        let Some(column) = line.split('|').nth(2).filter(|_| in_table) else {
            continue;
        };
        for quoted in column.split('`').skip(1).step_by(2) {
            let name = quoted.split('=').next().unwrap_or_default();
            let is_variable = name.starts_with(|c: char| c.is_ascii_alphabetic())
                && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
            if is_variable {
                names.insert(name.to_string());
            }
        }
    }
    names
}

/// Issue 16: when a compatible name is in use, a problem names the variable the user set (alone, or
/// beside the canonical name) — for every compatible name of every provider and of `regcreds run`.
#[test]
fn every_compatible_name_is_named_in_the_problems_it_causes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let missing = dir.path().join("missing.json");
    let missing = missing.to_str().expect("utf8 path");
    let valid_doc = r#"{"auths":{"ipsp.example":{"username":"a","password":"b"}}}"#;
    let no_auths = format!(r#"{{"r.example":{{"password":"{SECRET}"}}}}"#);
    let static_ok = [
        ("REGCREDS_STATIC_SERVER", "r.example"),
        ("REGCREDS_STATIC_USER", "u"),
        ("REGCREDS_STATIC_PASSWORD", SECRET),
        ("REGCREDS_LEADER_ELECTION", "false"),
    ];
    let run = |extra: &[(&'static str, &'static str)]| -> Vec<(&'static str, &'static str)> {
        [&static_ok[..], extra].concat()
    };
    let cases: Vec<BadInput> = vec![
        // static (upmc DOCKER_PRIVATE_REGISTRY_*)
        (
            vec!["mint"],
            vec![
                ("DOCKER_PRIVATE_REGISTRY_SERVER", "r.example"),
                ("DOCKER_PRIVATE_REGISTRY_USER", " "),
                ("DOCKER_PRIVATE_REGISTRY_PASSWORD", SECRET),
            ],
            "REGCREDS_STATIC_USER (DOCKER_PRIVATE_REGISTRY_USER): is required".into(),
        ),
        (
            vec!["mint"],
            vec![
                ("DOCKER_PRIVATE_REGISTRY_USER", "u"),
                ("DOCKER_PRIVATE_REGISTRY_PASSWORD", SECRET),
            ],
            "REGCREDS_STATIC_SERVER (DOCKER_PRIVATE_REGISTRY_SERVER): is required".into(),
        ),
        (
            vec!["mint"],
            vec![
                ("DOCKER_PRIVATE_REGISTRY_SERVER", "r.example"),
                ("DOCKER_PRIVATE_REGISTRY_USER", "u"),
            ],
            "REGCREDS_STATIC_PASSWORD (DOCKER_PRIVATE_REGISTRY_PASSWORD): is required".into(),
        ),
        // dockerhub (DOCKER_USER / DOCKER_PASSWORD)
        (
            vec!["mint"],
            vec![("DOCKER_PASSWORD", SECRET)],
            "REGCREDS_DOCKERHUB_USER (DOCKER_USER): is required".into(),
        ),
        (
            vec!["mint"],
            vec![("DOCKER_USER", "alice")],
            "REGCREDS_DOCKERHUB_PASSWORD (DOCKER_PASSWORD): is required".into(),
        ),
        // dockerconfigjson (imagepullsecret-patcher CONFIG_*)
        (
            vec!["mint"],
            vec![("CONFIG_DOCKERCONFIGJSON", &no_auths)],
            "CONFIG_DOCKERCONFIGJSON (--config-dockerconfigjson): dockerconfigjson has no".into(),
        ),
        (
            vec!["mint"],
            vec![("CONFIG_DOCKERCONFIGJSONPATH", missing)],
            "CONFIG_DOCKERCONFIGJSONPATH (--config-dockerconfigjsonpath): cannot read".into(),
        ),
        (
            vec!["mint"],
            vec![("CONFIG_DOCKERCONFIGJSON", valid_doc), ("CONFIG_SECRETNAME", "Bad_Name")],
            "CONFIG_SECRETNAME (--secretname): \"Bad_Name\" is not a valid Secret name".into(),
        ),
        // ecr (upmc awsregion / awsaccount / aws_assume_role; the SDK's AWS_ENDPOINT_URL_ECR)
        (
            vec!["mint"],
            vec![("awsaccount", "123456789012")],
            "REGCREDS_ECR_REGIONS (awsregion): is required".into(),
        ),
        (
            vec!["mint"],
            vec![("awsregion", "not a region")],
            "awsregion (--aws-region): region \"not a region\"".into(),
        ),
        (
            vec!["mint"],
            vec![("awsregion", "us-east-1"), ("awsaccount", "12")],
            "awsaccount (--aws-account): registry ID \"12\"".into(),
        ),
        (
            vec!["mint"],
            vec![("awsregion", "us-east-1"), ("aws_assume_role", "nope")],
            "aws_assume_role (--aws_assume_role): role \"nope\"".into(),
        ),
        (
            vec!["mint"],
            vec![("awsregion", "us-east-1"), ("AWS_ENDPOINT_URL_ECR", "ftp://x")],
            "AWS_ENDPOINT_URL_ECR (--aws-endpoint-url-ecr): endpoint_url \"ftp://x\"".into(),
        ),
        // gcr (upmc GCR_APPLICATION_DEFAULT_CREDENTIALS / GCR_URL / gcrurl; Google's GCE_METADATA_HOST)
        (
            vec!["mint"],
            vec![("GCR_APPLICATION_DEFAULT_CREDENTIALS", "{not json")],
            "GCR_APPLICATION_DEFAULT_CREDENTIALS (--gcr-application-default-credentials): service-account key"
                .into(),
        ),
        (
            vec!["mint"],
            vec![("GCR_APPLICATION_DEFAULT_CREDENTIALS", "{}"), ("REGCREDS_GCR_KEY_FILE", missing)],
            "GCR_APPLICATION_DEFAULT_CREDENTIALS and REGCREDS_GCR_KEY_FILE: set only one".into(),
        ),
        (
            vec!["mint"],
            vec![("GCR_URL", "ftp://gcr.example"), ("REGCREDS_GCR_USE_METADATA", "true")],
            "GCR_URL (--gcr-url): registry".into(),
        ),
        (
            vec!["mint"],
            vec![("gcrurl", "ftp://gcr.example"), ("REGCREDS_GCR_USE_METADATA", "true")],
            "gcrurl (--gcrurl): registry".into(),
        ),
        (
            vec!["mint"],
            vec![("REGCREDS_GCR_USE_METADATA", "true"), ("GCE_METADATA_HOST", "/metadata")],
            "GCE_METADATA_HOST (--gce-metadata-host): metadata URL".into(),
        ),
        // acr (upmc ACR_URL / ACR_CLIENT_ID / ACR_PASSWORD)
        (
            vec!["mint"],
            vec![("ACR_CLIENT_ID", "u"), ("ACR_PASSWORD", SECRET)],
            "REGCREDS_ACR_REGISTRY (ACR_URL): is required".into(),
        ),
        (
            vec!["mint"],
            vec![("ACR_URL", "r.azurecr.io"), ("ACR_PASSWORD", SECRET)],
            "REGCREDS_ACR_CLIENT_ID (ACR_CLIENT_ID): is required".into(),
        ),
        (
            vec!["mint"],
            vec![
                ("ACR_URL", "r.azurecr.io"),
                ("ACR_CLIENT_ID", "u"),
                ("REGCREDS_ACR_AUTH", "static"),
            ],
            "REGCREDS_ACR_CLIENT_SECRET (ACR_PASSWORD): is required".into(),
        ),
        (
            vec!["mint"],
            vec![("ACR_URL", "r.azurecr.io"), ("ACR_CLIENT_ID", "a:b"), ("ACR_PASSWORD", SECRET)],
            "ACR_CLIENT_ID (--acr-compat-client-id): username must not contain ':'".into(),
        ),
        (
            vec!["mint"],
            vec![("ACR_URL", "ftp://r"), ("ACR_CLIENT_ID", "u"), ("ACR_PASSWORD", SECRET)],
            "ACR_URL (--acr-url): registry \"ftp://r\"".into(),
        ),
        // regcreds run (imagepullsecret-patcher CONFIG_*)
        (
            vec!["run"],
            run(&[("CONFIG_SERVICEACCOUNTS", "Bad_Name")]),
            "CONFIG_SERVICEACCOUNTS (--serviceaccounts): \"Bad_Name\"".into(),
        ),
        (
            vec!["run"],
            run(&[("CONFIG_ALLSERVICEACCOUNT", "maybe")]),
            "CONFIG_ALLSERVICEACCOUNT (--allserviceaccount): \"maybe\" is not a boolean".into(),
        ),
        (
            vec!["run"],
            run(&[("CONFIG_EXCLUDED_NAMESPACES", "team-[")]),
            "CONFIG_EXCLUDED_NAMESPACES (--excluded-namespaces): invalid glob pattern".into(),
        ),
        (
            vec!["run"],
            run(&[("CONFIG_FORCE", "maybe")]),
            "CONFIG_FORCE (--config-force): \"maybe\" is not a boolean".into(),
        ),
        (
            vec!["run"],
            run(&[("CONFIG_MANAGEDONLY", "maybe")]),
            "CONFIG_MANAGEDONLY (--managedonly): \"maybe\" is not a boolean".into(),
        ),
        (
            vec!["run"],
            run(&[("CONFIG_MANAGEDONLY", "true"), ("REGCREDS_FORCE", "true")]),
            "CONFIG_MANAGEDONLY (--managedonly): \"true\" contradicts REGCREDS_FORCE=true".into(),
        ),
        (
            vec!["run"],
            run(&[("CONFIG_RUNONCE", "maybe")]),
            "CONFIG_RUNONCE (--runonce): \"maybe\" is not a boolean".into(),
        ),
        (
            vec!["run"],
            run(&[("CONFIG_RUNONCE", "true"), ("REGCREDS_HEAL_PODS", "true")]),
            "REGCREDS_HEAL_PODS (--heal-pods): healing watches pods and needs a running controller, but \
             REGCREDS_RUN_ONCE (CONFIG_RUNONCE) makes one pass"
                .into(),
        ),
        (
            vec!["run", "--once"],
            run(&[("REGCREDS_HEAL_PODS", "true")]),
            "REGCREDS_HEAL_PODS (--heal-pods): healing watches pods".into(),
        ),
        (
            vec!["run"],
            run(&[("CONFIG_LOOP_DURATION", "ten")]),
            "CONFIG_LOOP_DURATION (--loop-duration): \"ten\" is not a duration".into(),
        ),
        (
            vec!["run"],
            run(&[("CONFIG_LOOP_DURATION", "500ms")]),
            "CONFIG_LOOP_DURATION (--loop-duration): \"500ms\" is shorter than 1s".into(),
        ),
        (
            vec!["mint"],
            run(&[("CONFIG_DEBUG", "maybe")]),
            "CONFIG_DEBUG (--debug): \"maybe\" is not a boolean".into(),
        ),
    ];
    // Each compatible name is used by some case and named by some problem (set wrong, or missing while
    // the provider is configured through compatible names).
    let uncovered: Vec<String> = readme_compatible_names()
        .into_iter()
        .filter(|name| {
            let used = cases.iter().any(|(_, env, _)| env.iter().any(|(k, _)| k == name));
            let named = cases
                .iter()
                .any(|(_, _, expected)| expected.contains(name.as_str()));
            !(used && named)
        })
        .collect();
    assert!(
        uncovered.is_empty(),
        "compatible names (README) without a case: {uncovered:?}"
    );
    assert_each_exits_2(&cases);
}

/// Issue 16: a schedule that never fires is refused; every file input is read up to 1 MiB, so
/// `/dev/zero` or a 100 MB file fails fast naming the variable; a registry key carrying userinfo or a
/// query string is never echoed.
#[test]
fn bad_schedules_oversized_files_and_registries_with_credentials_fail_fast_and_never_echo_a_secret() {
    let dir = tempfile::tempdir().expect("tempdir");
    let big = dir.path().join("big");
    std::fs::File::create(&big)
        .and_then(|f| f.set_len(100 * 1024 * 1024))
        .expect("sparse 100 MB file");
    let big = big.to_str().expect("utf8 path");
    let zero = "/dev/zero";
    let static_ok = [
        ("REGCREDS_STATIC_SERVER", "r.example"),
        ("REGCREDS_STATIC_USER", "u"),
        ("REGCREDS_STATIC_PASSWORD", "pw"),
    ];
    let with = |extra: &[(&'static str, &'static str)]| -> Vec<(&'static str, &'static str)> {
        [&static_ok[..], extra].concat()
    };
    let query_key =
        format!(r#"{{"auths":{{"r.example/?token={SECRET}":{{"username":"u","password":"p"}}}}}}"#);
    let userinfo_key = format!(
        r#"{{"auths":{{"https://u:{SECRET}@r.example/?t={SECRET}":{{"username":"u","password":"p"}}}}}}"#
    );
    let server_with_query = format!("r.example/v2/?token={SECRET}");
    let acr_with_query = format!("r.azurecr.io?sig={SECRET}");
    let gcr_with_query = format!("gcr.io#{SECRET}");
    let ecr_with_userinfo = format!("ftp://u:{SECRET}@ecr.example");
    let cases: Vec<BadInput> = vec![
        (
            vec!["mint"],
            with(&[("REGCREDS_STATIC_SCHEDULE", "0 0 0 30 2 *")]),
            "REGCREDS_STATIC_SCHEDULE (--static-schedule): invalid cron expression \"0 0 0 30 2 *\": never fires"
                .into(),
        ),
        (
            vec!["mint"],
            vec![("REGCREDS_DOCKERCONFIGJSON_PATH", zero)],
            "REGCREDS_DOCKERCONFIGJSON_PATH (--dockerconfigjson-path): cannot read /dev/zero: it is larger than 1 MiB"
                .into(),
        ),
        (
            vec!["mint"],
            vec![("CONFIG_DOCKERCONFIGJSONPATH", big)],
            format!("CONFIG_DOCKERCONFIGJSONPATH (--config-dockerconfigjsonpath): cannot read {big}: it is larger than 1 MiB"),
        ),
        (
            vec!["mint"],
            vec![("REGCREDS_GCR_KEY_FILE", zero)],
            "REGCREDS_GCR_KEY_FILE (--gcr-key-file): service-account key: cannot read /dev/zero: it is larger".into(),
        ),
        (
            vec!["mint"],
            vec![("REGCREDS_GCR_HOSTS", "gcr.io"), ("GOOGLE_APPLICATION_CREDENTIALS", big)],
            format!("GOOGLE_APPLICATION_CREDENTIALS: service-account key: cannot read {big}: it is larger"),
        ),
        (
            vec!["mint"],
            vec![
                ("ACR_URL", "r.azurecr.io"),
                ("ACR_CLIENT_ID", "u"),
                ("ACR_PASSWORD", "pw"),
                ("REGCREDS_ACR_CA_FILE", zero),
            ],
            "REGCREDS_ACR_CA_FILE (--acr-ca-file): CA file: cannot read /dev/zero: it is larger".into(),
        ),
        (
            vec!["mint"],
            vec![
                ("REGCREDS_ECR_REGIONS", "us-east-1"),
                ("AWS_ROLE_ARN", "arn:aws:iam::123456789012:role/r"),
                ("AWS_WEB_IDENTITY_TOKEN_FILE", zero),
            ],
            "AWS_WEB_IDENTITY_TOKEN_FILE: cannot read /dev/zero: it is larger".into(),
        ),
        (
            vec!["mint"],
            vec![
                ("REGCREDS_ACR_REGISTRY", "r.azurecr.io"),
                ("REGCREDS_ACR_AUTH", "workload-identity"),
                ("AZURE_FEDERATED_TOKEN_FILE", big),
            ],
            format!("AZURE_FEDERATED_TOKEN_FILE: cannot read {big}: it is larger"),
        ),
        (
            vec!["mint"],
            vec![
                ("REGCREDS_GHCR_APP_ID", "123"),
                ("REGCREDS_GHCR_INSTALLATION_ID", "456"),
                ("REGCREDS_GHCR_PRIVATE_KEY_FILE", zero),
            ],
            "REGCREDS_GHCR_PRIVATE_KEY_FILE (--ghcr-private-key-file): private key file: cannot read /dev/zero: it is larger"
                .into(),
        ),
        (
            vec!["mint"],
            vec![("REGCREDS_QUAY_ROBOT", "org+bot"), ("REGCREDS_QUAY_TOKEN_FILE", big)],
            format!("REGCREDS_QUAY_TOKEN_FILE (--quay-token-file): ServiceAccount token file: cannot read {big}: it is larger"),
        ),
        (
            vec!["check"],
            with(&[("REGCREDS_CHECK_CA_FILE", zero)]),
            "REGCREDS_CHECK_CA_FILE (--check-ca-file): cannot read /dev/zero: it is larger".into(),
        ),
        (
            vec!["mint"],
            vec![
                ("REGCREDS_STATIC_SERVER", &server_with_query),
                ("REGCREDS_STATIC_USER", "u"),
                ("REGCREDS_STATIC_PASSWORD", "pw"),
            ],
            "registry \"r.example/v2/?***\" must not contain a query string".into(),
        ),
        (
            vec!["mint"],
            vec![("REGCREDS_DOCKERCONFIGJSON", &query_key)],
            "registry \"r.example/?***\" must not contain a query string".into(),
        ),
        (
            vec!["mint"],
            vec![("REGCREDS_DOCKERCONFIGJSON", &userinfo_key)],
            "registry \"https://***@r.example/?***\" must not contain credentials".into(),
        ),
        (
            vec!["mint"],
            vec![("ACR_URL", &acr_with_query), ("ACR_CLIENT_ID", "u"), ("ACR_PASSWORD", "pw")],
            "r.azurecr.io?***".into(),
        ),
        (
            vec!["mint"],
            vec![("REGCREDS_GCR_USE_METADATA", "true"), ("REGCREDS_GCR_HOSTS", &gcr_with_query)],
            "gcr.io?***".into(),
        ),
        (
            vec!["mint"],
            vec![("REGCREDS_ECR_REGIONS", "us-east-1"), ("REGCREDS_ECR_ENDPOINT_URL", &ecr_with_userinfo)],
            "ftp://***@ecr.example".into(),
        ),
    ];
    assert_each_exits_2(&cases);
}

fn base64_encode(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}
