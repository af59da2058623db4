//! The `ghcr` and `quay` providers as a user runs them: `regcreds mint` against the HTTPS fakes of
//! GitHub and Quay (tests/fixtures/fake_github_quay.py), `config check`, and one clear line per bad
//! input naming the variable, without ever echoing a key or token.

use regcreds_fakes::github_quay as fake;
use std::{
    path::Path,
    process::{Command, Output},
};

use base64::{Engine, engine::general_purpose::STANDARD};
use fake::{FakeGithubQuay, SA_JWT, generate_app_key};

const SECRET: &str = "Top-Secret-Pa55";
const GITHUB_TOKEN: &str = "ghs_CliTestInstallationToken0123456789";
const QUAY_TOKEN: &str = "quay-cli-robot-token";
const ROBOT: &str = "myorg+puller";

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

fn path(p: &Path) -> &str {
    p.to_str().expect("utf8 path")
}

#[test]
fn mint_ghcr_and_quay_against_the_fakes_prints_valid_dockerconfigjson() {
    let keys = tempfile::tempdir().expect("tempdir");
    generate_app_key(keys.path());
    let token_file = keys.path().join("sa-token");
    std::fs::write(&token_file, SA_JWT).expect("token file");
    let public = keys.path().join("public.pem");
    let fake = FakeGithubQuay::start(&[
        ("FAKE_GITHUB_PUBLIC_KEY", path(&public)),
        ("FAKE_GITHUB_TOKEN", GITHUB_TOKEN),
        ("FAKE_QUAY_SA_TOKEN", SA_JWT),
        ("FAKE_QUAY_TOKEN", QUAY_TOKEN),
    ]);
    let ca = fake.ca_file();
    let key = keys.path().join("pkcs1.pem");
    let env = [
        ("REGCREDS_GHCR_APP_ID", "123456"),
        ("REGCREDS_GHCR_INSTALLATION_ID", "987654"),
        ("REGCREDS_GHCR_PRIVATE_KEY_FILE", path(&key)),
        ("REGCREDS_GHCR_API_URL", fake.url.as_str()),
        ("REGCREDS_GHCR_CA_FILE", path(&ca)),
        ("REGCREDS_QUAY_ROBOT", ROBOT),
        ("REGCREDS_QUAY_REGISTRY", "quay.example.com"),
        ("REGCREDS_QUAY_TOKEN_FILE", path(&token_file)),
        ("REGCREDS_QUAY_FEDERATION_URL", fake.url.as_str()),
        ("REGCREDS_QUAY_CA_FILE", path(&ca)),
    ];
    for (provider, registry, user, password) in [
        ("ghcr", "ghcr.io", "x-access-token", GITHUB_TOKEN),
        ("quay", "quay.example.com", ROBOT, QUAY_TOKEN),
    ] {
        let out = regcreds(&["mint", "--provider", provider, "--show-secrets"], &env);
        assert!(out.status.success(), "{provider}: {}", text(&out.stderr));
        let doc: serde_json::Value = serde_json::from_slice(&out.stdout).expect("stdout is JSON");
        assert_eq!(doc["auths"].as_object().map(|a| a.len()), Some(1), "{doc}");
        let entry = &doc["auths"][registry];
        assert_eq!(entry["username"], user, "{doc}");
        assert_eq!(entry["password"], password, "{doc}");
        assert_eq!(entry["auth"], STANDARD.encode(format!("{user}:{password}")));
        let header = text(&out.stderr);
        assert!(
            header.contains(&format!(
                "# provider {provider} -> Secret {provider}-secret (1 registries, expires 20"
            )),
            "{header}"
        );

        let masked = regcreds(&["mint", "--provider", provider], &env);
        assert!(masked.status.success());
        let all = text(&masked.stdout) + &text(&masked.stderr);
        assert!(!all.contains(password), "{all}");
        assert!(all.contains(registry), "{all}");
    }
    assert_eq!(
        fake.requests_to("/app/installations/987654/access_tokens").len(),
        2
    );
    assert_eq!(fake.requests_to("/oauth2/federation/robot/token").len(), 2);

    // ghcr.io may accept an App token at login and deny the pull: the App provider needs a probe.
    let unprobed = regcreds(&["config", "check"], &env);
    assert_eq!(unprobed.status.code(), Some(2), "{}", text(&unprobed.stdout));
    let problem = text(&unprobed.stderr);
    assert!(
        problem.contains("REGCREDS_CHECK_IMAGES")
            && problem.contains("the ghcr provider needs a probe image on ghcr.io"),
        "{problem}"
    );
    let mut env = env.to_vec();
    env.push(("REGCREDS_CHECK_IMAGES", "ghcr.io/acme/private-app:1"));
    let check = regcreds(&["config", "check"], &env);
    let stdout = text(&check.stdout);
    assert!(check.status.success(), "{stdout}{}", text(&check.stderr));
    assert!(
        stdout.contains("provider ghcr              enabled  (REGCREDS_GHCR_APP_ID is set): ghcr.io as x-access-token from GitHub App 123456"),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!(
            "provider quay              enabled  (REGCREDS_QUAY_ROBOT is set): quay.example.com as robot {ROBOT} by federation"
        )),
        "{stdout}"
    );
}

