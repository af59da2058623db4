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
use regcreds_fakes::github_quay::SA_JWT;
use regcreds_testkit::binaries::cache_dir;

use super::fixture::{Fixture, run_script};
use crate::shell::{self, human};

/// The release of cloud-provider-aws whose `ecr-credential-provider` is the peer (the module proxy's
/// newest when this was written).
pub const PEER_VERSION: &str = "1.37.1";

/// The image every ECR plugin is asked about: a private registry in us-east-1 of moto's default account.
pub const ECR_IMAGE: &str = "123456789012.dkr.ecr.us-east-1.amazonaws.com/team/app:1";

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
    /// regcreds' ecr provider, moto over http.
    Ecr,
    /// cloud-provider-aws' `ecr-credential-provider`, the same moto.
    PeerEcr,
    /// regcreds' ecr provider, moto over https, trusting the system's roots and moto's CA.
    EcrTls,
    /// cloud-provider-aws' `ecr-credential-provider`, the same https moto and roots.
    PeerEcrTls,
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
    /// The same moto behind TLS, as AWS's endpoints are.
    moto_tls: Option<Fixture>,
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
            moto_tls: None,
            fake: None,
            notes: Vec::new(),
        };
        match world.start_moto("moto", &[]) {
            Ok(moto) => world.moto = Some(moto),
            Err(error) => world
                .notes
                .push(format!("moto did not start, no ECR rows: {error:#}")),
        }
        match world.start_moto_tls() {
            Ok(moto) => world.moto_tls = Some(moto),
            Err(error) => world.notes.push(format!(
                "moto over https did not start, no https ECR rows: {error:#}"
            )),
        }
        match world.start_fake() {
            Ok(fake) => world.fake = Some(fake),
            Err(error) => world.notes.push(format!(
                "the GitHub/Quay fake did not start, no quay/ghcr rows: {error:#}"
            )),
        }
        Ok(world)
    }

    /// moto (ECR) with its backend loaded (`--warm`), its request log `<name>-requests.jsonl`.
    fn start_moto(&self, name: &str, extra: &[OsString]) -> Result<Fixture> {
        let mut args: Vec<OsString> = vec!["--warm".into()];
        args.extend_from_slice(extra);
        Fixture::start(
            "moto_ecr.py",
            &args,
            &[(
                "ECR_REQUEST_LOG",
                self.file(&format!("{name}-requests.jsonl")).into(),
            )],
            &self.file(&format!("{name}-stderr.txt")),
        )
    }

    /// moto over https, and [`TRUSTED_ROOTS`]: the system's bundle with moto's CA appended.
    fn start_moto_tls(&self) -> Result<Fixture> {
        let tls = self.file("moto-tls");
        std::fs::create_dir_all(&tls)?;
        let moto = self.start_moto("moto-tls", &["--tls".into(), tls.clone().into()])?;
        let mut roots = std::fs::read(SYSTEM_BUNDLE)
            .with_context(|| format!("reading the system's root bundle {SYSTEM_BUNDLE}"))?;
        roots.extend(std::fs::read(tls.join("ca.pem"))?);
        std::fs::write(self.file(TRUSTED_ROOTS), roots)?;
        Ok(moto)
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

    /// The four ECR cases (both plugins, http then https) against the motos that run.
    fn ecr_cases(&self, regcreds: &Path, peer: Option<&Peer>) -> Vec<Case> {
        let motos = [
            (self.moto.as_ref(), "http", "moto (ECR)", "moto"),
            (
                self.moto_tls.as_ref(),
                "https",
                "moto (ECR) over https",
                "moto-tls",
            ),
        ];
        let mut cases = Vec::new();
        for (moto, scheme, endpoint, name) in motos {
            let Some(moto) = moto else { continue };
            let tls = scheme == "https";
            let mut env: Vec<(&str, OsString)> = vec![
                ("AWS_ACCESS_KEY_ID", "AKIDTESTING".into()),
                ("AWS_SECRET_ACCESS_KEY", "test-secret-key".into()),
                (
                    "AWS_ENDPOINT_URL_ECR",
                    format!("{scheme}://127.0.0.1:{}", moto.port).into(),
                ),
                ("AWS_EC2_METADATA_DISABLED", "true".into()),
            ];
            if tls {
                // The same roots for both, as they would find them on a node, plus moto's CA: the bundle
                // (with the CA) where both look first, and the hash directory both also read.
                env.push(("SSL_CERT_FILE", self.file(TRUSTED_ROOTS).into()));
                env.push(("SSL_CERT_DIR", SYSTEM_CERT_DIR.into()));
            }
            let log = Some(self.file(&format!("{name}-requests.jsonl")));
            let mut own = env.clone();
            own.push(("REGCREDS_ECR_REGIONS", "us-east-1".into()));
            cases.push(Case {
                request_log: log.clone(),
                ..self.regcreds_case(
                    regcreds,
                    if tls { Kind::EcrTls } else { Kind::Ecr },
                    &format!("regcreds, ecr ({scheme})"),
                    endpoint,
                    ECR_IMAGE,
                    own,
                )
            });
            if let Some(peer) = peer {
                cases.push(Case {
                    kind: if tls { Kind::PeerEcrTls } else { Kind::PeerEcr },
                    label: format!("cloud-provider-aws `ecr-credential-provider` v{PEER_VERSION} ({scheme})"),
                    endpoint: if tls {
                        "the same https moto"
                    } else {
                        "the same moto"
                    },
                    program: peer.binary.clone(),
                    args: Vec::new(),
                    env: self.with_home(env),
                    image: ECR_IMAGE,
                    request_log: log,
                });
            }
        }
        cases
    }

    /// `env` after `HOME`, the empty directory every plugin gets.
    fn with_home(&self, env: Vec<(&str, OsString)>) -> Vec<(String, OsString)> {
        std::iter::once(("HOME", self.file("home").into_os_string()))
            .chain(env)
            .map(|(k, v)| (k.to_string(), v))
            .collect()
    }

    /// `regcreds credential-provider` with `env`, asked about `image`; no request log (set `request_log`
    /// for an endpoint that keeps one).
    fn regcreds_case(
        &self,
        regcreds: &Path,
        kind: Kind,
        label: &str,
        endpoint: &'static str,
        image: &'static str,
        env: Vec<(&str, OsString)>,
    ) -> Case {
        Case {
            kind,
            label: label.to_string(),
            endpoint,
            program: regcreds.to_path_buf(),
            args: vec!["credential-provider".into()],
            env: self.with_home(env),
            image,
            request_log: None,
        }
    }

    /// Every case whose endpoint runs, in the order they take turns.
    pub fn cases(&self, regcreds: &Path, peer: Option<&Peer>) -> Vec<Case> {
        let mut cases = vec![Case {
            kind: Kind::Floor,
            label: "floor: `/bin/echo` printing a fixed answer".into(),
            endpoint: "none: any process start",
            program: "/bin/echo".into(),
            args: vec![FLOOR_ANSWER.into()],
            env: self.with_home(Vec::new()),
            image: "registry.example.com:5000/team/app:1.2",
            request_log: None,
        }];
        cases.push(self.regcreds_case(
            regcreds,
            Kind::Static,
            "regcreds, static",
            "none: the answer is in its settings",
            "registry.example.com:5000/team/app:1.2",
            vec![
                ("REGCREDS_STATIC_SERVER", "registry.example.com:5000".into()),
                ("REGCREDS_STATIC_USER", "puller".into()),
                ("REGCREDS_STATIC_PASSWORD", "Top-Secret-Pa55".into()),
            ],
        ));
        cases.extend(self.ecr_cases(regcreds, peer));
        if let Some(fake) = &self.fake {
            let url: OsString = format!("https://127.0.0.1:{}", fake.port).into();
            let ca = self.file("tls/ca.pem").into_os_string();
            let log = Some(self.file("fake-requests.jsonl"));
            let quay = self.regcreds_case(
                regcreds,
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
            );
            let ghcr = self.regcreds_case(
                regcreds,
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
            );
            for case in [quay, ghcr] {
                cases.push(Case {
                    request_log: log.clone(),
                    ..case
                });
            }
        }
        cases
    }
}

/// A fixed, valid answer for the floor case.
const FLOOR_ANSWER: &str = r#"{"kind":"CredentialProviderResponse","apiVersion":"credentialprovider.kubelet.k8s.io/v1","cacheKeyType":"Registry","auth":{"registry.example.com:5000":{"username":"u","password":"p"}}}"#;

/// Where Debian (and Ubuntu) keep the system's root bundle, and the hash directory beside it.
const SYSTEM_BUNDLE: &str = "/etc/ssl/certs/ca-certificates.crt";
const SYSTEM_CERT_DIR: &str = "/etc/ssl/certs";
/// The https rows' `SSL_CERT_FILE`, in the scratch directory.
const TRUSTED_ROOTS: &str = "roots-with-moto-ca.pem";

impl Drop for World {
    fn drop(&mut self) {
        // Servers first: they write into the directory.
        self.moto.take();
        self.moto_tls.take();
        self.fake.take();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
