//! A kube client that counts and records the requests it sends, so tests can assert about exactly the
//! code under test (the apiserver's own metrics also count the controller manager's work): "no writes",
//! or "one create and one patch per namespace, and no read".
//!
//! It can also hold back the responses of watch requests ([`RequestCounter::hold_watches`]): the code
//! under test then has its initial lists but hears of no change, so its caches are stale on purpose.

use std::{
    future::Future,
    pin::Pin,
    sync::{
        Arc, Mutex, PoisonError,
        atomic::{AtomicU64, Ordering},
    },
    task::{Context, Poll},
};

use anyhow::Context as _;
use http::{Method, Request, Response, header::CONTENT_TYPE};
use kube::{
    Client, Config,
    client::{Body, ClientBuilder},
    config::{KubeConfigOptions, Kubeconfig},
};
use tokio::sync::watch;
use tower::{Layer, Service};

/// One request as sent, and the status it was answered with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Recorded {
    /// HTTP method.
    pub method: Method,
    /// Path, e.g. `/api/v1/namespaces/a/secrets/b`.
    pub path: String,
    /// Query string (empty if none).
    pub query: String,
    /// Whether the body is a server-side apply patch.
    pub apply: bool,
    /// HTTP status, `None` if no answer came (connection error).
    pub status: Option<u16>,
}

impl Recorded {
    /// `(namespace, resource, name)` of a core-group (`/api/v1/...`) path; `namespace` and `name` are
    /// `None` for cluster-wide lists and watches.
    pub fn target(&self) -> Option<(Option<&str>, &str, Option<&str>)> {
        let parts: Vec<&str> = self.path.strip_prefix("/api/v1/")?.split('/').collect();
        match parts.as_slice() {
            ["namespaces", namespace, resource] => Some((Some(namespace), resource, None)),
            ["namespaces", namespace, resource, name, ..] => Some((Some(namespace), resource, Some(name))),
            [resource] => Some((None, resource, None)),
            [resource, name] => Some((None, resource, Some(name))),
            _ => None,
        }
    }

    /// The namespace a request is about, if any.
    pub fn namespace(&self) -> Option<&str> {
        self.target().and_then(|(namespace, resource, name)| {
            // `/api/v1/namespaces/<name>` is about that namespace object itself.
            namespace.or(if resource == "namespaces" { name } else { None })
        })
    }

    /// The resource (plural) a core-group request is about.
    pub fn resource(&self) -> Option<&str> {
        self.target().map(|(_, resource, _)| resource)
    }

    /// Whether this is a watch.
    pub fn is_watch(&self) -> bool {
        self.query.split('&').any(|pair| pair == "watch=true")
    }

    /// `"POST secrets 201"`-style summary, with `APPLY` for server-side apply.
    pub fn summary(&self) -> String {
        let verb = if self.apply {
            "APPLY".to_string()
        } else {
            self.method.to_string()
        };
        let status = self.status.map_or("-".to_string(), |s| s.to_string());
        format!("{verb} {} {status}", self.resource().unwrap_or(&self.path))
    }
}

/// Request counts and records of one [`counting_client`].
#[derive(Clone, Debug)]
pub struct RequestCounter {
    reads: Arc<AtomicU64>,
    writes: Arc<AtomicU64>,
    log: Arc<Mutex<Vec<Recorded>>>,
    watches_open: Arc<watch::Sender<bool>>,
}

impl Default for RequestCounter {
    fn default() -> Self {
        Self {
            reads: Default::default(),
            writes: Default::default(),
            log: Default::default(),
            watches_open: Arc::new(watch::Sender::new(true)),
        }
    }
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

    /// Every answered request so far, in the order the answers came (a watch once its response started).
    pub fn requests(&self) -> Vec<Recorded> {
        self.log.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// From now on, responses to watch requests are held back until [`Self::release_watches`].
    pub fn hold_watches(&self) {
        self.watches_open.send_replace(false);
    }

    /// Lets held watch responses through.
    pub fn release_watches(&self) {
        self.watches_open.send_replace(true);
    }

    fn count(&self, method: &Method) {
        let counter = if method == Method::GET {
            &self.reads
        } else {
            &self.writes
        };
        counter.fetch_add(1, Ordering::SeqCst);
    }

    fn record(&self, request: Recorded) {
        self.log
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(request);
    }
}

/// A client for the kubeconfig at `path` that counts and records every request it sends.
pub async fn counting_client(path: &std::path::Path) -> anyhow::Result<(Client, RequestCounter)> {
    let kubeconfig = Kubeconfig::read_from(path).with_context(|| format!("reading {}", path.display()))?;
    let config = Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default()).await?;
    let counter = RequestCounter::default();
    let layer = RecordingLayer(counter.clone());
    let client = ClientBuilder::try_from(config)?.with_layer(&layer).build();
    Ok((client, counter))
}

struct RecordingLayer(RequestCounter);

impl<S> Layer<S> for RecordingLayer {
    type Service = Recording<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Recording {
            inner,
            counter: self.0.clone(),
        }
    }
}

/// Records each request and its answer; holds watch answers while watches are held.
struct Recording<S> {
    inner: S,
    counter: RequestCounter,
}

type BoxedFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

impl<S, B> Service<Request<Body>> for Recording<S>
where
    S: Service<Request<Body>, Response = Response<B>>,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    B: Send + 'static,
{
    type Error = S::Error;
    type Future = BoxedFuture<Result<Response<B>, S::Error>>;
    type Response = Response<B>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<Body>) -> Self::Future {
        self.counter.count(request.method());
        let mut recorded = Recorded {
            method: request.method().clone(),
            path: request.uri().path().to_string(),
            query: request.uri().query().unwrap_or_default().to_string(),
            apply: request
                .headers()
                .get(CONTENT_TYPE)
                .is_some_and(|t| t.as_bytes().starts_with(b"application/apply-patch")),
            status: None,
        };
        let counter = self.counter.clone();
        let answer = self.inner.call(request);
        Box::pin(async move {
            let result = answer.await;
            if recorded.is_watch() {
                let mut open = counter.watches_open.subscribe();
                // Err only if every sender is gone, which cannot happen while `counter` lives.
                let _ = open.wait_for(|open| *open).await;
            }
            recorded.status = result.as_ref().ok().map(|r| r.status().as_u16());
            counter.record(recorded);
            result
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn recorded(method: Method, path: &str, query: &str) -> Recorded {
        Recorded {
            method,
            path: path.into(),
            query: query.into(),
            apply: false,
            status: Some(200),
        }
    }

    #[test]
    fn paths_are_split_into_namespace_resource_and_name() {
        let get = recorded(Method::GET, "/api/v1/namespaces/a/secrets/s", "");
        assert_eq!(get.target(), Some((Some("a"), "secrets", Some("s"))));
        assert_eq!(get.namespace(), Some("a"));
        let watch = recorded(
            Method::GET,
            "/api/v1/serviceaccounts",
            "fieldSelector=metadata.name%3Ddefault&watch=true",
        );
        assert_eq!(
            (watch.namespace(), watch.resource()),
            (None, Some("serviceaccounts"))
        );
        assert!(watch.is_watch());
        let create = recorded(Method::POST, "/api/v1/namespaces/a/secrets", "");
        assert_eq!(create.summary(), "POST secrets 200");
        assert_eq!(
            recorded(Method::GET, "/api/v1/namespaces/a", "").namespace(),
            Some("a")
        );
        assert_eq!(
            recorded(Method::GET, "/apis/coordination.k8s.io/v1/x", "").target(),
            None
        );
    }
}
