//! The command-line tools tests drive the world with, bound to it, and small probes.

use std::{
    io::{Read, Write},
    net::{SocketAddr, TcpStream},
    path::{Path, PathBuf},
    process::Command,
    time::Duration,
};

use super::components::PROXY_HEALTHZ_PORT;
use crate::binaries;

/// `kubectl --kubeconfig <kubeconfig>` with its discovery cache under `home`.
pub(crate) fn kubectl(kubeconfig: &Path, home: &Path) -> Command {
    let mut cmd = Command::new(binaries::kubectl());
    cmd.arg("--kubeconfig")
        .arg(kubeconfig)
        .arg("--cache-dir")
        .arg(home.join(".kube/cache"))
        .env("HOME", home);
    cmd
}

/// `helm` talking to `kubeconfig`, with its cache, config and data under `home`.
pub(crate) fn helm(kubeconfig: &Path, home: &Path) -> Command {
    let mut cmd = Command::new(binaries::helm());
    cmd.env("KUBECONFIG", kubeconfig)
        .env("HOME", home)
        .env("HELM_CACHE_HOME", home.join(".cache/helm"))
        .env("HELM_CONFIG_HOME", home.join(".config/helm"))
        .env("HELM_DATA_HOME", home.join(".local/share/helm"));
    cmd
}

/// kube-proxy answers `/healthz` with 200 once it has written its rules.
pub(crate) async fn kube_proxy_synced() -> bool {
    let addr = SocketAddr::from(([127, 0, 0, 1], PROXY_HEALTHZ_PORT));
    tokio::task::spawn_blocking(move || http_get(addr, "/healthz").is_some_and(|(status, _)| status == 200))
        .await
        .unwrap_or(false)
}

/// `GET path` over plain HTTP/1.1: (status, body), or `None` if nothing answers in 5 s.
pub fn http_get(addr: SocketAddr, path: &str) -> Option<(u16, String)> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    let request = format!("GET {path} HTTP/1.1\r\nhost: {addr}\r\nconnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    let status = response.split_whitespace().nth(1)?.parse().ok()?;
    let body = response.split_once("\r\n\r\n").map(|(_, b)| b.to_string());
    Some((status, body.unwrap_or_default()))
}

/// A fresh directory under `parent` (for copies of manifests a test edits).
pub fn scratch_dir(parent: &Path, prefix: &str) -> std::io::Result<PathBuf> {
    use rand::distr::{Alphanumeric, SampleString};
    let dir = parent.join(format!(
        "{prefix}-{}",
        Alphanumeric.sample_string(&mut rand::rng(), 6).to_lowercase()
    ));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}
