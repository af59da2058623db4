//! regcreds' admin endpoint (`/healthz`, `/readyz`, `/metrics`) as a test reads it: one plain HTTP/1.1
//! request per call, no client library, so that a test sees exactly what a kubelet probe or a
//! Prometheus scrape would. [`metric_value`] reads one exact series, [`metric_sum`] adds the series of a
//! metric whose labels match.

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

/// Sum of the samples of metric `name` whose labels include every `(key, value)` of `labels` (all of
/// its series when `labels` is empty).
pub fn metric_sum(exposition: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    exposition
        .lines()
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

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = r#"# TYPE regcreds_provider_mints counter
regcreds_provider_mints_total{provider="ecr"} 3
regcreds_provider_mints_total{provider="dockerhub"} 2
regcreds_provider_mints_total_other{provider="ecr"} 100
regcreds_leader 1
"#;

    #[test]
    fn metric_value_reads_one_exact_series() {
        assert_eq!(
            metric_value(SAMPLE, "regcreds_provider_mints_total{provider=\"ecr\"}"),
            Some(3.0)
        );
        assert_eq!(metric_value(SAMPLE, "regcreds_leader"), Some(1.0));
        assert_eq!(metric_value(SAMPLE, "regcreds_provider_mints_total"), None);
    }

    #[test]
    fn metric_sum_adds_the_series_whose_labels_match() {
        assert_eq!(metric_sum(SAMPLE, "regcreds_provider_mints_total", &[]), 5.0);
        assert_eq!(
            metric_sum(
                SAMPLE,
                "regcreds_provider_mints_total",
                &[("provider", "dockerhub")]
            ),
            2.0
        );
        assert_eq!(metric_sum(SAMPLE, "regcreds_leader", &[]), 1.0);
        assert_eq!(metric_sum(SAMPLE, "regcreds_missing", &[]), 0.0);
    }
}
