//! What regcreds keeps of each watched Secret and ServiceAccount: only what deciding a write needs.
//!
//! A reflected `Secret` or `ServiceAccount` carries `managedFields`, timestamps, owner references and
//! every annotation: over a kilobyte each, for tens of thousands of objects. Reconciling needs far less:
//! the name and `resourceVersion` (the precondition of the next write), and the *content* regcreds
//! compares — a Secret's labels, type and `.dockerconfigjson`; a ServiceAccount's `imagePullSecrets` and
//! regcreds' own annotations. Once regcreds has converged, every namespace holds the *same* content, so
//! contents are interned: ten thousand Secrets share one `Arc<SecretContent>`.

use std::{
    collections::{BTreeMap, VecDeque},
    sync::{Arc, Mutex, PoisonError},
};

use k8s_openapi::api::core::v1::{ObjectReference, Secret, ServiceAccount};

use crate::labels::{MANAGED_BY_LABEL, MANAGED_BY_VALUE};

/// The data key of a pull secret.
pub const DATA_KEY: &str = ".dockerconfigjson";
/// Annotations kept on cached ServiceAccounts: regcreds' own (everything else is never read).
const OWN_ANNOTATION_PREFIX: &str = "regcreds.dev/";
/// Distinct contents remembered for interning: the current credential, the previous one during a
/// rotation, and a few spares. Anything else (a tampered Secret) is simply stored on its own.
const INTERNED: usize = 4;

/// The parts of a Secret regcreds compares before writing.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SecretContent {
    /// All labels (managed Secrets carry only regcreds' own).
    pub labels: BTreeMap<String, String>,
    /// `type`.
    pub type_: Option<String>,
    /// The `.dockerconfigjson` bytes, if present.
    pub data: Option<Vec<u8>>,
}

/// One Secret as regcreds knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretState {
    /// Name.
    pub name: String,
    /// UID (names the object in Events).
    pub uid: Option<String>,
    /// `resourceVersion` this state was read at.
    pub resource_version: Option<String>,
    /// Labels, type and data; shared with every other Secret of the same content.
    pub content: Arc<SecretContent>,
}

impl SecretState {
    /// The name (called like kube's `ResourceExt::name_any`, so call sites read the same).
    pub fn name_any(&self) -> String {
        self.name.clone()
    }

    /// A label's value.
    pub fn label(&self, key: &str) -> Option<&str> {
        self.content.labels.get(key).map(String::as_str)
    }

    /// Whether the Secret carries regcreds' ownership label.
    pub fn is_managed(&self) -> bool {
        self.label(MANAGED_BY_LABEL) == Some(MANAGED_BY_VALUE)
    }

    /// A reference to the Secret for Kubernetes Events.
    pub fn object_reference(&self, namespace: &str) -> ObjectReference {
        ObjectReference {
            api_version: Some("v1".into()),
            kind: Some("Secret".into()),
            name: Some(self.name.clone()),
            namespace: Some(namespace.to_string()),
            uid: self.uid.clone(),
            resource_version: self.resource_version.clone(),
            ..Default::default()
        }
    }
}

impl From<Secret> for SecretState {
    fn from(secret: Secret) -> Self {
        let meta = secret.metadata;
        let content = SecretContent {
            labels: meta.labels.unwrap_or_default(),
            type_: secret.type_,
            data: secret
                .data
                .and_then(|mut data| data.remove(DATA_KEY))
                .map(|b| b.0),
        };
        Self {
            name: meta.name.unwrap_or_default(),
            uid: meta.uid,
            resource_version: meta.resource_version,
            content: SECRET_CONTENTS.intern(content),
        }
    }
}

/// The parts of a ServiceAccount regcreds reads and writes.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AccountRefs {
    /// `imagePullSecrets` names, in order.
    pub image_pull_secrets: Vec<String>,
    /// Annotations under `regcreds.dev/` (what regcreds recorded about its own entries).
    pub annotations: BTreeMap<String, String>,
}

/// One ServiceAccount as regcreds knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountState {
    /// Name.
    pub name: String,
    /// `resourceVersion` this state was read at: the precondition of the next patch.
    pub resource_version: Option<String>,
    /// References and regcreds' annotations; shared with every other account of the same content.
    pub refs: Arc<AccountRefs>,
}

