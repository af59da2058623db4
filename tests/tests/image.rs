//! The regcreds image built without Docker (`regcreds_testkit::image`, `cargo xtask image`).
//!
//! ```text
//!  Dockerfile (final stage) ──parse──► USER ENTRYPOINT CMD EXPOSE LABEL COPY ─┐ must agree
//!  regcreds binary ──image::regcreds::build──► OCI layout ──skopeo inspect───┘
//!                                                 ├─ layers: distroless cc-debian12:nonroot runtime
//!                                                 ├─ unpack + chroot as 65532: --version, config check,
//!                                                 │  check over TLS with the image's own CA bundle
//!                                                 └─ push to a TLS + htpasswd registry, read back with
//!                                                    credentials only
//! ```
//!
//! The image is built once per test process from the debug binary `cargo xtask test` has already
//! built (uncompressed layers): the agreement and the runtime do not depend on the profile, and a
//! release build would add minutes. `cargo xtask image` builds the release image and runs the same
//! chroot smoke check on it. Running inside the image needs root (chroot), as the CI machine is.

use std::{
    collections::{BTreeMap, BTreeSet},
    fs,
    io::Read,
    path::{Path, PathBuf},
};

use regcreds_testkit::{
    image::{
        self, Credentials, OciLayout, PushToRegistry, RegistryAccess, dockerfile,
        regcreds::{ImageMetadata, workspace_root},
        rootfs::{self, UnpackedImage},
        runtime,
    },
    regcreds_binary,
    registry::{RegistryOptions, TestRegistry},
};
use serde_json::Value;

const BASE_NAME_LABEL: &str = "org.opencontainers.image.base.name";

/// The image of this test process, built once from the binary under test.
fn image() -> &'static OciLayout {
    image::regcreds::test_image()
}

fn config_of(reference: &str, access: &RegistryAccess) -> Value {
    image::push::inspect_config(reference, access).unwrap_or_else(|e| panic!("{e:#}"))
}

fn strings(value: &Value) -> Vec<String> {
    value
        .as_array()
        .unwrap_or_else(|| panic!("not an array: {value}"))
        .iter()
        .map(|v| v.as_str().expect("string").to_string())
        .collect()
}

// === 1. the Dockerfile and the image agree ===

#[test]
fn the_image_says_what_the_dockerfile_final_stage_says() {
    let metadata = ImageMetadata::from_workspace(&workspace_root());
    let text = fs::read_to_string(workspace_root().join("Dockerfile")).expect("read Dockerfile");
    // The build args `docker build` would get for these sources (version, git revision, commit time).
    let stage = dockerfile::final_stage(&text, &metadata.build_args()).expect("parse the Dockerfile");
    // Read back by skopeo, not by our own code.
    let config = config_of(&image().skopeo_reference(), &RegistryAccess::default());
    let run = &config["config"];

    assert_eq!(run["User"].as_str(), stage.user.as_deref(), "USER");
    assert_eq!(Some(strings(&run["Entrypoint"])), stage.entrypoint, "ENTRYPOINT");
    assert_eq!(Some(strings(&run["Cmd"])), stage.cmd, "CMD");
    let ports: BTreeSet<String> = run["ExposedPorts"]
        .as_object()
        .expect("ExposedPorts")
        .keys()
        .cloned()
        .collect();
    assert_eq!(ports, stage.exposed_ports, "EXPOSE");

    // Every LABEL, except the base image's name: this image has no base image, it reproduces one.
    let labels: BTreeMap<String, String> = serde_json::from_value(run["Labels"].clone()).expect("Labels");
    let mut expected = stage.labels.clone();
    let base_name = expected.remove(BASE_NAME_LABEL);
    assert_eq!(labels, expected, "LABEL");
    assert_eq!(
        base_name.as_deref(),
        Some(stage.from.as_str()),
        "{BASE_NAME_LABEL} names the FROM image"
    );
    assert_eq!(
        stage.from,
        runtime::BASE_IMAGE,
        "the runtime layer reproduces {}; a new base needs image/runtime.rs updated",
        runtime::BASE_IMAGE
    );
    assert_eq!(config["created"].as_str(), Some(metadata.created.as_str()));

    // What the final stage inherits from the base, plus what it adds.
    let mut env: Vec<String> = runtime::BASE_ENV.iter().map(|s| s.to_string()).collect();
    env.extend(stage.env.iter().map(|(k, v)| format!("{k}={v}")));
    assert_eq!(strings(&run["Env"]), env, "ENV (base + Dockerfile)");
    let workdir = stage.workdir.as_deref().unwrap_or(runtime::BASE_WORKING_DIR);
    assert_eq!(run["WorkingDir"].as_str(), Some(workdir), "WORKDIR");

    // `COPY --chown=0:0 --chmod=0755 … /regcreds` and the file in the image.
    let [copy] = stage.copies.as_slice() else {
        panic!("expected one COPY in the final stage: {:?}", stage.copies)
    };
    let binary = entries(image())
        .remove(copy.destination.trim_start_matches('/'))
        .unwrap_or_else(|| panic!("{} is not in the image", copy.destination));
    assert_eq!(binary.kind, tar::EntryType::Regular);
    assert_eq!(
        format!("{}:{}", binary.uid, binary.gid),
        copy.flags["chown"],
        "COPY --chown"
    );
    assert_eq!(
        format!("{:04o}", binary.mode),
        copy.flags["chmod"],
        "COPY --chmod"
    );
    assert_eq!(
        run["Entrypoint"][0].as_str(),
        Some(copy.destination.as_str()),
        "the entrypoint is the copied binary"
    );

    // `docker build .` without build args labels the image with the ARG default: keep it current.
    let defaults = dockerfile::final_stage(&text, &BTreeMap::new()).expect("parse the Dockerfile");
    assert_eq!(
        defaults.labels["org.opencontainers.image.version"], metadata.version,
        "ARG VERSION's default in the Dockerfile is not the workspace version"
    );
}

