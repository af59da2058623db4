//! Bringing a control plane up, and deciding when it is usable.

use std::{sync::Mutex, time::Duration};

use anyhow::{Context, Result, bail};
use k8s_openapi::api::core::v1::ServiceAccount;
use kube::Api;
use tokio::time::Instant;

use super::{ControlPlane, ControlPlaneOptions, Ports, Processes, apiserver, etcd, kcm, workdir::Workdir};
use crate::{binaries::Binaries, child::Child, free_ports, kubeconfig, pki, pki::Pki, versions};

/// Fresh ports are picked per attempt; only a lost port race is retried.
const ATTEMPTS: usize = 3;
/// From spawn to `/readyz` OK; a cold start on a 2-core CI machine takes ~5-10 s.
const READY_TIMEOUT: Duration = Duration::from_secs(90);
/// From ready to the `default` ServiceAccount created by the controller manager.
const DEFAULT_SA_TIMEOUT: Duration = Duration::from_secs(60);
/// One `/readyz` probe; the apiserver answers fast or not at all.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);
const POLL_INTERVAL: Duration = Duration::from_millis(100);

/// Starts a control plane, retrying with new ports if one was taken meanwhile.
pub(super) async fn start(options: ControlPlaneOptions) -> Result<ControlPlane> {
    let (bins, version) = binaries_and_version(&options)?;
    let mut attempt = 1;
    loop {
        match start_once(&bins, &version, options).await {
            Err(e) if attempt < ATTEMPTS && format!("{e:#}").contains("address already in use") => {
                eprintln!("regcreds-testkit: port taken during start-up, retrying ({attempt}/{ATTEMPTS})");
                attempt += 1;
            }
            result => return result,
        }
    }
}

/// The binaries `options` ask for and the Kubernetes release they are, checked against what was asked:
/// a `$REGCREDS_CONTROLPLANE_BIN` of another release than `$REGCREDS_K8S_VERSION` names is an error, so
/// a pass meant for the oldest supported version cannot quietly run the newest.
fn binaries_and_version(options: &ControlPlaneOptions) -> Result<(Binaries, String)> {
    let (bins, wanted) = match options.k8s_version {
        Some(version) => (Binaries::locate_version(&version)?, version),
        None => (Binaries::locate()?, versions::selected()?),
    };
    let version = bins.kubernetes_version()?;
    let explicit = options.k8s_version.is_some() || std::env::var_os(versions::K8S_VERSION_ENV).is_some();
    if explicit && version != wanted.kubernetes {
        bail!(
            "{} is Kubernetes v{version}, but v{} was asked for (${} / ControlPlaneOptions::k8s_version)",
            bins.kube_apiserver.display(),
            wanted.kubernetes,
            versions::K8S_VERSION_ENV,
        );
    }
    // The node's kubelet, kube-proxy and kube-scheduler are built at K8S_VERSION only, and a kubelet
    // newer than its apiserver is outside Kubernetes' version skew policy.
    if options.node_ip.is_some() && !version.starts_with(&format!("{}.", versions::LATEST.minor_version())) {
        bail!(
            "a node needs a v{} control plane (the node's parts are v{}); this one is v{version}",
            versions::LATEST.minor_version(),
            versions::K8S_VERSION,
        );
    }
    Ok((bins, version))
}

/// Polls `/readyz` until it answers 200, failing fast if a process exits.
pub(super) async fn wait_ready(cp: &ControlPlane, timeout: Duration) -> Result<()> {
    let client = cp.client();
    let deadline = Instant::now() + timeout;
    loop {
        cp.check_running()?;
        let request = http::Request::get("/readyz").body(Vec::new())?;
        if let Ok(Ok(_)) = tokio::time::timeout(PROBE_TIMEOUT, client.request_text(request)).await {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("kube-apiserver not ready after {timeout:?}");
        }
        tokio::time::sleep(POLL_INTERVAL).await;
    }
}

async fn start_once(bins: &Binaries, version: &str, options: ControlPlaneOptions) -> Result<ControlPlane> {
    let started = Instant::now();
    let workdir = Workdir::create()?;
    let pki = Pki::new()?;
    write_pki(&workdir, &pki, &options)?;
    let [etcd_client, etcd_peer, apiserver] = free_ports()?;
    let ports = Ports {
        etcd_client,
        etcd_peer,
        apiserver,
    };
    let server_url = format!("https://127.0.0.1:{}", ports.apiserver);
    let admin_yaml = kubeconfig::render(
        &server_url,
        &pki.ca_pem(),
        "admin",
        &pki.client_cert("admin", &["system:masters"])?,
    );
    let admin_kubeconfig = workdir.admin_kubeconfig();
    std::fs::write(&admin_kubeconfig, &admin_yaml)?;
    let admin = kubeconfig::to_config(&admin_yaml).await?;

    let etcd = Child::spawn(
        "etcd",
        etcd::command(bins, &workdir, &ports),
        &workdir.log("etcd"),
    )?;
    let apiserver_cmd = apiserver::command(bins, &workdir, &ports, &options);
    let apiserver = Child::spawn("kube-apiserver", apiserver_cmd, &workdir.log("kube-apiserver"))?;
    // Started right away: it waits for the apiserver itself, which overlaps their start-up.
    let kcm_cmd = kcm::command(bins, &workdir, &options);
    let kcm = Child::spawn(
        "kube-controller-manager",
        kcm_cmd,
        &workdir.log("kube-controller-manager"),
    )?;

    let cp = ControlPlane {
        procs: Mutex::new(Processes { etcd, apiserver, kcm }),
        workdir,
        bins: bins.clone(),
        kubernetes_version: version.to_string(),
        options,
        ports,
        pki,
        server_url,
        admin_kubeconfig,
        admin,
        user_files: Default::default(),
    };
    // On error `cp` is dropped here, which kills the processes and removes the directory.
    let ready = async {
        wait_ready(&cp, READY_TIMEOUT).await?;
        wait_default_service_account(&cp).await
    };
    if let Err(e) = ready.await {
        return Err(e.context(format!("control plane failed to start\n{}", cp.log_tails())));
    }
    eprintln!(
        "regcreds-testkit: control plane v{} ready at {} in {:.1?} (dir {})",
        cp.kubernetes_version,
        cp.server_url,
        started.elapsed(),
        cp.dir().display()
    );
    Ok(cp)
}

fn write_pki(workdir: &Workdir, pki: &Pki, options: &ControlPlaneOptions) -> Result<()> {
    let serving = pki.serving_cert(options.node_ip)?;
    let (sa_private, sa_public) = pki::service_account_key()?;
    let files = [
        ("ca.crt", pki.ca_pem()),
        ("apiserver.crt", serving.cert),
        ("apiserver.key", serving.key),
        ("sa.key", sa_private),
        ("sa.pub", sa_public),
    ];
    for (name, pem) in files {
        let path = workdir.pki(name);
        std::fs::write(&path, pem).with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}

/// The controller manager creates it; until then Pods in `default` are rejected by admission.
async fn wait_default_service_account(cp: &ControlPlane) -> Result<()> {
    let api = Api::<ServiceAccount>::namespaced(cp.client(), "default");
    let deadline = Instant::now() + DEFAULT_SA_TIMEOUT;
    loop {
        cp.check_running()?;
        if let Ok(Some(_)) = api.get_opt("default").await {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("no `default` ServiceAccount in namespace `default` after {DEFAULT_SA_TIMEOUT:?}");
        }
        tokio::time::sleep(POLL_INTERVAL).await;
    }
}
