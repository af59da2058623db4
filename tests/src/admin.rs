//! regcreds' admin endpoint (`/healthz`, `/readyz`, `/metrics`) as a test reads it: one plain HTTP/1.1
//! request per call, no client library, so that a test sees exactly what a kubelet probe or a
//! Prometheus scrape would.

use std::{
    io::{Read, Write},
    net::TcpStream,
    time::Duration,
};

/// `GET path` on 127.0.0.1:`port`: the status and the body, or `None` while nothing answers.
pub fn admin_get(port: u16, path: &str) -> Option<(u16, String)> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nhost: localhost\r\nconnection: close\r\n\r\n"
    )
    .ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    let (head, body) = response.split_once("\r\n\r\n")?;
    let status = head.split(' ').nth(1)?.parse().ok()?;
    Some((status, body.to_string()))
}

/// The Prometheus exposition of `/metrics`.
pub fn scrape(port: u16) -> Option<String> {
    admin_get(port, "/metrics")
        .filter(|(status, _)| *status == 200)
        .map(|(_, body)| body)
}

/// The value of the series printed exactly as `series` (name and labels), if present.
pub fn metric_value(exposition: &str, series: &str) -> Option<f64> {
    exposition.lines().find_map(|line| {
        let value = line.strip_prefix(series)?.strip_prefix(' ')?;
        value.trim().parse().ok()
    })
}
