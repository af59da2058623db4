//! What each plugin is asked, with which settings, and which local endpoint answers it.
//!
//! Every plugin runs with exactly its provider's variables (the CredentialProviderConfig's `env` list)
//! and `HOME` set to an empty directory, so neither side finds `~/.aws` or other local configuration.
//! (A kubelet also passes its own environment; a bare one is the same for both sides.)
//!
//! The peer, cloud-provider-aws' `ecr-credential-provider`, reads from its module
//! (`k8s.io/cloud-provider-aws@v1.37.1`, `cmd/ecr-credential-provider/main.go`):
//! - the region comes from the image's host (`parseRegionFromECRPrivateHost`, `ecrPrivateHostPattern`:
//!   `<12 digits>.dkr.ecr.<region>.amazonaws.com`), so the image is `123456789012.dkr.ecr.us-east-1…`;
//! - the client is `config.LoadDefaultConfig(ctx, config.WithRegion(region), …)` then
//!   `ecr.NewFromConfig(cfg)` (`defaultECRProvider`): the Go SDK v2 (config v1.29.14) honours
//!   `AWS_ENDPOINT_URL_ECR`, and the static keys come from `AWS_ACCESS_KEY_ID`/`AWS_SECRET_ACCESS_KEY`;
//! - it sends one `GetAuthorizationToken` without registry IDs (`getPrivateCredsData`) and answers
//!   `cacheKeyType: Registry`, the image's host as the `auth` key and `cacheDuration` = half of
//!   `expiresAt - now` (`getCacheDuration`).
//!
//! regcreds gets the same: `REGCREDS_ECR_REGIONS=us-east-1`, the same keys and `AWS_ENDPOINT_URL_ECR`
//! (its compatibility spelling of `REGCREDS_ECR_ENDPOINT_URL`), no registry IDs: one GetAuthorizationToken
//! to the same moto, and also half the token's life as `cacheDuration`.

use std::{
    ffi::OsString,
    path::{Path, PathBuf},
    process::Command,
    time::{Duration, Instant},
};

use anyhow::{Context, Result, bail};
use regcreds_testkit::binaries::cache_dir;

use super::fixture::{Fixture, run_script};
use crate::shell::{self, human};

/// The release of cloud-provider-aws whose `ecr-credential-provider` is the peer (the module proxy's
/// newest when this was written).
pub const PEER_VERSION: &str = "1.37.1";

/// The image every ECR plugin is asked about: a private registry in us-east-1 of moto's default account.
pub const ECR_IMAGE: &str = "123456789012.dkr.ecr.us-east-1.amazonaws.com/team/app:1";

/// A ServiceAccount-token-shaped JWT the Quay fake's default robot federation accepts (issuer
/// `https://kubernetes.default.svc.cluster.local`, subject `system:serviceaccount:regcreds:regcreds`,
/// audience `quay.example.com`; the fake compares the whole token instead of checking a signature).
/// The same as `regcreds_fakes::github_quay::SA_JWT`, which xtask does not depend on.
const SA_JWT: &str = "eyJhbGciOiJSUzI1NiIsImtpZCI6ImsxIn0.eyJpc3MiOiJodHRwczovL2t1YmVybmV0ZXMuZGVmYXVsdC5zdmMuY2x1c3Rlci5sb2NhbCIsInN1YiI6InN5c3RlbTpzZXJ2aWNlYWNjb3VudDpyZWdjcmVkczpyZWdjcmVkcyIsImF1ZCI6WyJxdWF5LmV4YW1wbGUuY29tIl0sImlhdCI6MTc2NzIyNTYwMCwiZXhwIjo0MTAyNDQ0ODAwfQ.c2ln";

/// The peer binary and what the report says about it.
#[derive(Debug, Clone)]
pub struct Peer {
    pub binary: PathBuf,
    /// `ecr-credential-provider version v1.37.1`.
    pub version: String,
    pub size_bytes: u64,
    /// How long this run took to build it (`None`: cached or given).
    pub built_in: Option<Duration>,
}

/// `explicit`, else the cached build of [`PEER_VERSION`], building it first if missing
/// (`xtask/scripts/ecr-credential-provider-build.sh`: the Go module, its own go.mod, the Makefile's flags).
pub fn peer(explicit: Option<&Path>) -> Result<Peer> {
    let (binary, built_in) = match explicit {
        Some(binary) => (binary.to_path_buf(), None),
        None => {
            let binary = cache_dir()
                .join("ecr-credential-provider")
                .join(format!("v{PEER_VERSION}"))
                .join("bin/ecr-credential-provider");
            if binary.is_file() {
                (binary, None)
            } else {
                let started = Instant::now();
                shell::run(
                    Command::new("bash")
                        .arg(shell::repo_root().join("xtask/scripts/ecr-credential-provider-build.sh"))
                        .env("ECR_CREDENTIAL_PROVIDER_VERSION", PEER_VERSION),
                )?;
                let took = started.elapsed();
                crate::bench::progress(&format!("ecr-credential-provider built in {}", human(took)));
                (binary, Some(took))
            }
        }
    };
    let output = Command::new(&binary)
        .arg("--version")
        .output()
        .with_context(|| format!("running {} --version", binary.display()))?;
    if !output.status.success() {
        bail!("{} --version failed ({})", binary.display(), output.status);
    }
    Ok(Peer {
        version: String::from_utf8_lossy(&output.stdout).trim().to_string(),
        size_bytes: std::fs::metadata(&binary)?.len(),
        binary,
        built_in,
    })
}