impl AccountState {
    /// The name (called like kube's `ResourceExt::name_any`, so call sites read the same).
    pub fn name_any(&self) -> String {
        self.name.clone()
    }

    /// One of regcreds' own annotations.
    pub fn annotation(&self, key: &str) -> Option<&str> {
        self.refs.annotations.get(key).map(String::as_str)
    }
}

impl From<ServiceAccount> for AccountState {
    fn from(account: ServiceAccount) -> Self {
        let meta = account.metadata;
        let refs = AccountRefs {
            image_pull_secrets: account
                .image_pull_secrets
                .into_iter()
                .flatten()
                .map(|r| r.name)
                .collect(),
            annotations: meta
                .annotations
                .unwrap_or_default()
                .into_iter()
                .filter(|(key, _)| key.starts_with(OWN_ANNOTATION_PREFIX))
                .collect(),
        };
        Self {
            name: meta.name.unwrap_or_default(),
            resource_version: meta.resource_version,
            refs: ACCOUNT_REFS.intern(refs),
        }
    }
}

static SECRET_CONTENTS: Interner<SecretContent> = Interner::new();
static ACCOUNT_REFS: Interner<AccountRefs> = Interner::new();

/// The few most recently seen distinct values, shared instead of copied.
struct Interner<T> {
    recent: Mutex<VecDeque<Arc<T>>>,
}

impl<T: PartialEq> Interner<T> {
    const fn new() -> Self {
        Self {
            recent: Mutex::new(VecDeque::new()),
        }
    }

    /// An `Arc` equal to `value`: a remembered one if there is one, else a new one (then remembered).
    fn intern(&self, value: T) -> Arc<T> {
        let mut recent = self.recent.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(found) = recent.iter().find(|known| ***known == value) {
            return found.clone();
        }
        let value = Arc::new(value);
        recent.push_front(value.clone());
        recent.truncate(INTERNED);
        value
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::{ByteString, api::core::v1::LocalObjectReference};
    use kube::api::ObjectMeta;

    use super::*;

    fn secret(name: &str, data: &[u8]) -> Secret {
        Secret {
            metadata: ObjectMeta {
                name: Some(name.into()),
                labels: Some(BTreeMap::from([(
                    MANAGED_BY_LABEL.into(),
                    MANAGED_BY_VALUE.into(),
                )])),
                managed_fields: Some(vec![Default::default()]),
                ..Default::default()
            },
            type_: Some("kubernetes.io/dockerconfigjson".into()),
            data: Some(BTreeMap::from([(DATA_KEY.into(), ByteString(data.to_vec()))])),
            ..Default::default()
        }
    }

    #[test]
    fn secrets_with_the_same_content_share_it() {
        let a = SecretState::from(secret("a", b"{1}"));
        let b = SecretState::from(secret("b", b"{1}"));
        let c = SecretState::from(secret("c", b"{2}"));
        assert!(Arc::ptr_eq(&a.content, &b.content));
        assert!(!Arc::ptr_eq(&a.content, &c.content));
        assert!(a.is_managed());
        assert_eq!(c.content.data.as_deref(), Some(&b"{2}"[..]));
    }

    #[test]
    fn service_accounts_keep_references_and_only_regcreds_annotations() {
        let account = ServiceAccount {
            metadata: ObjectMeta {
                name: Some("default".into()),
                resource_version: Some("7".into()),
                annotations: Some(BTreeMap::from([
                    ("regcreds.dev/image-pull-secrets".into(), "ours".into()),
                    (
                        "kubectl.kubernetes.io/last-applied-configuration".into(),
                        "{...}".into(),
                    ),
                ])),
                ..Default::default()
            },
            image_pull_secrets: Some(vec![LocalObjectReference {
                name: "theirs".into(),
            }]),
            ..Default::default()
        };
        let state = AccountState::from(account);
        assert_eq!(state.refs.image_pull_secrets, ["theirs"]);
        assert_eq!(state.annotation("regcreds.dev/image-pull-secrets"), Some("ours"));
        assert_eq!(state.refs.annotations.len(), 1);
        assert_eq!(state.resource_version.as_deref(), Some("7"));
    }
}
