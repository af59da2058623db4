//! Reading `apiserver_request_total` from the apiserver's Prometheus text exposition.
//!
//! Lines look like
//! `apiserver_request_total{code="201",component="apiserver",...,resource="secrets",...,verb="POST",version="v1"} 3`.

/// The counter summed by [`sum_requests`].
const METRIC: &str = "apiserver_request_total";

/// Sum of the counter over series whose `verb` is in `verbs` and, if given, whose `resource` matches.
pub fn sum_requests(exposition: &str, verbs: &[&str], resource: Option<&str>) -> u64 {
    exposition
        .lines()
        .filter_map(|line| line.strip_prefix(METRIC)?.strip_prefix('{'))
        .filter_map(|rest| {
            let (labels, value) = rest.rsplit_once("} ")?;
            let verb_ok = label(labels, "verb").is_some_and(|v| verbs.contains(&v));
            let resource_ok = resource.is_none_or(|r| label(labels, "resource") == Some(r));
            // Counters are printed as floats (e.g. `1.2e+06` once large); they are whole numbers.
            (verb_ok && resource_ok)
                .then(|| value.trim().parse::<f64>().ok())
                .flatten()
        })
        .map(|v| v as u64)
        .sum()
}

/// The value of `name` in a `k="v",k2="v2"` label set (values here never contain quotes or commas).
fn label<'a>(labels: &'a str, name: &str) -> Option<&'a str> {
    labels.split(',').find_map(|pair| {
        let (key, value) = pair.split_once('=')?;
        (key == name).then(|| value.trim_matches('"'))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = r#"# HELP apiserver_request_total [STABLE] Counter of apiserver requests
# TYPE apiserver_request_total counter
apiserver_request_total{code="201",component="apiserver",dry_run="",group="",resource="secrets",scope="resource",subresource="",verb="POST",version="v1"} 3
apiserver_request_total{code="200",component="apiserver",dry_run="",group="",resource="secrets",scope="resource",subresource="",verb="PUT",version="v1"} 2
apiserver_request_total{code="201",component="apiserver",dry_run="",group="",resource="namespaces",scope="resource",subresource="",verb="POST",version="v1"} 1.5e+01
apiserver_request_total{code="200",component="apiserver",dry_run="",group="",resource="secrets",scope="namespace",subresource="",verb="LIST",version="v1"} 7
apiserver_request_total_other{resource="secrets",verb="POST"} 100
"#;

    #[test]
    fn sums_matching_verbs_across_resources() {
        assert_eq!(sum_requests(SAMPLE, &["POST", "PUT"], None), 3 + 2 + 15);
    }

    #[test]
    fn filters_by_resource() {
        assert_eq!(
            sum_requests(SAMPLE, &["POST", "PUT", "PATCH", "DELETE"], Some("secrets")),
            5
        );
    }

    #[test]
    fn ignores_other_metrics_and_unknown_verbs() {
        assert_eq!(sum_requests(SAMPLE, &["APPLY"], None), 0);
        assert_eq!(sum_requests("", &["POST"], None), 0);
    }
}