/// Which answer a case gives, for the comparisons of the report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `/bin/echo` printing a fixed answer: what starting any process costs on this machine.
    Floor,
    Static,
    /// regcreds' ecr provider.
    Ecr,
    /// The same with `SSL_CERT_FILE` naming one CA: a diagnostic of what loading the system's root
    /// store costs (aws-smithy-http-client 1.5.2 loads it when the client is built,
    /// `client/tls/rustls_provider.rs`, `rustls_native_certs::load_native_certs()`, even for an http://
    /// endpoint; Go's crypto/x509 only at the first TLS handshake, which moto over http never has).
    EcrOneRoot,
    /// cloud-provider-aws' `ecr-credential-provider`.
    PeerEcr,
    Quay,
    Ghcr,
}

/// One plugin, configured for one provider, asked about one image.
pub struct Case {
    pub kind: Kind,
    /// The row's name.
    pub label: String,
    /// What answers it, for the row.
    pub endpoint: &'static str,
    pub program: PathBuf,
    pub args: Vec<OsString>,
    pub env: Vec<(String, OsString)>,
    pub image: &'static str,
    /// The endpoint's request log (one JSON line per request), to count requests per answer.
    pub request_log: Option<PathBuf>,
}

/// The servers the cases talk to, and the scratch directory holding their files; stopped on drop.
pub struct World {
    dir: PathBuf,
    moto: Option<Fixture>,
    fake: Option<Fixture>,
    /// Why a server is missing (its cases are left out; the report says so).
    pub notes: Vec<String>,
}

impl World {
    /// Starts moto (ECR) and the GitHub/Quay fake in `dir` (created, and removed on drop). A server
    /// that does not start costs its cases, noted in [`World::notes`].
    pub fn start(dir: &Path) -> Result<Self> {
        if dir.exists() {
            std::fs::remove_dir_all(dir).with_context(|| format!("removing {}", dir.display()))?;
        }
        std::fs::create_dir_all(dir.join("home")).with_context(|| format!("creating {}", dir.display()))?;
        let mut world = Self {
            dir: dir.to_path_buf(),
            moto: None,
            fake: None,
            notes: Vec::new(),
        };
        match Fixture::start(
            "moto_ecr.py",
            &["--host".into(), "127.0.0.1".into(), "--port".into(), "0".into()],
            &[("ECR_REQUEST_LOG", world.file("moto-requests.jsonl").into())],
            &world.file("moto-stderr.txt"),
        ) {
            Ok(moto) => world.moto = Some(moto),
            Err(error) => world
                .notes
                .push(format!("moto did not start, no ECR rows: {error:#}")),
        }
        match world.start_fake() {
            Ok(fake) => world.fake = Some(fake),
            Err(error) => world.notes.push(format!(
                "the GitHub/Quay fake did not start, no quay/ghcr rows: {error:#}"
            )),
        }
        Ok(world)
    }

    fn start_fake(&self) -> Result<Fixture> {
        let keys = self.file("keys");
        std::fs::create_dir_all(&keys)?;
        run_script("fake_cloud.py", &["genkey".into(), keys.clone().into()])?;
        std::fs::write(self.file("sa-token"), SA_JWT)?;
        let tls = self.file("tls");
        std::fs::create_dir_all(&tls)?;
        Fixture::start(
            "fake_github_quay.py",
            &["serve".into(), "--tls".into(), tls.into()],
            &[
                ("FAKE_REQUEST_LOG", self.file("fake-requests.jsonl").into()),
                ("FAKE_GITHUB_PUBLIC_KEY", keys.join("public.pem").into()),
                ("FAKE_QUAY_SA_TOKEN", SA_JWT.into()),
            ],
            &self.file("fake-stderr.txt"),
        )
    }

