//! Shared by the fault, refresh and hygiene tests: `regcreds run` as a child process, `/metrics` parsing
//! and namespace helpers (the patched moto ECR server is `regcreds_testkit::moto`).

#![allow(dead_code)]

pub mod propagator;

use std::{
    collections::BTreeMap,
    io::{Read, Write},
    net::TcpStream,
    path::{Path, PathBuf},
    process::{Child, Command, ExitStatus, Stdio},
    time::Duration,
};

use k8s_openapi::api::core::v1::{Namespace, Secret, ServiceAccount};
use kube::{Api, Client, api::PostParams};
pub use regcreds_testkit::free_port;
use regcreds_testkit::{regcreds_binary, wait_for};

/// Label every test namespace carries, so each regcreds instance selects only its own test's.
pub const TEST_LABEL: &str = "regcreds-e2e/test";

/// `GET path` on `127.0.0.1:port`: (status code, body).
pub fn http_get(port: u16, path: &str) -> Option<(u16, String)> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    stream
        .write_all(format!("GET {path} HTTP/1.1\r\nhost: localhost\r\nconnection: close\r\n\r\n").as_bytes())
        .ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    let status = response.split_whitespace().nth(1)?.parse().ok()?;
    let body = response.split_once("\r\n\r\n").map(|(_, b)| b.to_string());
    Some((status, body.unwrap_or_default()))
}

/// Sum of the samples of metric `name` whose labels include every `(key, value)` of `labels`.
pub fn metric_sum(text: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .filter_map(|line| {
            let rest = line.strip_prefix(name)?;
            let (label_text, value) = match rest.strip_prefix('{') {
                Some(rest) => rest.split_once("} ")?,
                None => ("", rest.strip_prefix(' ')?),
            };
            labels
                .iter()
                .all(|(k, v)| label_text.contains(&format!("{k}=\"{v}\"")))
                .then(|| value.split_whitespace().next()?.parse::<f64>().ok())?
        })
        .sum()
}

/// A running `regcreds run`, killed on drop.
pub struct Regcreds {
    child: Child,
    /// Admin endpoint port.
    pub admin_port: u16,
    /// Its stderr (the log).
    pub log: PathBuf,
}

impl Regcreds {
    /// Starts `regcreds run` with a clean environment: `KUBECONFIG`, the admin port, no leader election,
    /// JSON logs, then `env` (which may override any of those).
    pub fn spawn(kubeconfig: &Path, env: &[(&str, &str)], log: PathBuf) -> Self {
        let admin_port = free_port();
        let child = Command::new(regcreds_binary())
            .arg("run")
            .env_clear()
            .env("KUBECONFIG", kubeconfig)
            .env("REGCREDS_ADMIN_ADDR", format!("127.0.0.1:{admin_port}"))
            .env("REGCREDS_LEADER_ELECTION", "false")
            .env("REGCREDS_LOG_FORMAT", "json")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("log file"))
            .spawn()
            .expect("regcreds starts");
        Self {
            child,
            admin_port,
            log,
        }
    }

    /// The `/metrics` text, if the admin endpoint answers.
    pub fn metrics(&self) -> Option<String> {
        http_get(self.admin_port, "/metrics").and_then(|(status, body)| (status == 200).then_some(body))
    }

    /// `metric_sum` over a fresh scrape (0 if the endpoint does not answer).
    pub fn metric(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.metrics().map_or(0.0, |text| metric_sum(&text, name, labels))
    }

    /// `/readyz` status code.
    pub fn readyz(&self) -> Option<u16> {
        http_get(self.admin_port, "/readyz").map(|r| r.0)
    }

    /// The log so far.
    pub fn logs(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits until the log contains `needle`.
    pub async fn wait_log(&self, needle: &str, timeout: Duration) {
        wait_for(&format!("log line {needle:?}"), timeout, || async {
            self.logs().contains(needle).then_some(())
        })
        .await;
    }

    /// Whether it has exited (and how).
    pub fn exited(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// SIGTERM, then waits (<= 30 s) for a clean exit.
    pub async fn stop(mut self) -> ExitStatus {
        let pid = self.child.id().to_string();
        Command::new("kill").args(["-TERM", &pid]).status().expect("kill");
        wait_for("regcreds to exit", Duration::from_secs(30), || {
            let exited = self.child.try_wait().ok().flatten();
            async move { exited }
        })
        .await
    }
}

impl Drop for Regcreds {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn env_refs<'a>(env: &'a [(&'a str, String)]) -> Vec<(&'a str, &'a str)> {
    env.iter().map(|(k, v)| (*k, v.as_str())).collect()
}

/// Creates namespace `name` with `labels` (already existing is fine) and waits for its `default`
/// ServiceAccount.
pub async fn ensure_namespace(client: &Client, name: &str, labels: &[(&str, &str)]) {
    let mut namespace = Namespace::default();
    namespace.metadata.name = Some(name.into());
    namespace.metadata.labels = Some(
        labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect::<BTreeMap<_, _>>(),
    );
    match Api::<Namespace>::all(client.clone())
        .create(&PostParams::default(), &namespace)
        .await
    {
        Ok(_) => {}
        Err(kube::Error::Api(status)) if status.code == 409 => {}
        Err(error) => panic!("creating namespace {name}: {error}"),
    }
    let accounts = Api::<ServiceAccount>::namespaced(client.clone(), name);
    wait_for(
        &format!("ServiceAccount {name}/default"),
        Duration::from_secs(60),
        || async { accounts.get_opt("default").await.ok().flatten() },
    )
    .await;
}

/// Deletes namespaces, ignoring errors (test clean-up).
pub async fn delete_namespaces(client: &Client, names: &[&str]) {
    let api = Api::<Namespace>::all(client.clone());
    for name in names {
        let _ = api.delete(name, &Default::default()).await;
    }
}

/// Secret `name` in `ns`, if any.
pub async fn secret(client: &Client, ns: &str, name: &str) -> Option<Secret> {
    Api::<Secret>::namespaced(client.clone(), ns)
        .get_opt(name)
        .await
        .ok()
        .flatten()
}

/// A Secret `name` that a user made by hand (no regcreds label, type `Opaque`): what regcreds must
/// leave alone.
pub fn users_opaque_secret(name: &str) -> Secret {
    Secret {
        metadata: kube::api::ObjectMeta {
            name: Some(name.into()),
            ..Default::default()
        },
        type_: Some("Opaque".into()),
        data: Some(BTreeMap::from([(
            "token".to_string(),
            k8s_openapi::ByteString(b"user-owned".to_vec()),
        )])),
        ..Default::default()
    }
}

/// The `.dockerconfigjson` bytes of Secret `name` in `ns`.
pub async fn secret_data(client: &Client, ns: &str, name: &str) -> Option<Vec<u8>> {
    let secret = secret(client, ns, name).await?;
    Some(secret.data?.get(".dockerconfigjson")?.0.clone())
}

/// The `imagePullSecrets` names of ServiceAccount `sa` in `ns`.
pub async fn pull_secret_refs(client: &Client, ns: &str, sa: &str) -> Option<Vec<String>> {
    let account = Api::<ServiceAccount>::namespaced(client.clone(), ns)
        .get_opt(sa)
        .await
        .ok()??;
    Some(
        account
            .image_pull_secrets
            .unwrap_or_default()
            .into_iter()
            .map(|r| r.name)
            .collect(),
    )
}
