//! Least privilege: the RBAC rules rendered objects grant, as `(apiGroup, resource, verb)` triples, and
//! exactly what regcreds needs.

use std::collections::BTreeSet;

use serde_json::Value;

use super::{arr, installed, kind, name, s, the};

/// `(apiGroup, resource, verb)` triples.
pub type Grants = BTreeSet<(String, String, String)>;

/// `(apiGroup, resource, verb)` triples a list of RBAC rules grants; panics on wildcards and
/// non-resource URLs.
pub fn grants(role: &Value) -> Grants {
    let mut out = Grants::new();
    for rule in arr(role, "/rules") {
        assert!(
            rule.get("nonResourceURLs").is_none(),
            "{}: nonResourceURLs in {rule}",
            name(role)
        );
        let list = |key: &str| -> Vec<String> {
            arr(rule, &format!("/{key}"))
                .iter()
                .map(|v| v.as_str().unwrap_or("").to_string())
                .collect()
        };
        let (groups, resources, verbs) = (list("apiGroups"), list("resources"), list("verbs"));
        for item in groups.iter().chain(&resources).chain(&verbs) {
            assert!(
                !item.contains('*'),
                "{} {}: wildcard {item:?} in {rule}",
                kind(role),
                name(role)
            );
        }
        for g in &groups {
            for r in &resources {
                for v in &verbs {
                    out.insert((g.clone(), r.clone(), v.clone()));
                }
            }
        }
    }
    out
}

/// Grants from `(apiGroup, resource, verbs)` rules.
pub fn expand(spec: &[(&str, &str, &[&str])]) -> Grants {
    spec.iter()
        .flat_map(|(g, r, verbs)| {
            verbs
                .iter()
                .map(move |v| (g.to_string(), r.to_string(), v.to_string()))
        })
        .collect()
}

/// What regcreds needs cluster-wide, and nothing else.
pub fn regcreds_cluster_grants() -> Grants {
    expand(&[
        ("", "namespaces", &["get", "list", "watch"]),
        (
            "",
            "secrets",
            &["get", "list", "watch", "create", "update", "patch", "delete"],
        ),
        (
            "",
            "serviceaccounts",
            &["get", "list", "watch", "update", "patch"],
        ),
        ("events.k8s.io", "events", &["create", "patch"]),
        ("", "events", &["create", "patch"]),
    ])
}

/// What regcreds needs in its own namespace.
pub fn regcreds_namespace_grants() -> Grants {
    expand(&[
        (
            "coordination.k8s.io",
            "leases",
            &["get", "list", "watch", "create", "update", "patch"],
        ),
        ("", "secrets", &["get", "list", "watch"]),
    ])
}

/// What `actual` grants beyond `expected`, and what it lacks.
pub fn diff(actual: &Grants, expected: &Grants) -> String {
    format!(
        "granted but not needed: {:?}\nneeded but not granted: {:?}",
        actual.difference(expected).collect::<Vec<_>>(),
        expected.difference(actual).collect::<Vec<_>>()
    )
}

/// `actual` is exactly `expected`; otherwise panics naming `what` and the [`diff`].
pub fn assert_grants(actual: &Grants, expected: &Grants, what: &str) {
    assert_eq!(actual, expected, "{what}\n{}", diff(actual, expected));
}

/// The ClusterRole grants exactly what regcreds needs; the Role at most its namespace needs. (Helm hooks
/// are left out: `deploy_uninstall.rs` checks the cleanup hook's rights.)
pub fn assert_least_privilege(objects: &[Value], what: &str) {
    let objects = &installed(objects)[..];
    assert_grants(
        &grants(the(objects, "ClusterRole", what)),
        &regcreds_cluster_grants(),
        &format!("{what}: ClusterRole"),
    );
    let role = grants(the(objects, "Role", what));
    let allowed = regcreds_namespace_grants();
    assert!(
        role.is_subset(&allowed),
        "{what}: Role\n{}",
        diff(&role, &allowed)
    );
    for binding in ["ClusterRoleBinding", "RoleBinding"] {
        let b = the(objects, binding, what);
        let sa = the(objects, "ServiceAccount", what);
        let subjects = arr(b, "/subjects");
        assert_eq!(subjects.len(), 1, "{what}: {binding} has one subject");
        assert_eq!(s(&subjects[0], "/kind"), "ServiceAccount", "{what}: {binding}");
        assert_eq!(
            s(&subjects[0], "/name"),
            name(sa),
            "{what}: {binding} binds the regcreds ServiceAccount"
        );
        assert_eq!(
            s(&subjects[0], "/namespace"),
            s(sa, "/metadata/namespace"),
            "{what}: {binding}"
        );
    }
}
