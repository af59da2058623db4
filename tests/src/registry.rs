//! A real container registry for tests: distribution (Debian's `docker-registry`) with htpasswd auth,
//! optionally behind TLS from a throwaway CA, holding one small private image `demo/hello:v1`.
//!
//! ```text
//! TestRegistry::start(opts)
//!   ├─ tempdir: ca.crt (+ certs/ca.crt for skopeo), server.crt/.key (SAN 127.0.0.1, localhost),
//!   │           htpasswd (bcrypt), config.yml, registry.log, data/
//!   ├─ sh supervisor ─ docker-registry serve config.yml      (dies with the test process, see Supervisor)
//!   ├─ poll GET /v2/ until it answers 401 (200 without users)
//!   └─ write a one-layer OCI layout, `skopeo copy` it to docker://127.0.0.1:PORT/demo/hello:v1
//! ```
//!
//! The registry re-reads its htpasswd file when the file changes (distribution 2.8 checks the
//! modification time on every request), so [`TestRegistry::set_user`] rewrites the file and waits
//! until the new password is accepted; no restart is needed.
//!
//! Needs `docker-registry` and `skopeo` on `PATH`; `cargo xtask test` installs them
//! (xtask/scripts/setup-test-deps.sh). All calls block briefly on child processes, which is fine
//! for test set-up.

use std::{
    fs,
    net::TcpListener,
    path::{Path, PathBuf},
    process::{Child, ChildStdin, Command, Stdio},
    time::{Duration, Instant},
};

use base64::{Engine, engine::general_purpose::STANDARD};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use sha2::{Digest, Sha256};

/// The repository and tag of the image every fixture registry holds.
pub const IMAGE: &str = "demo/hello:v1";

/// How long the registry may take to answer `/v2/` after it is started.
const START_TIMEOUT: Duration = Duration::from_secs(20);

/// What kind of registry to start.
#[derive(Debug, Clone, Copy)]
pub struct RegistryOptions<'a> {
    /// Serve https with a certificate from a fresh CA (see [`TestRegistry::ca_pem`]); plain http otherwise.
    pub tls: bool,
    /// htpasswd users as `(name, password)`. Empty means no auth at all (anonymous registry).
    pub users: &'a [(&'a str, &'a str)],
}

impl Default for RegistryOptions<'_> {
    fn default() -> Self {
        Self {
            tls: true,
            users: &[("alice", "alice-password")],
        }
    }
}

/// A running registry. Dropping it stops the registry and deletes its files.
#[derive(Debug)]
pub struct TestRegistry {
    // NB: fields drop in order; the registry must stop before its directory is deleted.
    process: Supervisor,
    dir: tempfile::TempDir,
    host: String,
    tls: bool,
    ca_pem: String,
    users: Vec<(String, String)>,
    digest: String,
}

impl TestRegistry {
    /// Starts a registry on a free 127.0.0.1 port and pushes [`IMAGE`] to it.
    ///
    /// Panics (with the registry log) if the binaries are missing or the registry does not come up.
    pub async fn start(options: RegistryOptions<'_>) -> Self {
        require_tools();
        let dir = tempfile::Builder::new()
            .prefix("regcreds-registry-")
            .tempdir()
            .expect("tempdir");
        let ca_pem = write_certificates(dir.path());
        let users: Vec<(String, String)> = options
            .users
            .iter()
            .map(|(u, p)| (u.to_string(), p.to_string()))
            .collect();
        write_htpasswd(dir.path(), &users);
        let port = free_port();
        let host = format!("127.0.0.1:{port}");
        fs::write(
            dir.path().join("config.yml"),
            config_yaml(dir.path(), &host, options.tls, !users.is_empty()),
        )
        .expect("write config.yml");
        let process = Supervisor::spawn(dir.path());
        let mut registry = Self {
            process,
            dir,
            host,
            tls: options.tls,
            ca_pem,
            users,
            digest: String::new(),
        };
        registry.wait_until_serving().await;
        registry.push_image();
        registry
    }

    /// `127.0.0.1:PORT`, the registry key clients use.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// `https://127.0.0.1:PORT` or `http://127.0.0.1:PORT`.
    pub fn base_url(&self) -> String {
        format!("{}://{}", if self.tls { "https" } else { "http" }, self.host)
    }

    /// Whether the registry serves https.
    pub fn tls(&self) -> bool {
        self.tls
    }

