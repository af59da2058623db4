//! A kube client that counts the requests it sends, so tests can assert "no writes" about exactly the
//! code under test (the apiserver's own metrics also count the controller manager's work).

use std::sync::{
    Arc,
    atomic::{AtomicU64, Ordering},
};

use anyhow::Context as _;
use http::{Method, Request};
use kube::{
    Client, Config,
    client::{Body, ClientBuilder},
    config::{KubeConfigOptions, Kubeconfig},
};
use tower::util::MapRequestLayer;

/// Request counts of one [`counting_client`].
#[derive(Clone, Debug, Default)]
pub struct RequestCounter {
    reads: Arc<AtomicU64>,
    writes: Arc<AtomicU64>,
}

impl RequestCounter {
    /// Requests with a method other than GET (POST, PUT, PATCH, DELETE).
    pub fn writes(&self) -> u64 {
        self.writes.load(Ordering::SeqCst)
    }

    /// GET requests (gets, lists and watches).
    pub fn reads(&self) -> u64 {
        self.reads.load(Ordering::SeqCst)
    }

    fn record(&self, method: &Method) {
        let counter = if method == Method::GET {
            &self.reads
        } else {
            &self.writes
        };
        counter.fetch_add(1, Ordering::SeqCst);
    }
}

/// A client for the kubeconfig at `path` that counts every request it sends.
pub async fn counting_client(path: &std::path::Path) -> anyhow::Result<(Client, RequestCounter)> {
    let kubeconfig = Kubeconfig::read_from(path).with_context(|| format!("reading {}", path.display()))?;
    let config = Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default()).await?;
    let counter = RequestCounter::default();
    let recorder = counter.clone();
    let layer = MapRequestLayer::new(move |request: Request<Body>| {
        recorder.record(request.method());
        request
    });
    let client = ClientBuilder::try_from(config)?.with_layer(&layer).build();
    Ok((client, counter))
}
