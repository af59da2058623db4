//! Which namespaces get Secrets: everything except what is excluded by name pattern, annotation, label
//! selector, being regcreds' own namespace, or being deleted.

use std::collections::BTreeSet;

use globset::{Glob, GlobSet, GlobSetBuilder};
use kube::core::{Expression, Selector, SelectorExt};

use crate::labels::IGNORE_ANNOTATIONS;

/// Why a namespace is out of scope (for logs), or that it is in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Write Secrets here.
    Include,
    /// Remove what regcreds wrote here, with the reason.
    Exclude(String),
    /// Being deleted: do nothing, the namespace controller removes everything.
    Terminating,
}

/// The set of namespaces regcreds writes to.
#[derive(Debug, Clone)]
pub struct NamespaceScope {
    own_namespace: Option<String>,
    exclude_patterns: Vec<String>,
    exclude: GlobSet,
    selector: Option<Selector>,
    /// The label keys `selector` reads: the only labels worth keeping of a namespace.
    selector_keys: Vec<String>,
}

impl NamespaceScope {
    /// Builds a scope from glob patterns (`kube-*`, `team-?-dev`), an optional label selector for included
    /// namespaces, and regcreds' own namespace (always excluded: its source Secrets live there).
    pub fn new(
        exclude_patterns: &[String],
        selector: Option<Selector>,
        own_namespace: Option<String>,
    ) -> Result<Self, globset::Error> {
        let mut builder = GlobSetBuilder::new();
        for pattern in exclude_patterns {
            builder.add(Glob::new(pattern)?);
        }
        let mut selector_keys: Vec<String> = selector
            .iter()
            .flat_map(|selector| selector.clone().into_iter())
            .map(|expression| match expression {
                Expression::In(key, _)
                | Expression::NotIn(key, _)
                | Expression::Equal(key, _)
                | Expression::NotEqual(key, _)
                | Expression::Exists(key)
                | Expression::DoesNotExist(key) => key,
            })
            .collect();
        selector_keys.sort_unstable();
        selector_keys.dedup();
        Ok(Self {
            own_namespace,
            exclude_patterns: exclude_patterns.to_vec(),
            exclude: builder.build()?,
            selector,
            selector_keys,
        })
    }

    /// Whether [`Self::decide`] reads the label `key` (only a label selector reads labels).
    pub fn reads_label(&self, key: &str) -> bool {
        self.selector_keys.iter().any(|k| k == key)
    }

    /// Decides for one namespace from its metadata.
    pub fn decide(&self, meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta) -> Decision {
        let name = meta.name.as_deref().unwrap_or_default();
        if meta.deletion_timestamp.is_some() {
            return Decision::Terminating;
        }
        if self.own_namespace.as_deref() == Some(name) {
            return Decision::Exclude("regcreds' own namespace".into());
        }
        if self.exclude.is_match(name) {
            return Decision::Exclude(format!(
                "matches an exclude pattern ({})",
                self.exclude_patterns.join(",")
            ));
        }
        let annotations = meta.annotations.as_ref();
        if let Some(key) = IGNORE_ANNOTATIONS.iter().find(|key| {
            annotations
                .and_then(|a| a.get(**key))
                .is_some_and(|v| v.eq_ignore_ascii_case("true"))
        }) {
            return Decision::Exclude(format!("annotated {key}=true"));
        }
        if let Some(selector) = &self.selector
            && !selector.matches(&meta.labels.clone().unwrap_or_default())
        {
            return Decision::Exclude(format!("labels do not match selector {selector}"));
        }
        Decision::Include
    }
}

/// What is wrong with a label selector.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid label selector term {term:?}: {reason}")]
pub struct LabelSelectorError {
    term: String,
    reason: &'static str,
}

/// Parses the Kubernetes label selector syntax: `a=b`, `a==b`, `a!=b`, `a`, `!a`, `a in (x,y)`,
/// `a notin (x,y)`, comma-separated (commas inside parentheses belong to the set).
pub fn parse_label_selector(input: &str) -> Result<Selector, LabelSelectorError> {
    split_terms(input)
        .into_iter()
        .map(|term| parse_term(&term))
        .collect()
}

fn split_terms(input: &str) -> Vec<String> {
    let (mut terms, mut current, mut depth) = (Vec::new(), String::new(), 0);
    for c in input.chars() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                terms.push(std::mem::take(&mut current));
                continue;
            }
            _ => {}
        }
        current.push(c);
    }
    terms.push(current);
    terms
        .into_iter()
        .map(|t| t.trim().to_string())
        .filter(|t| !t.is_empty())
        .collect()
}