    fn file(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// moto's port, if it runs.
    pub fn moto_port(&self) -> Option<u16> {
        self.moto.as_ref().map(|moto| moto.port)
    }

    /// Every case whose endpoint runs, in the order they take turns.
    pub fn cases(&self, regcreds: &Path, peer: Option<&Peer>) -> Vec<Case> {
        let home = ("HOME".to_string(), self.file("home").into_os_string());
        let regcreds_case = |kind, label: &str, endpoint, image, env: Vec<(&str, OsString)>, log| Case {
            kind,
            label: label.to_string(),
            endpoint,
            program: regcreds.to_path_buf(),
            args: vec!["credential-provider".into()],
            env: std::iter::once(home.clone())
                .chain(env.into_iter().map(|(k, v)| (k.to_string(), v)))
                .collect(),
            image,
            request_log: log,
        };
        let mut cases = vec![Case {
            kind: Kind::Floor,
            label: "floor: `/bin/echo` printing a fixed answer".into(),
            endpoint: "none: any process start",
            program: "/bin/echo".into(),
            args: vec![FLOOR_ANSWER.into()],
            env: vec![home.clone()],
            image: "registry.example.com:5000/team/app:1.2",
            request_log: None,
        }];
        cases.push(regcreds_case(
            Kind::Static,
            "regcreds, static",
            "none: the answer is in its settings",
            "registry.example.com:5000/team/app:1.2",
            vec![
                ("REGCREDS_STATIC_SERVER", "registry.example.com:5000".into()),
                ("REGCREDS_STATIC_USER", "puller".into()),
                ("REGCREDS_STATIC_PASSWORD", "Top-Secret-Pa55".into()),
            ],
            None,
        ));
        if let Some(port) = self.moto_port() {
            let aws = || -> Vec<(&str, OsString)> {
                vec![
                    ("AWS_ACCESS_KEY_ID", "AKIDTESTING".into()),
                    ("AWS_SECRET_ACCESS_KEY", "test-secret-key".into()),
                    ("AWS_ENDPOINT_URL_ECR", format!("http://127.0.0.1:{port}").into()),
                    ("AWS_EC2_METADATA_DISABLED", "true".into()),
                ]
            };
            let log = Some(self.file("moto-requests.jsonl"));
            let mut own = aws();
            own.push(("REGCREDS_ECR_REGIONS", "us-east-1".into()));
            cases.push(regcreds_case(
                Kind::Ecr,
                "regcreds, ecr",
                "moto (ECR)",
                ECR_IMAGE,
                own.clone(),
                log.clone(),
            ));
            if let Some(one_root) = one_root_file() {
                own.push(("SSL_CERT_FILE", one_root.into()));
                cases.push(regcreds_case(
                    Kind::EcrOneRoot,
                    "diagnostic: regcreds, ecr, `SSL_CERT_FILE` = one CA (no system root store)",
                    "the same moto",
                    ECR_IMAGE,
                    own,
                    log.clone(),
                ));
            }
            if let Some(peer) = peer {
                cases.push(Case {
                    kind: Kind::PeerEcr,
                    label: format!("cloud-provider-aws `ecr-credential-provider` v{PEER_VERSION}"),
                    endpoint: "the same moto",
                    program: peer.binary.clone(),
                    args: Vec::new(),
                    env: std::iter::once(home.clone())
                        .chain(aws().into_iter().map(|(k, v)| (k.to_string(), v)))
                        .collect(),
                    image: ECR_IMAGE,
                    request_log: log,
                });
            }
        }
        if let Some(fake) = &self.fake {
            let url: OsString = format!("https://127.0.0.1:{}", fake.port).into();
            let ca = self.file("tls/ca.pem").into_os_string();
            let log = Some(self.file("fake-requests.jsonl"));
            cases.push(regcreds_case(
                Kind::Quay,
                "regcreds, quay (robot federation)",
                "Quay fake (HTTPS)",
                "quay.example.com/myorg/app:1",
                vec![
                    ("REGCREDS_QUAY_ROBOT", "myorg+puller".into()),
                    ("REGCREDS_QUAY_REGISTRY", "quay.example.com".into()),
                    ("REGCREDS_QUAY_TOKEN_FILE", self.file("sa-token").into()),
                    ("REGCREDS_QUAY_FEDERATION_URL", url.clone()),
                    ("REGCREDS_QUAY_CA_FILE", ca.clone()),
                ],
                log.clone(),
            ));
            cases.push(regcreds_case(
                Kind::Ghcr,
                "regcreds, ghcr (GitHub App)",
                "GitHub fake (HTTPS)",
                "ghcr.io/acme/app:1",
                vec![
                    ("REGCREDS_GHCR_APP_ID", "123456".into()),
                    ("REGCREDS_GHCR_INSTALLATION_ID", "987654".into()),
                    (
                        "REGCREDS_GHCR_PRIVATE_KEY_FILE",
                        self.file("keys/pkcs1.pem").into(),
                    ),
                    ("REGCREDS_GHCR_API_URL", url),
                    ("REGCREDS_GHCR_CA_FILE", ca),
                ],
                log,
            ));
        }
        cases
    }
}

/// A fixed, valid answer for the floor case.
const FLOOR_ANSWER: &str = r#"{"kind":"CredentialProviderResponse","apiVersion":"credentialprovider.kubelet.k8s.io/v1","cacheKeyType":"Registry","auth":{"registry.example.com:5000":{"username":"u","password":"p"}}}"#;

/// One CA certificate of the system's store (the first `.pem` of `/etc/ssl/certs` by name).
fn one_root_file() -> Option<PathBuf> {
    let mut pems: Vec<PathBuf> = std::fs::read_dir("/etc/ssl/certs")
        .ok()?
        .filter_map(|entry| Some(entry.ok()?.path()))
        .filter(|path| path.extension().is_some_and(|ext| ext == "pem"))
        .collect();
    pems.sort();
    pems.into_iter().next()
}

impl Drop for World {
    fn drop(&mut self) {
        // Servers first: they write into the directory.
        self.moto.take();
        self.fake.take();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
