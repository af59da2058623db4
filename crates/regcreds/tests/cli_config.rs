//! The `regcreds` command as a user runs it: environment in, exit code and messages out.

use std::process::{Command, Output};

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
            "REGCREDS_DOCKERHUB_PASSWORD (--dockerhub-password): is required",
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

fn base64_encode(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}
