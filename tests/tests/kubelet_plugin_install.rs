//! The chart's kubelet plugin (issue #27) on the node's side: its install container's command
//! (`regcreds kubelet-plugin install`, the binary under test) is run here with the variables the chart gives
//! it, against temporary directories, and the file it writes is
//! checked the way the kubelet checks it (`manifests::kubelet_config_problems`: strict decoding, then
//! `validateCredentialProviderConfig` of `k8s.io/kubernetes@v1.37.2/pkg/credentialprovider/plugin/config.go`):
//!
//! - the binary and a config the kubelet accepts, root-only, idempotent, nothing left behind, values the
//!   kubelet's YAML cannot carry refused;
//! - in ServiceAccount token mode, `tokenAttributes` as the kubelet wants them;
//! - the example config for nodes set up by hand (`config/kubelet-credential-provider.yaml`).
//!
//! What the chart renders: `deploy_kubelet_plugin.rs`; token mode's values and grant:
//! `kubelet_plugin_token_mode.rs`.
//!
//! Without helm these checks print a note and pass (under `CI` they fail). The DaemonSet itself runs on
//! the real node in `node_credential_provider.rs`.

use std::{
    collections::BTreeMap,
    os::unix::fs::PermissionsExt,
    path::{Path, PathBuf},
    process::Command,
};

use regcreds_testkit::{
    manifests::{
        ACR_WI, KNOWN_ENV, QUAY, arr, helm_or_note, init_container, kubelet_config_problems,
        plugin_config_map, render_plugin, repo, run, s, the, token_mode,
    },
    regcreds_binary,
};
use serde_json::{Value, json};

// === the example for nodes set up by hand ===

#[test]
fn the_example_config_passes_the_kubelets_checks_and_names_variables_regcreds_reads() {
    let path = repo().join("config/kubelet-credential-provider.yaml");
    let text = std::fs::read_to_string(&path).expect("config/kubelet-credential-provider.yaml");
    let config: Value = serde_saphyr::from_str(&text).expect("YAML");
    assert_eq!(kubelet_config_problems(&config), Vec::<String>::new());
    assert_eq!(s(&config, "/providers/0/name"), "regcreds");
    assert_eq!(arr(&config, "/providers/0/args"), [json!("credential-provider")]);
    for e in arr(&config, "/providers/0/env") {
        assert!(KNOWN_ENV.contains(&s(e, "/name")), "{e}");
    }
    // Its commented tokenAttributes block, uncommented, passes too.
    let uncommented = text
        .replace("\n    # tokenAttributes:", "\n    tokenAttributes:")
        .replace("\n    #   ", "\n      ");
    let config: Value = serde_saphyr::from_str(&uncommented).expect("YAML");
    assert_eq!(
        s(
            &config,
            "/providers/0/tokenAttributes/serviceAccountTokenAudience"
        ),
        "sts.amazonaws.com",
        "the commented example is there"
    );
    assert_eq!(kubelet_config_problems(&config), Vec::<String>::new());
}

// === the install container, run as in the pod ===

/// The install container's environment with its host paths under `host`, its config head from `files`
/// and each secretKeyRef resolved from `secrets` ((Secret, key) → value), as the kubelet would.
fn install_env(
    install: &Value,
    host: &Path,
    files: &Path,
    secrets: &BTreeMap<(&str, &str), &str>,
) -> Vec<(String, String)> {
    let on_host = |p: &str| host.join(p.trim_start_matches('/')).display().to_string();
    arr(install, "/env")
        .iter()
        .map(|e| {
            let var = s(e, "/name").to_string();
            let value = match var.as_str() {
                "PLUGIN_BIN_DIR" | "PLUGIN_CONFIG_DIR" | "PLUGIN_SOURCE" => on_host(s(e, "/value")),
                "PLUGIN_CONFIG_HEAD" => {
                    let in_pod = Path::new(s(e, "/value"));
                    files
                        .join(in_pod.file_name().expect("file"))
                        .display()
                        .to_string()
                }
                _ => match e.pointer("/valueFrom/secretKeyRef") {
                    Some(r) => secrets
                        .get(&(s(r, "/name"), s(r, "/key")))
                        .unwrap_or_else(|| panic!("no Secret {r} for the test"))
                        .to_string(),
                    None => s(e, "/value").to_string(),
                },
            };
            (var, value)
        })
        .collect()
}

