//! The plugin section's Markdown: one row per plugin case, moto alone below them, the comparison with
//! the peer and the targets under the table, and what cold and warm mean.

use std::{fmt::Write as _, time::Duration};

use super::{Kind, Measured, Results};
use crate::{
    bench::{
        machine::Machine,
        stats::{Percentiles, fine, ratio},
    },
    shell::human,
};

/// The issue's target for a static answer's p99 (#27 point 5).
const STATIC_P99_TARGET: Duration = Duration::from_millis(5);

/// The plugin section.
pub fn render(machine: &Machine, results: &Results) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "# regcreds as the kubelet's image credential provider\n");
    let _ = writeln!(
        out,
        "Machine: {}, {} cores, {:.1} GiB RAM, load average {:.2} at the start of this section, {:.2} at its end.  ",
        machine.cpu, machine.cores, machine.memory_gib, results.load.0, results.load.1
    );
    let _ = write!(
        out,
        "{} (release build, {:.1} MB)",
        machine.regcreds,
        mb(results.regcreds_bytes)
    );
    match &results.peer {
        Some(peer) => {
            let built = peer
                .built_in
                .map_or(String::new(), |took| format!(", in {} by this run", human(took)));
            let _ = writeln!(
                out,
                "; peer: cloud-provider-aws' {} ({:.1} MB, built from its Go module with its Makefile's flags{built}).\n",
                peer.version,
                mb(peer.size_bytes)
            );
        }
        None => out.push_str("; no peer (see below).\n\n"),
    }
    let _ = writeln!(
        out,
        "{} answers per plugin, each from a new process as the kubelet execs it; the plugins take turns, \
         one answer each per round, against endpoints on 127.0.0.1.\n",
        results.runs
    );
    out.push_str(
        "| plugin, provider | endpoint | cold: first answer | warm p50 | warm p99 | warm max | CPU / answer | endpoint requests / answer | answers (failed) | cacheDuration answered |\n\
         |---|---|---:|---:|---:|---:|---:|---:|---:|---|\n",
    );
    for case in &results.cases {
        out.push_str(&row(case));
    }
    if !results.moto.is_empty() {
        let (first, rest) = results.moto.split_at(1);
        let p = Percentiles::of(rest);
        let _ = writeln!(
            out,
            "| moto alone: the same GetAuthorizationToken on a new connection, no plugin process (once per round) | moto (ECR) | {} | {} | {} | {} | – | 1 | {} (0) | – |",
            fine(first[0]),
            fine(p.p50),
            fine(p.p99),
            fine(p.max),
            results.moto.len()
        );
    }
    out.push('\n');
    out.push_str(&verdicts(results));
    for note in &results.notes {
        let _ = writeln!(out, "\nNot measured: {note}");
    }
    out.push_str(FOOTNOTES);
    out
}

fn row(case: &Measured) -> String {
    let warm = Percentiles::of(&case.warm);
    let cell = |d: Duration| if warm.count > 0 { fine(d) } else { "–".into() };
    let requests = case
        .requests
        .filter(|(_, execs)| *execs > 0)
        .map_or("–".into(), |(total, execs)| {
            format!("{:.2}", total as f64 / execs as f64)
        });
    let cache = case.answer.as_ref().map_or("–".into(), |a| {
        format!(
            "{} (`{}`)",
            a.cache_duration
                .as_deref()
                .map_or("absent: the config's default".into(), |d| format!("`{d}`")),
            a.cache_key_type
        )
    });
    format!(
        "| {} | {} | {} | {} | {} | {} | {} | {} | {} ({}) | {} |\n",
        case.label,
        case.endpoint,
        case.cold.map_or("failed".into(), fine),
        cell(warm.p50),
        cell(warm.p99),
        cell(warm.max),
        cpu_per_answer(case).map_or("–".into(), fine),
        requests,
        case.answered(),
        case.failures,
        cache
    )
}