#[test]
fn a_refused_exchange_fails_the_mint_with_the_reason_and_no_token() {
    let dir = tempfile::tempdir().expect("tempdir");
    let token_file = dir.path().join("sa-token");
    std::fs::write(&token_file, SA_JWT).expect("token file");
    let fake = FakeGithubQuay::start(&[("FAKE_QUAY_SA_TOKEN", "a-different-token")]);
    let ca = fake.ca_file();
    let out = regcreds(
        &["mint", "--provider", "quay"],
        &[
            ("REGCREDS_QUAY_ROBOT", ROBOT),
            ("REGCREDS_QUAY_TOKEN_FILE", path(&token_file)),
            ("REGCREDS_QUAY_FEDERATION_URL", fake.url.as_str()),
            ("REGCREDS_QUAY_CA_FILE", path(&ca)),
        ],
    );
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("error: provider quay: robot federation for myorg+puller at")
            && stderr.contains(
                "HTTP 400 \"Invalid token: Signature verification failed\": Quay refused the ServiceAccount \
                 token for myorg+puller"
            ),
        "{stderr}"
    );
    assert!(!stderr.contains(SA_JWT), "{stderr}");
}

/// Each bad input exits 2 with its own message naming the variable, and never echoes a secret.
#[test]
fn every_bad_ghcr_or_quay_input_exits_2_naming_the_variable() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = |name: &str, content: Option<&str>| {
        let file = dir.path().join(name);
        if let Some(content) = content {
            std::fs::write(&file, content).expect("write");
        }
        path(&file).to_string()
    };
    let missing = file("missing.pem", None);
    let pem = format!(
        "-----BEGIN CERTIFICATE-----\n{}\n-----END CERTIFICATE-----\n",
        STANDARD.encode(SECRET)
    );
    let certificate = file("cert.pem", Some(&pem));
    let not_jwt = file("not-a-jwt", Some(SECRET));
    let sa_token = file("token", Some(SA_JWT));
    let inline_garbage = format!("MIIEow{SECRET}");
    generate_app_key(dir.path());
    let key = file("pkcs1.pem", None);
    let (missing, certificate, not_jwt, sa_token, key) = (
        missing.as_str(),
        certificate.as_str(),
        not_jwt.as_str(),
        sa_token.as_str(),
        key.as_str(),
    );
    let no_certificate =
        format!("REGCREDS_GHCR_CA_FILE (--ghcr-ca-file): CA file {not_jwt} holds no PEM certificate");
    fn with_app<'a>(extra: &[(&'static str, &'a str)]) -> Vec<(&'static str, &'a str)> {
        let mut env = vec![
            ("REGCREDS_GHCR_APP_ID", "123456"),
            ("REGCREDS_GHCR_INSTALLATION_ID", "987654"),
        ];
        env.extend_from_slice(extra);
        env
    }

    let cases: Vec<(Vec<(&str, &str)>, &str)> = vec![
        (
            vec![("REGCREDS_GHCR_APP_ID", "123456")],
            "REGCREDS_GHCR_INSTALLATION_ID (--ghcr-installation-id): is required",
        ),
        (
            vec![
                ("REGCREDS_GHCR_APP_ID", "123456"),
                ("REGCREDS_GHCR_INSTALLATION_ID", "1"),
            ],
            "REGCREDS_GHCR_PRIVATE_KEY_FILE (--ghcr-private-key-file): is required (or REGCREDS_GHCR_PRIVATE_KEY)",
        ),
        (
            vec![
                ("REGCREDS_GHCR_APP_ID", "my-app"),
                ("REGCREDS_GHCR_INSTALLATION_ID", "1"),
                ("REGCREDS_GHCR_PRIVATE_KEY_FILE", missing),
            ],
            "REGCREDS_GHCR_APP_ID (--ghcr-app-id): app ID \"my-app\" is neither a numeric GitHub App ID nor a client ID",
        ),
        (
            vec![
                ("REGCREDS_GHCR_APP_ID", "1"),
                ("REGCREDS_GHCR_INSTALLATION_ID", "org-installation"),
                ("REGCREDS_GHCR_PRIVATE_KEY_FILE", missing),
            ],
            "REGCREDS_GHCR_INSTALLATION_ID (--ghcr-installation-id): installation ID \"org-installation\" is not a positive number",
        ),
        (
            with_app(&[("REGCREDS_GHCR_PRIVATE_KEY_FILE", missing)]),
            "REGCREDS_GHCR_PRIVATE_KEY_FILE (--ghcr-private-key-file): private key file: cannot read",
        ),
        (
            with_app(&[("REGCREDS_GHCR_PRIVATE_KEY_FILE", certificate)]),
            "holds a CERTIFICATE, not the GitHub App's RSA private key",
        ),
        (
            with_app(&[("REGCREDS_GHCR_PRIVATE_KEY", inline_garbage.as_str())]),
            "REGCREDS_GHCR_PRIVATE_KEY (--ghcr-private-key): private key (inline) is not a PEM private key",
        ),
        (
            with_app(&[
                ("REGCREDS_GHCR_PRIVATE_KEY", inline_garbage.as_str()),
                ("REGCREDS_GHCR_PRIVATE_KEY_FILE", missing),
            ]),
            "REGCREDS_GHCR_PRIVATE_KEY_FILE (--ghcr-private-key-file): set only one of",
        ),
        (
            with_app(&[
                ("REGCREDS_GHCR_PRIVATE_KEY_FILE", missing),
                ("REGCREDS_GHCR_PERMISSIONS", "packages"),
            ]),
            "REGCREDS_GHCR_PERMISSIONS (--ghcr-permissions): \"packages\" is not name:level",
        ),
        (
            with_app(&[
                ("REGCREDS_GHCR_PRIVATE_KEY_FILE", key),
                ("REGCREDS_GHCR_CA_FILE", not_jwt),
            ]),
            no_certificate.as_str(),
        ),
        (
            vec![("REGCREDS_QUAY_REGISTRY", "quay.io")],
            "REGCREDS_QUAY_ROBOT (--quay-robot): is required",
        ),
        (
            vec![
                ("REGCREDS_QUAY_ROBOT", "puller"),
                ("REGCREDS_QUAY_TOKEN_FILE", sa_token),
            ],
            "REGCREDS_QUAY_ROBOT (--quay-robot): robot account \"puller\": must be the full robot name",
        ),
        (
            vec![
                ("REGCREDS_QUAY_ROBOT", ROBOT),
                ("REGCREDS_QUAY_TOKEN_FILE", missing),
            ],
            "REGCREDS_QUAY_TOKEN_FILE (--quay-token-file): ServiceAccount token file: cannot read",
        ),
        (
            vec![
                ("REGCREDS_QUAY_ROBOT", ROBOT),
                ("REGCREDS_QUAY_TOKEN_FILE", not_jwt),
            ],
            "does not hold a JWT",
        ),
        (
            vec![
                ("REGCREDS_QUAY_ROBOT", ROBOT),
                ("REGCREDS_QUAY_TOKEN_FILE", sa_token),
                ("REGCREDS_QUAY_FEDERATION_URL", "quay.example.com"),
            ],
            "REGCREDS_QUAY_FEDERATION_URL (--quay-federation-url): federation URL \"quay.example.com\"",
        ),
        (
            vec![
                ("REGCREDS_QUAY_ROBOT", ROBOT),
                ("REGCREDS_QUAY_TOKEN_FILE", sa_token),
                ("REGCREDS_QUAY_REGISTRY", "quay.io/myorg"),
            ],
            "REGCREDS_QUAY_REGISTRY (--quay-registry): registry \"quay.io/myorg\"",
        ),
        (
            vec![
                ("REGCREDS_QUAY_ROBOT", ROBOT),
                ("REGCREDS_QUAY_TOKEN_FILE", sa_token),
                ("REGCREDS_QUAY_CA_FILE", "/dev/zero"),
            ],
            "REGCREDS_QUAY_CA_FILE (--quay-ca-file): CA file: cannot read /dev/zero: it is larger than 1 MiB",
        ),
    ];
    for (env, expected) in &cases {
        let out = regcreds(&["mint"], env);
        let stderr = text(&out.stderr);
        assert_eq!(
            out.status.code(),
            Some(2),
            "{env:?} should exit 2; stderr: {stderr}"
        );
        assert!(
            stderr.contains(expected),
            "{env:?}: expected {expected:?} in:\n{stderr}"
        );
        assert!(
            stderr.lines().all(|l| l.starts_with("invalid configuration: ")),
            "one line per problem: {stderr}"
        );
        let all = stderr + &text(&out.stdout);
        assert!(!all.contains(SECRET), "secret leaked for {env:?}: {all}");
        assert!(
            !all.contains(&STANDARD.encode(SECRET)),
            "secret leaked for {env:?}: {all}"
        );
    }
}
