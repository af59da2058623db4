//! A real container registry for tests: distribution (Debian's `docker-registry`) with htpasswd
//! (Basic) or token (Bearer) auth, optionally behind TLS from a throwaway CA, holding one small private
//! image `demo/hello:v1`.
//!
//! ```text
//! TestRegistry::start(opts)
//!   ├─ tempdir: ca.crt (+ certs/ca.crt for skopeo), server.crt/.key (SAN 127.0.0.1, localhost),
//!   │           htpasswd (bcrypt), config.yml, registry.log, data/
//!   ├─ token_auth: TokenServer thread on http://127.0.0.1:P/token (ES256 JWTs, x5c → token-ca.crt)
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
    io::{Read, Write},
    net::{SocketAddr, TcpListener, TcpStream},
    path::{Path, PathBuf},
    process::{Child, ChildStdin, Command, Stdio},
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    thread::JoinHandle,
    time::{Duration, Instant},
};

use base64::{
    Engine,
    engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD},
};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SigningKey,
};
use sha2::{Digest, Sha256};

use crate::ports::free_port;

/// The repository and tag of the image every fixture registry holds.
pub const IMAGE: &str = "demo/hello:v1";

/// How long the registry may take to answer `/v2/` after it is started.
const START_TIMEOUT: Duration = Duration::from_secs(20);
/// Ports tried before giving up on starting a registry.
const PORT_ATTEMPTS: u32 = 3;

/// What kind of registry to start.
#[derive(Debug, Clone, Copy)]
pub struct RegistryOptions<'a> {
    /// Serve https with a certificate from a fresh CA (see [`TestRegistry::ca_pem`]); plain http otherwise.
    pub tls: bool,
    /// Users as `(name, password)`. Empty means no auth at all (anonymous registry).
    pub users: &'a [(&'a str, &'a str)],
    /// Bearer token auth, as Docker Hub, ACR and GCR do it: the registry challenges with a realm on
    /// a token server the fixture runs (plain http on 127.0.0.1, see [`TestRegistry::token_host`]),
    /// which checks the users and issues ES256 JWTs. Basic auth from an htpasswd file otherwise.
    pub token_auth: bool,
}