/// The Dockerfile alone: a non-root distroless runtime that runs the controller without arguments (the
/// upmc and imagepullsecret-patcher manifests pass none), from a build context holding every workspace
/// member.
#[test]
fn the_image_runs_the_controller_by_default_as_non_root() {
    let dockerfile = fs::read_to_string(workspace_root().join("Dockerfile")).expect("Dockerfile");
    let last_stage = dockerfile
        .rsplit_once("\nFROM ")
        .expect("a multi-stage Dockerfile")
        .1;
    let line = |prefix: &str| -> Vec<&str> { last_stage.lines().filter(|l| l.starts_with(prefix)).collect() };
    assert!(
        last_stage.starts_with("gcr.io/distroless/cc-debian12:nonroot"),
        "runtime base: {}",
        last_stage.lines().next().unwrap_or("")
    );
    assert_eq!(line("USER "), ["USER 65532:65532"]);
    assert_eq!(line("ENTRYPOINT "), [r#"ENTRYPOINT ["/regcreds"]"#]);
    // upmc and imagepullsecret-patcher manifests pass no args: they must get `run`.
    assert_eq!(line("CMD "), [r#"CMD ["run"]"#]);
    assert!(
        dockerfile.contains("cargo build --release --locked -p regcreds"),
        "release build of the regcreds package"
    );

    // cargo loads the whole workspace even for `-p regcreds`: every member must be in the build context.
    let ignore = fs::read_to_string(workspace_root().join(".dockerignore")).expect(".dockerignore");
    assert!(
        ignore.lines().any(|l| l.trim() == "*"),
        ".dockerignore is an allow-list"
    );
    let allowed: BTreeSet<&str> = ignore
        .lines()
        .filter_map(|l| l.trim().strip_prefix('!'))
        .map(|l| l.trim_end_matches('/'))
        .collect();
    for needed in ["Cargo.toml", "Cargo.lock"] {
        assert!(
            allowed.contains(needed),
            ".dockerignore must let {needed} through"
        );
    }
    let manifest = fs::read_to_string(workspace_root().join("Cargo.toml")).expect("Cargo.toml");
    let members = manifest
        .split_once("members = [")
        .expect("workspace members")
        .1
        .split_once(']')
        .expect("]")
        .0;
    // NB: the list may carry comments (`# every crate under crates/ ...`): drop them before splitting.
    let members: String = members
        .lines()
        .map(|line| line.split_once('#').map_or(line, |(code, _)| code))
        .collect();
    for member in members
        .split(',')
        .map(|m| m.trim().trim_matches('"'))
        .filter(|m| !m.is_empty())
    {
        let top = member.split('/').next().expect("path");
        assert!(
            allowed.contains(top),
            ".dockerignore drops workspace member {member}"
        );
    }
}

// === 2. the runtime: distroless cc-debian12:nonroot from this machine's files ===

/// One tar entry of the image, with the contents of small files.
#[derive(Debug, Clone)]
struct Entry {
    kind: tar::EntryType,
    mode: u32,
    uid: u64,
    gid: u64,
    link: Option<PathBuf>,
    contents: Vec<u8>,
}

/// Every entry of every layer, upper layers winning, keyed by path without the leading `/`.
fn entries(layout: &OciLayout) -> BTreeMap<String, Entry> {
    let mut out = BTreeMap::new();
    for (digest, media_type, _) in layout.layers().expect("layers") {
        let mut archive = tar::Archive::new(layout.layer_tar(&digest, &media_type).expect("layer"));
        for entry in archive.entries().expect("entries") {
            let mut entry = entry.expect("entry");
            let header = entry.header().clone();
            let path = entry.path().expect("path").display().to_string();
            let mut contents = Vec::new();
            if header.size().expect("size") < 1 << 20 {
                entry.read_to_end(&mut contents).expect("read entry");
            }
            let path = path.trim_end_matches('/').to_string();
            out.insert(
                path,
                Entry {
                    kind: header.entry_type(),
                    mode: header.mode().expect("mode"),
                    uid: header.uid().expect("uid"),
                    gid: header.gid().expect("gid"),
                    link: entry.link_name().expect("link").map(|l| l.into_owned()),
                    contents,
                },
            );
        }
    }
    out
}

/// Follows symlinks inside the image from `path` to a non-link entry.
fn resolve(entries: &BTreeMap<String, Entry>, path: &str) -> Option<String> {
    let mut components: Vec<String> = Vec::new();
    let mut pending: Vec<String> = path.split('/').rev().map(String::from).collect();
    let mut hops = 0;
    while let Some(name) = pending.pop() {
        match name.as_str() {
            "" | "." => continue,
            ".." => {
                components.pop();
                continue;
            }
            _ => {}
        }
        components.push(name);
        let entry = entries.get(&components.join("/"))?;
        if let Some(target) = entry
            .link
            .as_ref()
            .filter(|_| entry.kind == tar::EntryType::Symlink)
        {
            hops += 1;
            assert!(hops < 40, "symlink loop at {path}");
            components.pop();
            let target = target.display().to_string();
            if target.starts_with('/') {
                components.clear();
            }
            pending.extend(target.split('/').rev().map(String::from));
        }
    }
    Some(components.join("/"))
}

/// The ELF program interpreter (PT_INTERP) of a 64-bit little-endian binary.
fn program_interpreter(binary: &Path) -> String {
    let bytes = fs::read(binary).expect("read binary");
    assert_eq!(&bytes[..4], b"\x7fELF", "not an ELF file");
    assert_eq!((bytes[4], bytes[5]), (2, 1), "64-bit little-endian ELF expected");
    let u16_at = |at: usize| u16::from_le_bytes(bytes[at..at + 2].try_into().expect("2 bytes")) as usize;
    let u64_at = |at: usize| u64::from_le_bytes(bytes[at..at + 8].try_into().expect("8 bytes")) as usize;
    let (phoff, phentsize, phnum) = (u64_at(0x20), u16_at(0x36), u16_at(0x38));
    (0..phnum)
        .map(|i| phoff + i * phentsize)
        .find(|&header| u32::from_le_bytes(bytes[header..header + 4].try_into().expect("4 bytes")) == 3)
        .map(|header| {
            let (offset, size) = (u64_at(header + 8), u64_at(header + 32));
            String::from_utf8_lossy(&bytes[offset..offset + size])
                .trim_end_matches('\0')
                .to_string()
        })
        .expect("a dynamically linked binary has PT_INTERP")
}

#[test]
fn the_image_has_the_distroless_nonroot_runtime() {
    let entries = entries(image());
    let get = |path: &str| {
        entries
            .get(path)
            .unwrap_or_else(|| panic!("/{path} is not in the image"))
    };
    let text = |path: &str| String::from_utf8_lossy(&get(path).contents).into_owned();

    assert!(
        text("etc/passwd")
            .lines()
            .any(|l| l == "nonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin"),
        "{}",
        text("etc/passwd")
    );
    assert!(
        text("etc/group").lines().any(|l| l == "nonroot:x:65532:"),
        "{}",
        text("etc/group")
    );
    for (path, mode, owner) in [
        ("tmp", 0o1777, 0),
        ("root", 0o700, 0),
        ("home/nonroot", 0o700, 65532),
    ] {
        let entry = get(path);
        assert_eq!(entry.kind, tar::EntryType::Directory, "/{path}");
        assert_eq!(
            (entry.mode, entry.uid, entry.gid),
            (mode, owner, owner),
            "/{path}"
        );
    }

    // The CA bundle: every certificate Debian's ca-certificates ships, and none of this machine's
    // local additions (a proxy's or company's CA must not travel in a published image).
    let bundle = get("etc/ssl/certs/ca-certificates.crt");
    assert_eq!((bundle.mode, bundle.uid), (0o644, 0));
    let bundle = text("etc/ssl/certs/ca-certificates.crt");
    let packaged: Vec<PathBuf> = fs::read_dir(runtime::PACKAGED_CAS)
        .expect("packaged CAs")
        .map(|e| e.expect("entry").path())
        .collect();
    assert!(packaged.len() > 100, "only {} packaged CAs", packaged.len());
    assert_eq!(bundle.matches("BEGIN CERTIFICATE").count(), packaged.len());
    for file in &packaged {
        let pem = fs::read_to_string(file).expect("read CA");
        assert!(bundle.contains(pem.trim()), "{} is missing", file.display());
    }
    for local in fs::read_dir("/usr/local/share/ca-certificates")
        .into_iter()
        .flatten()
    {
        let pem = fs::read_to_string(local.expect("entry").path()).unwrap_or_default();
        let body = pem
            .lines()
            .filter(|l| !l.starts_with("-----"))
            .collect::<String>();
        assert!(
            body.is_empty() || !bundle.lines().collect::<String>().contains(&body),
            "a local CA of this machine is in the image"
        );
    }

    // The loader the binary names, reachable through the image's own symlinks, and glibc + libgcc_s.
    let interpreter = program_interpreter(&regcreds_binary());
    let loader = resolve(&entries, &interpreter)
        .unwrap_or_else(|| panic!("{interpreter} does not resolve in the image"));
    assert_eq!(
        get(&loader).kind,
        tar::EntryType::Regular,
        "{interpreter} → /{loader}"
    );
    for library in ["libc.so.6", "libgcc_s.so.1"] {
        assert!(
            entries
                .iter()
                .any(|(path, e)| path.ends_with(&format!("/{library}")) && e.kind == tar::EntryType::Regular),
            "{library} is not in the image"
        );
    }
    // dpkg records for scanners, as distroless has them.
    assert!(text("var/lib/dpkg/status.d/libc6").starts_with("Package: libc6"));
    assert!(entries.contains_key("usr/share/doc/libc6/copyright"));
}

// === 3. regcreds runs inside the image, as nonroot, with TLS from the image's bundle ===

/// Runs the image's entrypoint with `args` and extra `env`: (exit code, stdout, stderr).
fn run_in(unpacked: &UnpackedImage, args: &[&str], env: &[(&str, String)]) -> (Option<i32>, String, String) {
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let output = unpacked.run(args, &env).expect("chroot runs");
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[tokio::test]
async fn regcreds_runs_in_the_image_as_nonroot_with_tls_from_the_image_bundle() {
    assert!(
        rootfs::is_root(),
        "running the image's binary needs root (chroot and file owners); CI runs as root"
    );
    let unpacked = UnpackedImage::new(image()).expect("unpack the image");
    assert_eq!(unpacked.user, "65532:65532");

    let (code, stdout, stderr) = run_in(&unpacked, &["--version"], &[]);
    assert_eq!(code, Some(0), "{stdout}{stderr}");
    assert!(stdout.contains(env!("CARGO_PKG_VERSION")), "{stdout}");

    let registry = TestRegistry::start(RegistryOptions::default()).await;
    let (user, password) = ("alice", "alice-password");
    let static_env = |password: &str| {
        vec![
            ("REGCREDS_STATIC_SERVER", registry.host().to_string()),
            ("REGCREDS_STATIC_USER", user.to_string()),
            ("REGCREDS_STATIC_PASSWORD", password.to_string()),
            ("REGCREDS_CHECK_IMAGES", registry.image_name()),
            ("REGCREDS_CHECK_TIMEOUT_SECONDS", "5".to_string()),
        ]
    };
    let (code, stdout, stderr) = run_in(&unpacked, &["config", "check"], &static_env(password));
    assert_eq!(code, Some(0), "{stdout}{stderr}");
    assert!(
        stdout.contains("provider static") && stdout.contains("enabled"),
        "{stdout}"
    );
    let (code, _, stderr) = run_in(
        &unpacked,
        &["config", "check"],
        &[("REGCREDS_STATIC_SERVER", registry.host().to_string())],
    );
    assert_eq!(
        code,
        Some(2),
        "a half-configured provider is a configuration error: {stderr}"
    );
    assert!(stderr.contains("REGCREDS_STATIC_USER"), "{stderr}");

    // The registry's CA is not in the image's bundle: TLS must refuse it ...
    let (code, stdout, stderr) = run_in(&unpacked, &["check"], &static_env(password));
    assert_eq!(code, Some(1), "{stdout}{stderr}");
    assert!(stdout.starts_with("unreachable"), "{stdout}{stderr}");
    assert!(stdout.to_lowercase().contains("certificate"), "{stdout}");
    // ... and accept it once it is (as a user adds a corporate CA to the bundle): the binary reads
    // /etc/ssl/certs/ca-certificates.crt of the image, as 65532.
    let bundle = unpacked.rootfs.join("etc/ssl/certs/ca-certificates.crt");
    let mut contents = fs::read_to_string(&bundle).expect("read bundle");
    contents.push_str(registry.ca_pem());
    fs::write(&bundle, contents).expect("extend bundle");
    let (code, stdout, stderr) = run_in(&unpacked, &["check"], &static_env(password));
    assert_eq!(code, Some(0), "{stdout}{stderr}");
    assert!(
        stdout.starts_with(&format!(
            "ok            static            {}  via Basic auth, may pull demo/hello:v1",
            registry.host()
        )),
        "{stdout}"
    );
    let (code, stdout, _) = run_in(&unpacked, &["check"], &static_env("wrong-password"));
    assert_eq!(code, Some(1));
    assert!(stdout.starts_with("unauthorized"), "{stdout}");

    // The check catches what a node would: without libgcc_s the binary does not start.
    let libgcc = walk(&unpacked.rootfs)
        .into_iter()
        .find(|p| p.file_name().is_some_and(|n| n == "libgcc_s.so.1") && !p.is_symlink())
        .expect("libgcc_s.so.1 in the rootfs");
    fs::remove_file(&libgcc).expect("remove libgcc_s");
    let (code, _, stderr) = run_in(&unpacked, &["--version"], &[]);
    assert_eq!(code, Some(127), "{stderr}");
    assert!(
        stderr.contains("error while loading shared libraries: libgcc_s.so.1"),
        "{stderr}"
    );
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in fs::read_dir(dir).expect("read dir").flatten() {
        let path = entry.path();
        if entry.file_type().is_ok_and(|t| t.is_dir()) {
            out.extend(walk(&path));
        } else {
            out.push(path);
        }
    }
    out
}

// === 4. push to a TLS + htpasswd registry, read back with credentials only ===

#[tokio::test]
async fn the_image_pushes_to_a_private_registry_and_reads_back_only_with_credentials() {
    let registry = TestRegistry::start(RegistryOptions::default()).await;
    let layout = image();
    let digest = registry
        .push_layout(layout, "regcreds/regcreds:test")
        .unwrap_or_else(|e| panic!("{e:#}\n{}", registry.log()));
    assert_eq!(
        digest, layout.manifest_digest,
        "the registry serves the layout's manifest unchanged"
    );

    let reference = format!("docker://{}/regcreds/regcreds:test", registry.host());
    // A dockerconfigjson, as kubelet gets it from an imagePullSecret.
    let authfile = registry.dir().join("pull-auth.json");
    let auth = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, "alice:alice-password");
    fs::write(
        &authfile,
        serde_json::json!({ "auths": { registry.host(): { "auth": auth } } }).to_string(),
    )
    .expect("write authfile");
    let with = |credentials: Credentials| RegistryAccess {
        credentials,
        ..registry.access()
    };
    assert_eq!(
        image::push::inspect_digest(&reference, &with(Credentials::Authfile(authfile))).expect("inspect"),
        digest
    );
    let config = config_of(
        &reference,
        &with(Credentials::Authfile(registry.dir().join("pull-auth.json"))),
    );
    assert_eq!(config["config"]["User"], "65532:65532");
    assert_eq!(config["config"]["Entrypoint"], serde_json::json!(["/regcreds"]));

    for credentials in [
        Credentials::None,
        Credentials::basic("alice:wrong").expect("creds"),
    ] {
        let err = image::push::inspect_digest(&reference, &with(credentials.clone()))
            .expect_err("the registry must refuse");
        let err = format!("{err:#}");
        assert!(
            err.contains("unauthorized") || err.contains("authentication required"),
            "{credentials:?}: {err}"
        );
        assert!(!err.contains("alice:wrong"), "no password in errors: {err}");
    }
}
