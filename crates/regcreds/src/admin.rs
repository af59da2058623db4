//! The admin endpoint: `/healthz` (process alive), `/readyz` (caches synced and every provider minted
//! once), `/metrics` (OpenMetrics text). A deliberately tiny HTTP/1.1 responder: probes and scrapers send
//! one GET per connection, and this keeps a web framework out of the binary.

use std::{net::SocketAddr, sync::Arc};

use prometheus_client::{encoding::text::encode, registry::Registry};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
    sync::watch,
};
use tracing::{info, warn};

/// Shared state the admin endpoint reports.
#[derive(Clone)]
pub struct AdminState {
    /// Metrics registry.
    pub registry: Arc<Registry>,
    /// Whether the controller is ready (see module docs).
    pub ready: watch::Receiver<bool>,
}

/// Binds `addr` and serves until the process exits.
pub async fn serve(addr: SocketAddr, state: AdminState) -> anyhow::Result<()> {
    let listener = TcpListener::bind(addr).await?;
    info!(%addr, "admin endpoint listening (/healthz, /readyz, /metrics)");
    loop {
        let (stream, _) = listener.accept().await?;
        let state = state.clone();
        tokio::spawn(async move {
            if let Err(error) = respond(stream, &state).await {
                warn!(%error, "admin request failed");
            }
        });
    }
}

async fn respond(mut stream: TcpStream, state: &AdminState) -> std::io::Result<()> {
    let head = read_head(&mut stream).await?;
    let request = String::from_utf8_lossy(&head);
    let path = request.split_whitespace().nth(1).unwrap_or("/");
    let (status, content_type, body) = route(path.split('?').next().unwrap_or(path), state);
    let head = format!(
        "HTTP/1.1 {status}\r\ncontent-type: {content_type}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await?;
    stream.write_all(body.as_bytes()).await?;
    stream.shutdown().await
}

/// Reads until the end of the request head (a blank line), at most 8 KiB, within 5 s. Answering before
/// the whole request arrived would close a socket with unread data, which resets the connection.
async fn read_head(stream: &mut TcpStream) -> std::io::Result<Vec<u8>> {
    let mut head = Vec::with_capacity(512);
    let mut chunk = [0u8; 1024];
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(5);
    while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 8192 {
        let read = tokio::time::timeout_at(deadline, stream.read(&mut chunk))
            .await
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "request head timed out"))??;
        if read == 0 {
            break;
        }
        head.extend_from_slice(&chunk[..read]);
    }
    Ok(head)
}

fn route(path: &str, state: &AdminState) -> (&'static str, &'static str, String) {
    const TEXT: &str = "text/plain; charset=utf-8";
    match path {
        "/healthz" | "/livez" => ("200 OK", TEXT, "ok\n".into()),
        "/readyz" if *state.ready.borrow() => ("200 OK", TEXT, "ready\n".into()),
        "/readyz" => ("503 Service Unavailable", TEXT, "not ready\n".into()),
        "/metrics" => {
            let mut body = String::new();
            match encode(&mut body, &state.registry) {
                Ok(()) => (
                    "200 OK",
                    "application/openmetrics-text; version=1.0.0; charset=utf-8",
                    body,
                ),
                Err(_) => ("500 Internal Server Error", TEXT, "encoding failed\n".into()),
            }
        }
        _ => ("404 Not Found", TEXT, "not found\n".into()),
    }
}
