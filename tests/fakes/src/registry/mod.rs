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
//!
//! Modules: `files` (certificates, htpasswd, `config.yml`), `supervisor` (the registry process),
//! `token` (the token server), `image` (the pushed image, skopeo).

mod files;
mod image;
mod supervisor;
mod token;

use std::{
    fs,
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use base64::{Engine, engine::general_purpose::STANDARD};

use self::{
    files::{Auth, config_yaml, write_certificates, write_htpasswd},
    supervisor::Supervisor,
    token::TokenServer,
};
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

    /// The users and passwords the registry accepts, first one first.
    pub fn users(&self) -> &[(String, String)] {
        &self.users
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