    /// The PEM certificate of the CA that signed the registry's server certificate.
    pub fn ca_pem(&self) -> &str {
        &self.ca_pem
    }

    /// A directory holding `ca.crt`, for skopeo's `--cert-dir`.
    pub fn cert_dir(&self) -> PathBuf {
        self.dir.path().join("certs")
    }

    /// The fixture's scratch directory (config, logs, data); a handy place for authfiles.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The image the fixture pushed: `demo/hello:v1` (repository and tag, no host).
    pub fn image_ref(&self) -> &'static str {
        IMAGE
    }

    /// `127.0.0.1:PORT/demo/hello:v1`.
    pub fn image_name(&self) -> String {
        format!("{}/{IMAGE}", self.host)
    }

    /// The manifest digest of the pushed image, as the registry reports it.
    pub fn image_digest(&self) -> &str {
        &self.digest
    }

    /// The registry's log so far, for assertion messages.
    pub fn log(&self) -> String {
        fs::read_to_string(self.dir.path().join("registry.log")).unwrap_or_default()
    }

    /// Adds `user` or changes their password, and waits until the registry accepts the new password.
    pub async fn set_user(&mut self, user: &str, password: &str) {
        match self.users.iter_mut().find(|(u, _)| u == user) {
            Some(entry) => entry.1 = password.to_string(),
            None => self.users.push((user.to_string(), password.to_string())),
        }
        write_htpasswd(self.dir.path(), &self.users);
        let authorization = format!("Basic {}", STANDARD.encode(format!("{user}:{password}")));
        let deadline = Instant::now() + START_TIMEOUT;
        while self.v2_status(Some(&authorization)).await != Some(200) {
            assert!(
                Instant::now() < deadline,
                "registry did not pick up the new htpasswd:\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Runs `skopeo inspect --authfile <authfile>` against [`IMAGE`]: `Ok(digest)` if skopeo could
    /// read the manifest with that dockerconfigjson, `Err(stderr)` otherwise.
    pub fn skopeo_inspect(&self, authfile: &Path) -> Result<String, String> {
        let mut command = self.skopeo();
        command
            .arg("inspect")
            .arg("--authfile")
            .arg(authfile)
            .args(self.tls_args(""))
            .args([
                "--format",
                "{{.Digest}}",
                &format!("docker://{}", self.image_name()),
            ]);
        run(command)
    }

    /// skopeo with a private HOME, so that no login on the machine can stand in for the one under test.
    fn skopeo(&self) -> Command {
        let mut command = Command::new("skopeo");
        command
            .env("HOME", self.dir.path())
            .env("XDG_RUNTIME_DIR", self.dir.path())
            .env_remove("REGISTRY_AUTH_FILE")
            .env_remove("DOCKER_CONFIG");
        command
    }

    /// `--{prefix}cert-dir DIR` for https, `--{prefix}tls-verify=false` for plain http.
    fn tls_args(&self, prefix: &str) -> Vec<String> {
        if self.tls {
            vec![
                format!("--{prefix}cert-dir"),
                self.cert_dir().display().to_string(),
            ]
        } else {
            vec![format!("--{prefix}tls-verify=false")]
        }
    }

    async fn wait_until_serving(&mut self) {
        let expected = if self.users.is_empty() { 200 } else { 401 };
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            match self.v2_status(None).await {
                Some(status) if status == expected => return,
                Some(status) => panic!(
                    "registry answered /v2/ with {status}, expected {expected}:\n{}",
                    self.log()
                ),
                None => {}
            }
            if Instant::now() > deadline || self.process.exited() {
                panic!("registry on {} did not start:\n{}", self.host, self.log());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The status of `GET /v2/`, or `None` while nothing answers.
    async fn v2_status(&self, authorization: Option<&str>) -> Option<u16> {
        let ca = reqwest::Certificate::from_pem(self.ca_pem.as_bytes()).expect("fixture CA");
        let client = reqwest::Client::builder()
            .tls_certs_only([ca])
            .timeout(Duration::from_secs(2))
            .build()
            .expect("http client");
        let mut request = client.get(format!("{}/v2/", self.base_url()));
        if let Some(value) = authorization {
            request = request.header(reqwest::header::AUTHORIZATION, value);
        }
        request.send().await.ok().map(|r| r.status().as_u16())
    }

    /// Pushes a one-layer image written by hand as an OCI layout, then records its digest.
    fn push_image(&mut self) {
        let layout = self.dir.path().join("oci");
        write_oci_layout(&layout);
        let destination = format!("docker://{}", self.image_name());
        let mut copy = self.skopeo();
        copy.args(["copy", "--insecure-policy"])
            .args(self.tls_args("dest-"))
            .args(self.creds_args("dest-"));
        copy.arg(format!("oci:{}:v1", layout.display())).arg(&destination);
        if let Err(stderr) = run(copy) {
            panic!(
                "skopeo copy to {destination} failed: {stderr}\nregistry log:\n{}",
                self.log()
            );
        }
        let mut inspect = self.skopeo();
        inspect
            .arg("inspect")
            .args(self.tls_args(""))
            .args(self.creds_args(""));
        inspect.args(["--format", "{{.Digest}}", &destination]);
        self.digest = run(inspect).unwrap_or_else(|stderr| panic!("skopeo inspect {destination}: {stderr}"));
    }

    /// `--{prefix}creds user:password` of the first user, or `--{prefix}no-creds`.
    fn creds_args(&self, prefix: &str) -> Vec<String> {
        match self.users.first() {
            Some((user, password)) => vec![format!("--{prefix}creds"), format!("{user}:{password}")],
            None => vec![format!("--{prefix}no-creds")],
        }
    }
}

/// Runs a command to completion: trimmed stdout on success, stderr otherwise.
fn run(mut command: Command) -> Result<String, String> {
    let output = command
        .output()
        .map_err(|e| format!("cannot run {command:?}: {e}"))?;
    if output.status.success() {
        Ok(String::from_utf8_lossy(&output.stdout).trim().to_string())
    } else {
        Err(String::from_utf8_lossy(&output.stderr).trim().to_string())
    }
}

fn require_tools() {
    for tool in ["docker-registry", "skopeo"] {
        let found = Command::new(tool)
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        if !found.is_ok_and(|s| s.success()) {
            panic!(
                "`{tool}` is not installed: run the tests with `cargo xtask test`, which installs it \
                 (xtask/scripts/setup-test-deps.sh), or `apt-get install -y docker-registry skopeo`"
            );
        }
    }
}

/// A port nobody listens on right now. The registry binds it a moment later; a clash is unlikely on a
/// test machine and shows up as a start failure with "address already in use" in the log.
fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port");
    listener.local_addr().expect("local addr").port()
}

/// Writes `ca.crt`, `certs/ca.crt`, `server.crt`, `server.key`; returns the CA PEM.
fn write_certificates(dir: &Path) -> String {
    let ca_key = KeyPair::generate().expect("CA key");
    let mut ca = CertificateParams::new(Vec::<String>::new()).expect("CA params");
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name.push(DnType::CommonName, "regcreds test CA");
    ca.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let ca_pem = ca.self_signed(&ca_key).expect("self-sign CA").pem();
    let issuer = Issuer::new(ca, ca_key);

    let server_key = KeyPair::generate().expect("server key");
    let mut server =
        CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()]).expect("SANs");
    server.distinguished_name.push(DnType::CommonName, "127.0.0.1");
    server.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let server_pem = server
        .signed_by(&server_key, &issuer)
        .expect("sign server cert")
        .pem();

    fs::create_dir_all(dir.join("certs")).expect("certs dir");
    for (name, content) in [
        ("ca.crt", ca_pem.as_str()),
        ("certs/ca.crt", ca_pem.as_str()),
        ("server.crt", server_pem.as_str()),
        ("server.key", server_key.serialize_pem().as_str()),
    ] {
        fs::write(dir.join(name), content).expect("write certificate");
    }
    ca_pem
}

/// bcrypt at the lowest cost: the registry verifies it on every request, and these are test passwords.
fn write_htpasswd(dir: &Path, users: &[(String, String)]) {
    let lines: String = users
        .iter()
        .map(|(user, password)| format!("{user}:{}\n", bcrypt::hash(password, 4).expect("bcrypt")))
        .collect();
    // Write-then-rename so the registry never reads a half-written file.
    let staging = dir.join("htpasswd.new");
    fs::write(&staging, lines).expect("write htpasswd");
    fs::rename(&staging, dir.join("htpasswd")).expect("replace htpasswd");
}

fn config_yaml(dir: &Path, host: &str, tls: bool, auth: bool) -> String {
    let dir = dir.display();
    let mut yaml = format!(
        "version: 0.1\n\
         log:\n  level: info\n  accesslog:\n    disabled: true\n\
         storage:\n  filesystem:\n    rootdirectory: {dir}/data\n\
         http:\n  addr: {host}\n  secret: regcreds-test-fixture\n"
    );
    if tls {
        yaml += &format!("  tls:\n    certificate: {dir}/server.crt\n    key: {dir}/server.key\n");
    }
    if auth {
        yaml += &format!("auth:\n  htpasswd:\n    realm: regcreds-test\n    path: {dir}/htpasswd\n");
    }
    yaml
}

/// Writes an OCI image layout with one uncompressed layer holding `hello.txt`, tagged `v1`.
fn write_oci_layout(layout: &Path) {
    let blobs = layout.join("blobs/sha256");
    fs::create_dir_all(&blobs).expect("layout dir");
    let put = |bytes: &[u8]| -> serde_json::Value {
        let hex = format!("{:x}", Sha256::digest(bytes));
        fs::write(blobs.join(&hex), bytes).expect("write blob");
        serde_json::json!({ "digest": format!("sha256:{hex}"), "size": bytes.len() })
    };
    let layer = put(&layer_tar());
    let config = serde_json::json!({
        "architecture": "amd64",
        "os": "linux",
        "config": {},
        "rootfs": { "type": "layers", "diff_ids": [layer["digest"]] },
    });
    let config = put(&serde_json::to_vec(&config).expect("json"));
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": with_media_type(config, "application/vnd.oci.image.config.v1+json"),
        "layers": [with_media_type(layer, "application/vnd.oci.image.layer.v1.tar")],
    });
    let mut manifest = with_media_type(
        put(&serde_json::to_vec(&manifest).expect("json")),
        "application/vnd.oci.image.manifest.v1+json",
    );
    manifest["annotations"] = serde_json::json!({ "org.opencontainers.image.ref.name": "v1" });
    let index = serde_json::json!({ "schemaVersion": 2, "manifests": [manifest] });
    fs::write(
        layout.join("index.json"),
        serde_json::to_vec(&index).expect("json"),
    )
    .expect("index.json");
    fs::write(layout.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#).expect("oci-layout");
}

