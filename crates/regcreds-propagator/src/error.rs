//! The crate's error type.

/// Errors while propagating. They name the namespace and object, never Secret content.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An API call failed.
    #[error("{verb} {kind} {name} in namespace {namespace}: {source}")]
    Api {
        /// What we tried (get, apply, update, delete, list).
        verb: &'static str,
        /// Object kind.
        kind: &'static str,
        /// Object name (or `*` for lists).
        name: String,
        /// Namespace.
        namespace: String,
        /// The client error (status code and message from the apiserver; no request bodies). Boxed: it
        /// is large and errors travel through every reconcile result.
        #[source]
        source: Box<kube::Error>,
    },
    /// An object kept changing under us (a ServiceAccount being written by others, a Secret deleted
    /// and re-created while regcreds creates it).
    #[error("{kind} {name} in namespace {namespace}: still conflicting after {attempts} attempts")]
    Conflict {
        /// Object kind.
        kind: &'static str,
        /// Object name.
        name: String,
        /// Namespace.
        namespace: String,
        /// How many rounds were tried.
        attempts: u32,
    },
    /// Several errors in one namespace (one per Secret or ServiceAccount).
    #[error("{} errors in namespace {namespace}: {}", errors.len(), errors.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
    Many {
        /// Namespace.
        namespace: String,
        /// The errors.
        errors: Vec<Error>,
    },
}

impl Error {
    /// Every value [`Error::metric_label`] returns: error counters start at 0 for each, so that the first
    /// error is an increase (`increase()` sees nothing of a series born at 1).
    pub const METRIC_LABELS: [&'static str; 5] = ["forbidden", "conflict", "throttled", "api", "many"];

    /// A short stable label for metrics (one of [`Error::METRIC_LABELS`]).
    pub fn metric_label(&self) -> &'static str {
        match self {
            Self::Api { .. } => match self.status_code() {
                Some(403) => "forbidden",
                Some(409) => "conflict",
                Some(429) => "throttled",
                _ => "api",
            },
            Self::Conflict { .. } => "conflict",
            Self::Many { .. } => "many",
        }
    }

    /// For each Forbidden error: which verb on which resource is missing, and the RBAC rule to add.
    pub fn rbac_hints(&self) -> Vec<String> {
        match self {
            Self::Api {
                verb,
                kind,
                namespace,
                ..
            } if self.status_code() == Some(403) => {
                let (rbac_verb, resource) = (rbac_verb(verb), plural(kind));
                let scope = if namespace == "*" {
                    "cluster-wide".to_string()
                } else {
                    format!("in namespace {namespace}")
                };
                vec![format!(
                    "missing permission: {rbac_verb} {resource} {scope}; add to regcreds' ClusterRole: \
                     {{apiGroups: [\"\"], resources: [\"{resource}\"], verbs: [\"{rbac_verb}\"]}}"
                )]
            }
            Self::Many { errors, .. } => errors.iter().flat_map(Self::rbac_hints).collect(),
            _ => Vec::new(),
        }
    }

    /// The HTTP status the apiserver answered with, if it answered.
    fn status_code(&self) -> Option<u16> {
        match self {
            Self::Api { source, .. } => match source.as_ref() {
                kube::Error::Api(status) => Some(status.code),
                _ => None,
            },
            _ => None,
        }
    }

    /// True when the apiserver said Forbidden: RBAC is missing a rule.
    pub fn is_forbidden(&self) -> bool {
        match self {
            Self::Api { .. } => self.status_code() == Some(403),
            Self::Many { errors, .. } => errors.iter().any(Self::is_forbidden),
            _ => false,
        }
    }
}

/// The RBAC verb behind one of our operations (server-side apply is `patch`).
fn rbac_verb(verb: &str) -> &str {
    match verb {
        "apply" => "patch",
        other => other,
    }
}

fn plural(kind: &str) -> String {
    format!("{kind}s")
}

/// Builds the `map_err` closure for an API call (pod healing's calls too: the same hints and labels).
pub fn api_error(
    verb: &'static str,
    kind: &'static str,
    name: &str,
    namespace: &str,
) -> impl FnOnce(kube::Error) -> Error {
    let (name, namespace) = (name.to_string(), namespace.to_string());
    move |source| Error::Api {
        verb,
        kind,
        name,
        namespace,
        source: Box::new(source),
    }
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