/// Runs the install container's command from `objects` (`/regcreds kubelet-plugin install`: here the
/// binary under test) with `host` standing for the node's root and the ConfigMap's files where the pod
/// mounts them. Returns stdout, or stderr as the error.
fn run_install(
    objects: &[Value],
    host: &Path,
    secrets: &BTreeMap<(&str, &str), &str>,
) -> Result<String, String> {
    let ds = the(objects, "DaemonSet", "plugin");
    let install = init_container(ds, "install");
    let work = tempfile::tempdir().expect("temp dir");
    let files = work.path().join("files");
    std::fs::create_dir_all(&files).expect("files");
    let cm = plugin_config_map(objects);
    for (file, content) in cm.get("data").and_then(Value::as_object).expect("data") {
        std::fs::write(files.join(file), content.as_str().expect("text")).expect("write");
    }
    let command: Vec<&str> = arr(install, "/command")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert_eq!(command, ["/regcreds", "kubelet-plugin", "install"]);
    let mounted = arr(install, "/volumeMounts")
        .iter()
        .any(|m| s(m, "/name") == "files" && s(m, "/mountPath") == "/etc/regcreds/kubelet-plugin");
    assert!(mounted, "the ConfigMap is mounted where PLUGIN_CONFIG_HEAD looks");
    let mut cmd = Command::new(regcreds_binary());
    cmd.args(&command[1..]).env_clear();
    for (var, value) in install_env(install, host, &files, secrets) {
        cmd.env(var, value);
    }
    run(cmd, None)
}

/// The directories the DaemonSet's hostPath volumes would create (`DirectoryOrCreate`), under `host`.
fn create_host_dirs(objects: &[Value], host: &Path) {
    let ds = the(objects, "DaemonSet", "plugin");
    for v in arr(ds, "/spec/template/spec/volumes") {
        if let Some(path) = v.pointer("/hostPath/path").and_then(Value::as_str) {
            std::fs::create_dir_all(host.join(path.trim_start_matches('/'))).expect("host dir");
        }
    }
}

/// Files under `dir` whose names start with a dot (the installer's temporary files).
fn leftovers(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir)
        .expect("read dir")
        .map(|e| e.expect("entry").path())
        .filter(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with('.'))
        })
        .collect()
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).expect("metadata").permissions().mode() & 0o7777
}