impl Default for RegistryOptions<'_> {
    fn default() -> Self {
        Self {
            tls: true,
            users: &[("alice", "alice-password")],
            token_auth: false,
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
    token_server: Option<TokenServer>,
    digest: String,
}

impl TestRegistry {
    /// Starts a registry on a free 127.0.0.1 port and pushes [`IMAGE`] to it.
    ///
    /// Panics (with the registry log) if the binaries are missing or the registry does not come up.
    /// A port another process took between [`free_port`] and the registry's bind is retried with a
    /// new one (from scratch: the directory goes with the registry that could not bind).
    pub async fn start(options: RegistryOptions<'_>) -> Self {
        require_tools();
        for _ in 1..PORT_ATTEMPTS {
            if let Some(registry) = Self::try_start(options).await {
                return registry;
            }
        }
        Self::try_start(options)
            .await
            .unwrap_or_else(|| panic!("{PORT_ATTEMPTS} registry ports in a row were taken by others"))
    }

    /// One start; `None` if the port was taken before the registry bound it.
    async fn try_start(options: RegistryOptions<'_>) -> Option<Self> {
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
        let token_server = options
            .token_auth
            .then(|| TokenServer::start(dir.path(), users.clone()));
        let auth = match (&token_server, users.is_empty()) {
            (Some(server), _) => Auth::Token {
                realm: server.realm(),
            },
            (None, false) => Auth::Htpasswd,
            (None, true) => Auth::None,
        };
        let port = free_port();
        let host = format!("127.0.0.1:{port}");
        fs::write(
            dir.path().join("config.yml"),
            config_yaml(dir.path(), &host, options.tls, &auth),
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
            token_server,
            digest: String::new(),
        };
        if !registry.wait_until_serving().await {
            return None;
        }
        registry.push_image();
        Some(registry)
    }

    /// `127.0.0.1:PORT`, the registry key clients use.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// `https://127.0.0.1:PORT` or `http://127.0.0.1:PORT`.
    pub fn base_url(&self) -> String {
        format!("{}://{}", if self.tls { "https" } else { "http" }, self.host)
    }

    /// The token endpoint (`http://127.0.0.1:PORT/token`) of a `token_auth` registry.
    pub fn token_realm(&self) -> Option<String> {
        self.token_server.as_ref().map(TokenServer::realm)
    }

    /// `127.0.0.1:PORT` of the token server: a verifier must allow plain http to it.
    pub fn token_host(&self) -> Option<String> {
        self.token_server.as_ref().map(|s| s.addr.to_string())
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

    /// From now on `user` still logs in and still gets a token, but one that grants no repository:
    /// the registry then refuses every pull. This is what users report of ghcr.io with a GitHub App
    /// installation token (login succeeds, the pull of a private package is `denied`), and what any
    /// token registry does for an identity without pull rights. Token auth only.
    pub fn deny_pulls(&self, user: &str) {
        self.token_server
            .as_ref()
            .expect("deny_pulls needs a registry started with token_auth")
            .deny_pulls(user);
    }

    /// Adds `user` or changes their password, and waits until the registry accepts the new password.
    pub async fn set_user(&mut self, user: &str, password: &str) {
        match self.users.iter_mut().find(|(u, _)| u == user) {
            Some(entry) => entry.1 = password.to_string(),
            None => self.users.push((user.to_string(), password.to_string())),
        }
        if let Some(server) = &self.token_server {
            // The token server reads its user list on every request: nothing to wait for.
            server.set_users(self.users.clone());
            return;
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

    /// The users and passwords the registry accepts, first one first.
    pub fn users(&self) -> &[(String, String)] {
        &self.users
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

    /// Waits until `/v2/` answers as configured; `false` if the port was taken (the registry logged
    /// "address already in use" and exited, while its supervising shell lives on).
    async fn wait_until_serving(&mut self) -> bool {
        let expected = if self.users.is_empty() { 200 } else { 401 };
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            match self.v2_status(None).await {
                Some(status) if status == expected => return true,
                Some(status) => panic!(
                    "registry answered /v2/ with {status}, expected {expected}:\n{}",
                    self.log()
                ),
                None => {}
            }
            if self.log().contains("address already in use") {
                return false;
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

/// How the registry authenticates clients.
enum Auth {
    None,
    Htpasswd,
    Token { realm: String },
}

fn config_yaml(dir: &Path, host: &str, tls: bool, auth: &Auth) -> String {
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
    match auth {
        Auth::None => {}
        Auth::Htpasswd => {
            yaml += &format!("auth:\n  htpasswd:\n    realm: regcreds-test\n    path: {dir}/htpasswd\n")
        }
        Auth::Token { realm } => {
            yaml += &format!(
                "auth:\n  token:\n    realm: {realm}\n    service: {TOKEN_SERVICE}\n    \
                 issuer: {TOKEN_ISSUER}\n    rootcertbundle: {dir}/token-ca.crt\n"
            )
        }
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
/// test. The shell then deletes the fixture directory too, which `TempDir` cannot do for a killed
/// process. (`PR_SET_PDEATHSIG` would need `unsafe` and fires when the spawning *thread* exits, which in
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
wait "$pid"
rm -rf "$3""#;

    fn spawn(dir: &Path) -> Self {
        let mut child = Command::new("sh")
            .arg("-c")
            .arg(Self::SCRIPT)
            .arg("regcreds-registry")
            .arg(dir.join("config.yml"))
            .arg(dir.join("registry.log"))
            .arg(dir)
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

// === token server ===

/// The `service` the registry names in its challenge and expects as the token audience.
const TOKEN_SERVICE: &str = "regcreds-test-registry";
/// The issuer the registry trusts.
const TOKEN_ISSUER: &str = "regcreds-test-token-server";

/// A minimal distribution token server on a thread: `GET /token?service=..&scope=..` with Basic
/// credentials answers `{"token","access_token","expires_in"}` (an ES256 JWT granting pull and push
/// on every requested repository) or 401. One request per connection, plain http.
#[derive(Debug)]
struct TokenServer {
    addr: SocketAddr,
    users: Arc<Mutex<Vec<(String, String)>>>,
    /// Users who get a token that grants nothing (see [`TestRegistry::deny_pulls`]).
    denied: Arc<Mutex<Vec<String>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl TokenServer {
    /// Writes `token-ca.crt` (the registry's `rootcertbundle`) and starts serving.
    fn start(dir: &Path, users: Vec<(String, String)>) -> Self {
        let signer = TokenSigner::new(dir);
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind token server");
        let addr = listener.local_addr().expect("token server addr");
        let users = Arc::new(Mutex::new(users));
        let denied = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = std::thread::spawn({
            let (users, denied, stop) = (users.clone(), denied.clone(), stop.clone());
            move || {
                for stream in listener.incoming() {
                    if stop.load(Ordering::SeqCst) {
                        return;
                    }
                    if let Ok(stream) = stream {
                        // A broken client connection is the client's problem, not the fixture's.
                        let _ = answer(stream, &signer, &users, &denied);
                    }
                }
            }
        });
        Self {
            addr,
            users,
            denied,
            stop,
            thread: Some(thread),
        }
    }

    fn realm(&self) -> String {
        format!("http://{}/token", self.addr)
    }

    fn set_users(&self, users: Vec<(String, String)>) {
        *self.users.lock().expect("users lock") = users;
    }

    fn deny_pulls(&self, user: &str) {
        self.denied.lock().expect("denied lock").push(user.to_string());
    }
}

impl Drop for TokenServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the blocking accept() so the thread sees the flag.
        let _ = TcpStream::connect(self.addr);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Serves one token request.
fn answer(
    mut stream: TcpStream,
    signer: &TokenSigner,
    users: &Mutex<Vec<(String, String)>>,
    denied: &Mutex<Vec<String>>,
) -> std::io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    let head = read_head(&mut stream)?;
    let mut lines = head.split("\r\n");
    let target = lines
        .next()
        .and_then(|line| line.split(' ').nth(1))
        .unwrap_or("/");
    let authorization = lines
        .filter_map(|line| line.split_once(':'))
        .find(|(name, _)| name.trim().eq_ignore_ascii_case("authorization"))
        .map(|(_, value)| value.trim().to_string());
    let known = users.lock().expect("users lock").clone();
    let user = authorization
        .as_deref()
        .and_then(decode_basic)
        .filter(|(user, password)| known.iter().any(|(u, p)| u == user && p == password))
        .map(|(user, _)| user);
    let (status, body) = match user {
        Some(user) => {
            let access = if denied.lock().expect("denied lock").contains(&user) {
                serde_json::Value::Array(Vec::new())
            } else {
                granted_access(target)
            };
            let token = signer.token(&user, &access);
            let body = serde_json::json!({ "token": token, "access_token": token, "expires_in": 300 });
            ("200 OK", body.to_string())
        }
        None => (
            "401 Unauthorized",
            r#"{"errors":[{"code":"UNAUTHORIZED","message":"invalid username/password"}]}"#.to_string(),
        ),
    };
    write!(
        stream,
        "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
}

/// Reads up to the blank line that ends the request head (token requests have no body).
fn read_head(stream: &mut TcpStream) -> std::io::Result<String> {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") && head.len() < 64 * 1024 {
        if stream.read(&mut byte)? == 0 {
            break;
        }
        head.push(byte[0]);
    }
    Ok(String::from_utf8_lossy(&head).into_owned())
}

/// `Basic base64(user:password)` → `(user, password)`.
fn decode_basic(value: &str) -> Option<(String, String)> {
    let (scheme, encoded) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = String::from_utf8(STANDARD.decode(encoded.trim()).ok()?).ok()?;
    let (user, password) = decoded.split_once(':')?;
    Some((user.to_string(), password.to_string()))
}

/// The JWT `access` claim: pull and push on every `repository:<name>:<actions>` scope asked for.
fn granted_access(target: &str) -> serde_json::Value {
    let query = target.split_once('?').map_or("", |(_, q)| q);
    let access: Vec<serde_json::Value> = query
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .filter(|(key, _)| *key == "scope")
        .filter_map(|(_, value)| {
            let scope = percent_decode(value);
            let (resource, _actions) = scope.rsplit_once(':')?;
            let (kind, name) = resource.split_once(':')?;
            Some(serde_json::json!({ "type": kind, "name": name, "actions": ["pull", "push"] }))
        })
        .collect();
    serde_json::Value::Array(access)
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| u8::from_str_radix(std::str::from_utf8(h).ok()?, 16).ok());
        match (bytes[i], hex) {
            (b'%', Some(byte)) => {
                out.push(byte);
                i += 3;
            }
            (b'+', _) => {
                out.push(b' ');
                i += 1;
            }
            (other, _) => {
                out.push(other);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Signs registry tokens with a key whose certificate chains to `token-ca.crt`.
///
/// distribution 2.8 takes the signing key from the JWT's `x5c` header and verifies that certificate
/// against its `rootcertbundle`, so the leaf travels in every token.
struct TokenSigner {
    key: KeyPair,
    x5c: String,
}

impl std::fmt::Debug for TokenSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenSigner(***)")
    }
}

impl TokenSigner {
    fn new(dir: &Path) -> Self {
        let ca_key = KeyPair::generate().expect("token CA key");
        let mut ca = CertificateParams::new(Vec::<String>::new()).expect("token CA params");
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca.distinguished_name
            .push(DnType::CommonName, "regcreds test token CA");
        ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::DigitalSignature];
        let ca_pem = ca.self_signed(&ca_key).expect("self-sign token CA").pem();
        fs::write(dir.join("token-ca.crt"), ca_pem).expect("write token-ca.crt");
        let issuer = Issuer::new(ca, ca_key);

        let key = KeyPair::generate().expect("token signing key");
        let mut leaf = CertificateParams::new(Vec::<String>::new()).expect("token signer params");
        leaf.distinguished_name.push(DnType::CommonName, TOKEN_ISSUER);
        leaf.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        let leaf = leaf.signed_by(&key, &issuer).expect("sign token signer cert");
        Self {
            key,
            x5c: STANDARD.encode(leaf.der()),
        }
    }

    /// A compact ES256 JWT for `user` with the given `access` claim, valid for five minutes.
    fn token(&self, user: &str, access: &serde_json::Value) -> String {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("clock after 1970")
            .as_secs();
        let header = serde_json::json!({ "typ": "JWT", "alg": "ES256", "x5c": [self.x5c] });
        let claims = serde_json::json!({
            "iss": TOKEN_ISSUER,
            "sub": user,
            "aud": TOKEN_SERVICE,
            "exp": now + 300,
            "nbf": now - 10,
            "iat": now,
            "jti": format!("{user}-{now}-{}", TOKEN_IDS.fetch_add(1, Ordering::SeqCst)),
            "access": access,
        });
        let signing_input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let der = self.key.sign(signing_input.as_bytes()).expect("sign token");
        format!(
            "{signing_input}.{}",
            URL_SAFE_NO_PAD.encode(ecdsa_der_to_jws(&der))
        )
    }
}

/// Makes every `jti` unique within the process.
static TOKEN_IDS: AtomicU64 = AtomicU64::new(0);

/// JWS ES256 signatures are `r ‖ s`, 32 bytes each; the signer returns ASN.1 DER
/// `SEQUENCE { INTEGER r, INTEGER s }` (short lengths: a P-256 signature is under 128 bytes).
fn ecdsa_der_to_jws(der: &[u8]) -> Vec<u8> {
    assert_eq!(der.first(), Some(&0x30), "ECDSA signature is not a DER SEQUENCE");
    let mut rest = &der[2..];
    let mut out = Vec::with_capacity(64);
    for _ in 0..2 {
        assert_eq!(
            rest.first(),
            Some(&0x02),
            "ECDSA signature part is not a DER INTEGER"
        );
        let len = rest[1] as usize;
        let integer = &rest[2..2 + len];
        // DER adds a 0x00 when the top bit is set, and drops leading zeros: normalise to 32 bytes.
        let integer = &integer[integer.iter().take_while(|b| **b == 0).count()..];
        out.extend(std::iter::repeat_n(0u8, 32 - integer.len()));
        out.extend_from_slice(integer);
        rest = &rest[2 + len..];
    }
    out
}