/// Mean CPU time per exec.
fn cpu_per_answer(case: &Measured) -> Option<Duration> {
    let execs = u32::try_from(case.execs).ok().filter(|&n| n > 0)?;
    Some(case.cpu / execs)
}

/// The comparison with the peer and the issue's two targets, from the numbers above; one list item each.
fn verdicts(results: &Results) -> String {
    let find = |kind| {
        results
            .cases
            .iter()
            .find(|c| c.kind == kind && !c.warm.is_empty())
    };
    let mut lines = Vec::new();
    let pairs = [
        (Kind::Ecr, Kind::PeerEcr, "http"),
        (Kind::EcrTls, Kind::PeerEcrTls, "https, the system's roots"),
    ];
    for (own, peer, work) in pairs {
        let (Some(own), Some(peer)) = (find(own), find(peer)) else {
            continue;
        };
        let (o, p) = (Percentiles::of(&own.warm), Percentiles::of(&peer.warm));
        let met = o.p50 <= p.p50 && o.p99 <= p.p99;
        lines.push(format!(
            "**regcreds ecr / ecr-credential-provider, {work}** (same moto, image and token): {}. \
             Target \"regcreds at or below the peer on the same work\" (warm p50 and p99): **{}**.",
            compare(own, peer),
            if met { "met" } else { "not met" }
        ));
    }
    if let Some(own) = find(Kind::Static) {
        let p99 = Percentiles::of(&own.warm).p99;
        let floor = find(Kind::Floor).map_or(String::new(), |floor| {
            format!(
                "; the floor, any process start, {} p99",
                fine(Percentiles::of(&floor.warm).p99)
            )
        });
        lines.push(format!(
            "Target \"a static answer under {} p99\": **{}** ({} warm p99{floor}).",
            fine(STATIC_P99_TARGET),
            if p99 < STATIC_P99_TARGET { "met" } else { "not met" },
            fine(p99)
        ));
    }
    lines.iter().map(|line| format!("- {line}\n")).collect()
}

/// `warm p50 **a/b**, warm p99 a/b, cold a/b, CPU per answer a/b`.
fn compare(own: &Measured, other: &Measured) -> String {
    let secs = |d: Duration| d.as_secs_f64();
    let (o, p) = (Percentiles::of(&own.warm), Percentiles::of(&other.warm));
    let pair = |a: Option<Duration>, b: Option<Duration>| {
        a.zip(b).map_or("n/a".into(), |(a, b)| ratio(secs(a), secs(b)))
    };
    format!(
        "warm p50 **{}**, warm p99 {}, cold {}, CPU per answer {}",
        ratio(secs(o.p50), secs(p.p50)),
        ratio(secs(o.p99), secs(p.p99)),
        pair(own.cold, other.cold),
        pair(cpu_per_answer(own), cpu_per_answer(other))
    )
}

fn mb(bytes: u64) -> f64 {
    bytes as f64 / 1_000_000.0
}