#[test]
fn the_install_command_writes_the_binary_and_a_config_the_kubelet_accepts() {
    let Some(helm) = helm_or_note() else { return };
    let objects = render_plugin(
        &helm,
        &[
            "providers.static.enabled=true",
            "providers.static.server=registry.example.com:5000",
            "providers.static.existingSecret=st",
            "providers.ecr.enabled=true",
            "providers.ecr.regions={eu-west-1}",
            "providers.ghcr.enabled=true",
            "providers.ghcr.appId=1",
            "providers.ghcr.installationId=2",
            "providers.ghcr.existingSecret=gh",
            "checks.images={ghcr.io/my-org/app:1}",
            "kubeletPlugin.defaultCacheDuration=30m",
            "kubeletPlugin.env[0].name=HTTPS_PROXY",
            "kubeletPlugin.env[0].value=http://proxy.example:3128",
            "kubeletPlugin.env[1].name=PATH",
            "kubeletPlugin.env[1].valueFrom.secretKeyRef.name=odd",
            "kubeletPlugin.env[1].valueFrom.secretKeyRef.key=path",
        ],
    );
    let pem = "-----BEGIN RSA PRIVATE KEY-----\nMIIB\\x\"y\n-----END RSA PRIVATE KEY-----\n";
    let secrets = BTreeMap::from([
        (("st", "username"), "puller"),
        (("st", "password"), "p\"a\\ss: #word\twith tab"),
        (("regcreds-dockerhub", "username"), "hubber"),
        (("regcreds-dockerhub", "password"), "dckr_pat_123"),
        (("gh", "private-key.pem"), pem),
        (("odd", "path"), "/opt/bin:/usr/bin"),
    ]);
    let host = tempfile::tempdir().expect("host");
    create_host_dirs(&objects, host.path());
    let binary = host.path().join("regcreds");
    std::fs::write(&binary, b"\x7fELF not really").expect("binary");
    let out = run_install(&objects, host.path(), &secrets).unwrap_or_else(|e| panic!("{e}"));
    assert!(out.contains("written"), "{out}");

    let bin_dir = host.path().join("var/lib/regcreds/bin");
    let config_dir = host.path().join("var/lib/regcreds");
    let installed = bin_dir.join("regcreds");
    assert_eq!(
        std::fs::read(&installed).expect("installed"),
        b"\x7fELF not really"
    );
    assert_eq!(mode(&installed), 0o755, "executable by the kubelet");
    let config_path = config_dir.join("credential-provider-config.yaml");
    assert_eq!(mode(&config_path), 0o600, "root-only: it holds credentials");
    assert!(leftovers(&bin_dir).is_empty() && leftovers(&config_dir).is_empty());

    let text = std::fs::read_to_string(&config_path).expect("config");
    let config: Value = serde_saphyr::from_str(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    assert_eq!(kubelet_config_problems(&config), Vec::<String>::new(), "{text}");
    let provider = &arr(&config, "/providers")[0];
    assert_eq!(s(provider, "/name"), "regcreds");
    assert_eq!(s(provider, "/apiVersion"), "credentialprovider.kubelet.k8s.io/v1");
    assert_eq!(arr(provider, "/args"), [json!("credential-provider")]);
    assert_eq!(s(provider, "/defaultCacheDuration"), "30m");
    assert_eq!(
        arr(provider, "/matchImages"),
        [
            json!("registry.example.com:5000"),
            json!("docker.io"),
            json!("*.dkr.ecr.eu-west-1.amazonaws.com"),
            json!("ghcr.io")
        ]
    );
    let env: Vec<(&str, &str)> = arr(provider, "/env")
        .iter()
        .map(|e| (s(e, "/name"), s(e, "/value")))
        .collect();
    assert_eq!(
        env,
        [
            ("REGCREDS_STATIC_SERVER", "registry.example.com:5000"),
            ("REGCREDS_STATIC_USER", "puller"),
            ("REGCREDS_STATIC_PASSWORD", "p\"a\\ss: #word\twith tab"),
            ("REGCREDS_DOCKERHUB_USER", "hubber"),
            ("REGCREDS_DOCKERHUB_PASSWORD", "dckr_pat_123"),
            ("REGCREDS_ECR_REGIONS", "eu-west-1"),
            ("REGCREDS_GHCR_APP_ID", "1"),
            ("REGCREDS_GHCR_INSTALLATION_ID", "2"),
            ("REGCREDS_GHCR_PRIVATE_KEY", pem),
            ("REGCREDS_GHCR_PERMISSIONS", "packages:read"),
            ("REGCREDS_CHECK_IMAGES", "ghcr.io/my-org/app:1"),
            ("HTTPS_PROXY", "http://proxy.example:3128"),
            ("PATH", "/opt/bin:/usr/bin"),
        ]
    );

    // Again: nothing changes, nothing is left behind.
    let out = run_install(&objects, host.path(), &secrets).unwrap_or_else(|e| panic!("{e}"));
    assert!(
        out.contains("binary") && out.contains("config") && !out.contains("written"),
        "both up to date: {out}"
    );
    assert_eq!(std::fs::read_to_string(&config_path).expect("config"), text);

    // A new image (another binary of the same size): the binary is replaced, the config left alone.
    std::fs::write(&binary, b"\x7fELF really not").expect("binary");
    let out = run_install(&objects, host.path(), &secrets).unwrap_or_else(|e| panic!("{e}"));
    assert!(
        out.contains(&format!("binary {} written", installed.display())),
        "{out}"
    );
    assert!(
        out.contains(&format!("config {} is up to date", config_path.display())),
        "{out}"
    );
    assert_eq!(
        std::fs::read(&installed).expect("installed"),
        b"\x7fELF really not"
    );
    assert!(leftovers(&bin_dir).is_empty() && leftovers(&config_dir).is_empty());

    // A value the kubelet's YAML cannot carry is refused; the installed config stays as it was.
    let mut bad = secrets.clone();
    bad.insert(("st", "password"), "windows\r\nline");
    let e = run_install(&objects, host.path(), &bad).expect_err("carriage return");
    assert!(
        e.contains("REGCREDS_STATIC_PASSWORD contains control characters"),
        "{e}"
    );
    assert_eq!(std::fs::read_to_string(&config_path).expect("config"), text);
    assert!(leftovers(&bin_dir).is_empty() && leftovers(&config_dir).is_empty());

    // Without variables the list is empty, which the kubelet accepts too; one directory for both works.
    let objects = render_plugin(
        &helm,
        &[
            "secretMode.enabled=false",
            "providers.dockerhub.enabled=false",
            "providers.gcr.enabled=true",
            "providers.gcr.useMetadata=true",
            "kubeletPlugin.hostBinDir=/etc/eks/image-credential-provider",
            "kubeletPlugin.hostConfigDir=/etc/eks/image-credential-provider",
            "kubeletPlugin.configFileName=regcreds.yaml",
        ],
    );
    let ds = the(&objects, "DaemonSet", "one directory");
    assert_eq!(
        arr(ds, "/spec/template/spec/volumes")
            .iter()
            .filter(|v| v.get("hostPath").is_some())
            .count(),
        1,
        "one hostPath volume, mounted once"
    );
    let host = tempfile::tempdir().expect("host");
    create_host_dirs(&objects, host.path());
    std::fs::write(host.path().join("regcreds"), b"bin").expect("binary");
    run_install(&objects, host.path(), &BTreeMap::new()).unwrap_or_else(|e| panic!("{e}"));
    let dir = host.path().join("etc/eks/image-credential-provider");
    let config: Value =
        serde_saphyr::from_str(&std::fs::read_to_string(dir.join("regcreds.yaml")).expect("config"))
            .expect("YAML");
    assert_eq!(kubelet_config_problems(&config), Vec::<String>::new());
    assert_eq!(
        arr(&config, "/providers/0/env"),
        [json!({"name": "REGCREDS_GCR_USE_METADATA", "value": "true"})]
    );
    assert!(dir.join("regcreds").is_file());
}

// === in ServiceAccount token mode ===

#[test]
fn the_install_command_writes_token_attributes_the_kubelet_accepts() {
    let Some(helm) = helm_or_note() else { return };
    let sets = token_mode(
        &[
            &QUAY[..],
            &ACR_WI[..],
            &[
                "providers.dockerhub.enabled=true",
                "kubeletPlugin.tokenAttributes.serviceAccountTokenAudience=api://AzureADTokenExchange",
                "kubeletPlugin.env[0].name=REGCREDS_QUAY_ROBOT_ANNOTATION",
                "kubeletPlugin.env[0].value=regcreds.dev/quay-robot",
            ],
        ]
        .concat(),
    );
    let sets: Vec<&str> = sets.iter().map(String::as_str).collect();
    let objects = render_plugin(&helm, &sets);
    let secrets = BTreeMap::from([
        (("regcreds-dockerhub", "username"), "hubber"),
        (("regcreds-dockerhub", "password"), "dckr_pat_123"),
    ]);
    let host = tempfile::tempdir().expect("host");
    create_host_dirs(&objects, host.path());
    std::fs::write(host.path().join("regcreds"), b"bin").expect("binary");
    run_install(&objects, host.path(), &secrets).unwrap_or_else(|e| panic!("{e}"));
    let path = host
        .path()
        .join("var/lib/regcreds/credential-provider-config.yaml");
    let text = std::fs::read_to_string(&path).expect("config");
    let config: Value = serde_saphyr::from_str(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    assert_eq!(kubelet_config_problems(&config), Vec::<String>::new(), "{text}");
    let provider = &arr(&config, "/providers")[0];
    assert_eq!(
        provider["tokenAttributes"],
        json!({
            "serviceAccountTokenAudience": "api://AzureADTokenExchange",
            "cacheType": "ServiceAccount",
            "requireServiceAccount": true,
            "optionalServiceAccountAnnotationKeys": [
                "azure.workload.identity/client-id",
                "azure.workload.identity/tenant-id",
                "regcreds.dev/quay-robot",
            ],
        })
    );
    let names: Vec<&str> = arr(provider, "/env").iter().map(|e| s(e, "/name")).collect();
    assert_eq!(
        names,
        [
            "REGCREDS_DOCKERHUB_USER",
            "REGCREDS_DOCKERHUB_PASSWORD",
            "REGCREDS_ACR_REGISTRY",
            "REGCREDS_ACR_AUTH",
            "REGCREDS_QUAY_ROBOT",
            "REGCREDS_QUAY_REGISTRY",
            "REGCREDS_QUAY_ROBOT_ANNOTATION",
        ]
    );
    assert_eq!(
        arr(provider, "/matchImages"),
        [json!("docker.io"), json!("r.azurecr.io"), json!("quay.io")]
    );
}

// === the pause container ===

/// `regcreds kubelet-plugin pause` keeps the pod Ready until the kubelet stops it, and then ends at once
/// with 0 (no grace period spent, no failed container in an upgrade or uninstall).
#[test]
fn the_pause_command_waits_and_ends_at_sigterm() {
    let mut pause = Command::new(regcreds_binary())
        .args(["kubelet-plugin", "pause"])
        .env_clear()
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("regcreds runs");
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(pause.stdout.take().expect("stdout")),
        &mut line,
    )
    .expect("its line");
    assert_eq!(line, "regcreds kubelet plugin: pausing until SIGTERM\n");
    std::thread::sleep(std::time::Duration::from_millis(100));
    assert!(pause.try_wait().expect("status").is_none(), "it waits");
    let killed = Command::new("kill")
        .args(["-TERM", &pause.id().to_string()])
        .status()
        .expect("kill");
    assert!(killed.success());
    let started = std::time::Instant::now();
    let status = loop {
        if let Some(status) = pause.try_wait().expect("status") {
            break status;
        }
        assert!(
            started.elapsed() < std::time::Duration::from_secs(5),
            "still running after SIGTERM"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    assert_eq!(status.code(), Some(0));
}
