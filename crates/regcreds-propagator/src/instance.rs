//! Which managed objects belong to *this* regcreds: several instances may run side by side.
//!
//! imagepullsecret-patcher users commonly run two (two registries, two Secret names). Each instance
//! labels the Secrets it writes `regcreds.dev/instance=<id>` and lists the ServiceAccount references it
//! adds in its own annotation `image-pull-secrets.regcreds.dev/<id>`. Withdrawal, removal of a provider
//! and cleanup then touch exactly what this instance wrote, never another instance's objects.
//!
//! ```text
//!  managed Secret (app.kubernetes.io/managed-by=regcreds)
//!    ├─ instance label == ours ─────────────────────────▶ Ours     (kept while expected, else deleted)
//!    ├─ no instance label, name this instance writes ────▶ Adopted  (written before instances existed)
//!    ├─ no instance label, any other name ───────────────▶ Unknown  (left alone)
//!    └─ another instance's label ────────────────────────▶ Others   (never touched, never forced)
//! ```
//!
//! Upgrading needs no manual step: the first write of an adopted Secret adds the label, and names listed
//! in the old shared annotation move to the writing instance's annotation.

use std::fmt;

use kube::ResourceExt;

use crate::labels::{INSTANCE_LABEL, REFS_ANNOTATION_PREFIX};

/// The id of a regcreds instance: a label value (at most 63 characters of letters, digits, `-`, `_`
/// and `.`, beginning and ending with a letter or digit).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct InstanceId(String);

/// The instance id given is not usable as a label value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{0:?} is not a valid instance name (at most 63 letters, digits, '-', '_' or '.', beginning and \
     ending with a letter or digit)"
)]
pub struct InvalidInstanceId(pub String);

/// Who a managed Secret belongs to, from this instance's point of view.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// Labelled with this instance's id.
    Ours,
    /// No instance label (written before instances existed) and this instance writes that name.
    Adopted,
    /// No instance label and a name this instance does not write: another instance's, or a removed
    /// provider's from before the upgrade. Left alone.
    Unknown,
    /// Labelled by another instance.
    Others(String),
}

impl InstanceId {
    /// The id used when none is configured, and by the propagator's tests.
    pub const DEFAULT: &'static str = "regcreds";

    /// Validates `id` as a label value.
    pub fn new(id: impl Into<String>) -> Result<Self, InvalidInstanceId> {
        let id = id.into();
        let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.');
        let valid = !id.is_empty()
            && id.len() <= 63
            && id.chars().all(allowed)
            && id.starts_with(|c: char| c.is_ascii_alphanumeric())
            && id.ends_with(|c: char| c.is_ascii_alphanumeric());
        if valid {
            Ok(Self(id))
        } else {
            Err(InvalidInstanceId(id))
        }
    }

    /// The id as written in the instance label.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The ServiceAccount annotation listing the references this instance added.
    pub fn refs_annotation(&self) -> String {
        format!("{REFS_ANNOTATION_PREFIX}{}", self.0)
    }

    /// Who `secret` (a managed one) belongs to; `writes` says whether this instance writes a name.
    pub fn claim(&self, secret: &impl ResourceExt, writes: impl Fn(&str) -> bool) -> Claim {
        let label = secret.labels().get(INSTANCE_LABEL).map(String::as_str);
        self.claim_named(&secret.name_any(), label, writes)
    }

    /// [`Self::claim`] from what decides it: the Secret's name and its instance label, if any (for the
    /// compact state regcreds caches instead of whole Secrets).
    pub fn claim_named(&self, name: &str, label: Option<&str>, writes: impl Fn(&str) -> bool) -> Claim {
        match label {
            Some(id) if id == self.0 => Claim::Ours,
            Some(other) => Claim::Others(other.to_string()),
            None if writes(name) => Claim::Adopted,
            None => Claim::Unknown,
        }
    }
}

impl Default for InstanceId {
    fn default() -> Self {
        Self(Self::DEFAULT.to_string())
    }
}

impl fmt::Display for InstanceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use k8s_openapi::api::core::v1::Secret;
    use kube::api::ObjectMeta;

    use super::*;

    fn secret(name: &str, instance: Option<&str>) -> Secret {
        Secret {
            metadata: ObjectMeta {
                name: Some(name.into()),
                labels: instance.map(|i| BTreeMap::from([(INSTANCE_LABEL.to_string(), i.to_string())])),
                ..Default::default()
            },
            ..Default::default()
        }
    }

    #[test]
    fn ids_are_label_values() {
        for good in ["regcreds", "hub.regcreds-system", "A_b-1", &"x".repeat(63)] {
            assert!(InstanceId::new(good).is_ok(), "{good}");
        }
        for bad in ["", "-x", "x.", "a/b", "a b", &"x".repeat(64)] {
            assert!(InstanceId::new(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn claims_follow_the_label_and_adopt_only_names_this_instance_writes() {
        let me = InstanceId::new("hub").expect("id");
        let writes = |name: &str| name == "hub-secret";
        assert_eq!(me.claim(&secret("x", Some("hub")), writes), Claim::Ours);
        assert_eq!(
            me.claim(&secret("hub-secret", Some("ecr")), writes),
            Claim::Others("ecr".into())
        );
        assert_eq!(me.claim(&secret("hub-secret", None), writes), Claim::Adopted);
        assert_eq!(me.claim(&secret("ecr-secret", None), writes), Claim::Unknown);
        assert_eq!(me.refs_annotation(), "image-pull-secrets.regcreds.dev/hub");
    }
}