const FOOTNOTES: &str = "
Wall time is what the kubelet records as `kubelet_credential_provider_plugin_duration`: from starting
the plugin process, the request already on its stdin, until it has exited and its stdout is read (the
kubelet times `cmd.Run()`, k8s.io/kubernetes v1.37.2 `pkg/credentialprovider/plugin/plugin.go`). Each
plugin gets only its provider's variables and an empty `HOME`. **Cold** is each plugin's first answer
in this run, nothing dropped beforehand: its binary was last run for `--version` before the section
began and may still be in the page cache, and its endpoint has answered before (moto's lazily loaded
ECR backend is loaded before it listens, `moto_ecr.py --warm`). **Warm** is every other answer: each is still a new
process (the kubelet caches answers, never processes), started while the binary, its libraries and the
endpoint are hot. Each round runs every row once, in table order, so all rows meet the same machine.
The floor is `/bin/echo` printing a fixed answer: any process start on this machine, what no plugin
can beat. The http rows ask moto over plain http; the https rows ask the same moto behind TLS, as
AWS's endpoints are, with the same `SSL_CERT_FILE` (the system's bundle with moto's CA appended) and
`SSL_CERT_DIR` (`/etc/ssl/certs`) for both: each loads the roots it would load on a node (Go's
crypto/x509 at the first handshake; regcreds at its first https request, `regcreds-ecr`
`http_client.rs`), then verifies moto's certificate. CPU / answer is the plugin
processes' user + system time (the bench's cutime + cstime) over all its answers. Endpoint requests /
answer come from the endpoint's request log. regcreds keys ECR credentials by the token's
`proxyEndpoint` (`https://<host>`), the peer by the image's host: the kubelet's keyring drops the
scheme (`pkg/credentialprovider/keyring.go`, `BasicDockerKeyring.Add`), so both match the image.
";

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::plugin::Answer;

    fn case(kind: Kind, warm_ms: &[u64]) -> Measured {
        Measured {
            kind,
            label: format!("{kind:?}"),
            endpoint: "moto (ECR)",
            cold: Some(Duration::from_millis(40)),
            warm: warm_ms.iter().map(|&ms| Duration::from_millis(ms)).collect(),
            failures: 0,
            first_failure: None,
            requests: Some((warm_ms.len() + 1, warm_ms.len() + 1)),
            cpu: Duration::from_millis(10 * (warm_ms.len() as u64 + 1)),
            execs: warm_ms.len() + 1,
            answer: Some(Answer {
                cache_key_type: "Registry".into(),
                cache_duration: Some("21599s".into()),
                auth_keys: vec!["r".into()],
            }),
        }
    }

    fn results(cases: Vec<Measured>) -> Results {
        Results {
            runs: 3,
            cases,
            moto: vec![
                Duration::from_millis(9),
                Duration::from_millis(4),
                Duration::from_millis(5),
            ],
            peer: None,
            regcreds_bytes: 20_000_000,
            notes: vec!["nothing".into()],
            load: (1.0, 1.5),
        }
    }

    #[test]
    fn a_row_shows_cold_apart_from_warm_percentiles() {
        let row = row(&case(Kind::Ecr, &[10, 20]));
        assert!(
            row.starts_with("| Ecr | moto (ECR) | 40.0 ms | 10.0 ms | 20.0 ms | 20.0 ms | 10.0 ms | 1.00 | 3 (0) | `21599s` (`Registry`) |"),
            "{row}"
        );
    }

    #[test]
    fn the_verdicts_compare_with_the_peer_and_the_static_target() {
        let text = verdicts(&results(vec![
            case(Kind::Ecr, &[10, 12]),
            case(Kind::PeerEcr, &[20, 24]),
            case(Kind::Static, &[2, 6]),
            case(Kind::Floor, &[1, 3]),
        ]));
        assert!(
            text.starts_with("- **regcreds ecr / ecr-credential-provider, http**"),
            "{text}"
        );
        assert!(!text.contains("https"), "no https rows, no https verdict: {text}");
        assert!(
            text.contains("warm p50 **0.50×**, warm p99 0.50×, cold 1.00×, CPU per answer 1.00×"),
            "{text}"
        );
        assert!(
            text.contains("on the same work\" (warm p50 and p99): **met**"),
            "{text}"
        );
        assert!(
            text.contains(
                "under 5.0 ms p99\": **not met** (6.0 ms warm p99; the floor, any process start, 3.0 ms p99)"
            ),
            "{text}"
        );
    }

    #[test]
    fn the_report_has_the_moto_row_and_the_notes() {
        let machine = Machine::default();
        let text = render(&machine, &results(vec![case(Kind::Static, &[2, 3])]));
        assert!(text.contains("| moto alone"), "{text}");
        assert!(text.contains("| 9.0 ms | 4.0 ms | 5.0 ms | 5.0 ms |"), "{text}");
        assert!(text.contains("Not measured: nothing"), "{text}");
        assert!(
            !text.contains("regcreds ecr / ecr-credential-provider"),
            "no peer, no ratio"
        );
    }
}