fn parse_term(term: &str) -> Result<Expression, LabelSelectorError> {
    let err = |reason| LabelSelectorError {
        term: term.to_string(),
        reason,
    };
    let key_ok =
        |k: &str| !k.is_empty() && k.chars().all(|c| c.is_ascii_alphanumeric() || "-_./".contains(c));
    if let Some((key, set)) = split_set(term, " notin ").or_else(|| split_set(term, " in ")) {
        let values = parse_set(set).ok_or_else(|| err("expected a parenthesised list like (a,b)"))?;
        if !key_ok(key) {
            return Err(err("invalid key"));
        }
        return Ok(if term.contains(" notin ") {
            Expression::NotIn(key.into(), values)
        } else {
            Expression::In(key.into(), values)
        });
    }
    let (key, value, negated) = if let Some((k, v)) = term.split_once("!=") {
        (k, Some(v), true)
    } else if let Some((k, v)) = term.split_once("==").or_else(|| term.split_once('=')) {
        (k, Some(v), false)
    } else if let Some(k) = term.strip_prefix('!') {
        (k, None, true)
    } else {
        (term, None, false)
    };
    let key = key.trim();
    if !key_ok(key) {
        return Err(err("invalid key"));
    }
    Ok(match (value.map(str::trim), negated) {
        (Some(v), false) => Expression::Equal(key.into(), v.into()),
        (Some(v), true) => Expression::NotEqual(key.into(), v.into()),
        (None, false) => Expression::Exists(key.into()),
        (None, true) => Expression::DoesNotExist(key.into()),
    })
}

fn split_set<'a>(term: &'a str, operator: &str) -> Option<(&'a str, &'a str)> {
    term.split_once(operator).map(|(k, s)| (k.trim(), s.trim()))
}

fn parse_set(set: &str) -> Option<BTreeSet<String>> {
    let inner = set.strip_prefix('(')?.strip_suffix(')')?;
    Some(
        inner
            .split(',')
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty())
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    use super::*;

    fn ns(name: &str, labels: &[(&str, &str)], annotations: &[(&str, &str)]) -> ObjectMeta {
        let map = |kv: &[(&str, &str)]| {
            Some(
                kv.iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect::<BTreeMap<_, _>>(),
            )
        };
        ObjectMeta {
            name: Some(name.into()),
            labels: map(labels),
            annotations: map(annotations),
            ..Default::default()
        }
    }

    #[test]
    fn excludes_by_pattern_annotation_selector_and_own_namespace() {
        let selector = parse_label_selector("team in (a,b),!legacy").expect("valid");
        let scope = NamespaceScope::new(&["kube-*".to_string()], Some(selector), Some("regcreds".into()))
            .expect("valid");
        assert_eq!(
            scope.decide(&ns("apps", &[("team", "a")], &[])),
            Decision::Include
        );
        assert!(matches!(
            scope.decide(&ns("kube-system", &[("team", "a")], &[])),
            Decision::Exclude(_)
        ));
        assert!(matches!(
            scope.decide(&ns("regcreds", &[("team", "a")], &[])),
            Decision::Exclude(_)
        ));
        assert!(matches!(
            scope.decide(&ns("apps", &[("team", "c")], &[])),
            Decision::Exclude(_)
        ));
        assert!(matches!(
            scope.decide(&ns("apps", &[("team", "a"), ("legacy", "")], &[])),
            Decision::Exclude(_)
        ));
        for key in IGNORE_ANNOTATIONS {
            assert!(matches!(
                scope.decide(&ns("apps", &[("team", "a")], &[(key, "true")])),
                Decision::Exclude(_)
            ));
        }
        assert_eq!(
            scope.decide(&ns(
                "apps",
                &[("team", "a")],
                &[("registry-creds/ignore", "false")]
            )),
            Decision::Include
        );
    }

    #[test]
    fn only_the_selector_s_label_keys_are_read() {
        let selector = parse_label_selector("team in (a,b),!legacy,env=prod").expect("valid");
        let scope = NamespaceScope::new(&[], Some(selector), None).expect("valid");
        assert!(scope.reads_label("team") && scope.reads_label("legacy") && scope.reads_label("env"));
        assert!(!scope.reads_label("kubernetes.io/metadata.name"));
        let unselected = NamespaceScope::new(&[], None, None).expect("valid");
        assert!(!unselected.reads_label("team"));
    }

    #[test]
    fn parses_every_selector_form() {
        let selector =
            parse_label_selector("a=b, c==d, e!=f, g, !h, i in (j, k), l notin (m)").expect("valid");
        assert_eq!(selector.to_string(), "a=b,c=d,e!=f,g,!h,i in (j,k),l notin (m)");
    }

    #[test]
    fn rejects_bad_selectors() {
        assert!(parse_label_selector("a in b").is_err());
        assert!(parse_label_selector("=b").is_err());
        assert!(parse_label_selector("a b=c").is_err());
    }
}