fn with_media_type(mut descriptor: serde_json::Value, media_type: &str) -> serde_json::Value {
    descriptor["mediaType"] = media_type.into();
    descriptor
}

fn layer_tar() -> Vec<u8> {
    let content = b"hello from the regcreds test registry\n";
    let mut header = tar::Header::new_ustar();
    header.set_path("hello.txt").expect("tar path");
    header.set_size(content.len() as u64);
    header.set_mode(0o644);
    header.set_mtime(0);
    header.set_cksum();
    let mut builder = tar::Builder::new(Vec::new());
    builder.append(&header, &content[..]).expect("tar append");
    builder.into_inner().expect("tar finish")
}

/// Runs `docker-registry serve` under a tiny shell that kills it when its stdin closes.
///
/// Drop closes stdin explicitly; if the test process dies instead (panic=abort, SIGKILL, a killed
/// `cargo test`), the kernel closes the pipe and the same thing happens, so no registry outlives its
/// test. (`PR_SET_PDEATHSIG` would need `unsafe` and fires when the spawning *thread* exits, which in
/// a test harness is too early.)
#[derive(Debug)]
struct Supervisor {
    child: Child,
    stdin: Option<ChildStdin>,
}

impl Supervisor {
    const SCRIPT: &'static str = r#"docker-registry serve "$1" </dev/null >>"$2" 2>&1 &
pid=$!
cat >/dev/null
kill "$pid" 2>/dev/null
wait "$pid""#;

    fn spawn(dir: &Path) -> Self {
        let mut child = Command::new("sh")
            .arg("-c")
            .arg(Self::SCRIPT)
            .arg("regcreds-registry")
            .arg(dir.join("config.yml"))
            .arg(dir.join("registry.log"))
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn sh for docker-registry");
        let stdin = child.stdin.take();
        Self { child, stdin }
    }

    fn exited(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(Some(_)))
    }
}

impl Drop for Supervisor {
    fn drop(&mut self) {
        // EOF on the shell's stdin is what makes it kill the registry.
        drop(self.stdin.take());
        let deadline = Instant::now() + Duration::from_secs(5);
        while !self.exited() {
            if Instant::now() > deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}
