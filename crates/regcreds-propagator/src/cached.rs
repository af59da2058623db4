//! What regcreds keeps of each watched Secret and ServiceAccount: only what deciding a write needs.
//!
//! A reflected `Secret` or `ServiceAccount` carries `managedFields`, timestamps, owner references and
//! every annotation: over a kilobyte each, for tens of thousands of objects. Reconciling needs far less:
//! the name and `resourceVersion` (the precondition of the next write), and the *content* regcreds
//! compares and decides ownership by — a Secret's labels (managed-by, provider, instance), type,
//! `.dockerconfigjson` and whether imagepullsecret-patcher made it; a ServiceAccount's
//! `imagePullSecrets` and the annotations in which instances record the references they added (each
//! instance's `image-pull-secrets.regcreds.dev/<instance>` and the shared one of earlier versions). Once
//! regcreds has converged, every namespace holds the *same* content, so contents are interned: ten
//! thousand Secrets share one `Arc<SecretContent>`.

use std::{
    collections::{BTreeMap, VecDeque},
    sync::{Arc, Mutex, PoisonError},
};

use k8s_openapi::api::core::v1::{ObjectReference, Secret, ServiceAccount};

use crate::{
    InstanceId,
    instance::Claim,
    labels::{INSTANCE_LABEL, MANAGED_BY_LABEL, MANAGED_BY_VALUE, REFS_ANNOTATION_PREFIX},
    takeover::Predecessor,
};

/// Whether metadata carries regcreds' ownership label.
fn is_managed_meta(meta: &kube::api::ObjectMeta) -> bool {
    meta.labels
        .as_ref()
        .and_then(|labels| labels.get(MANAGED_BY_LABEL))
        .is_some_and(|v| v == MANAGED_BY_VALUE)
}

/// The data key of a pull secret.
pub const DATA_KEY: &str = ".dockerconfigjson";
/// Annotations kept on cached ServiceAccounts: regcreds' own (everything else is never read), i.e. the
/// shared `regcreds.dev/image-pull-secrets` of earlier versions and every instance's
/// [`REFS_ANNOTATION_PREFIX`]`<instance>`.
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
    /// The tool regcreds replaces that wrote it, if its fingerprint says so (`takeover.rs`); the
    /// fingerprint is the only thing read of other annotations and data keys.
    pub predecessor: Option<Predecessor>,
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

    /// The tool regcreds replaces that wrote this Secret (imagepullsecret-patcher, upmc registry-creds),
    /// if any: such a Secret may be taken over instead of being left alone as foreign.
    pub fn predecessor(&self) -> Option<&Predecessor> {
        self.content.predecessor.as_ref()
    }

    /// Who the Secret (a managed one) belongs to, from `instance`'s point of view; `writes` says whether
    /// that instance writes a name.
    pub fn claim(&self, instance: &InstanceId, writes: impl Fn(&str) -> bool) -> Claim {
        instance.claim_named(&self.name, self.label(INSTANCE_LABEL), writes)
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
        // NB: regcreds' own Secrets carry its label and never match a predecessor's fingerprint.
        let predecessor = (!is_managed_meta(&secret.metadata))
            .then(|| Predecessor::recognise(&secret))
            .flatten();
        let meta = secret.metadata;
        let content = SecretContent {
            predecessor,
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
                .filter(|(key, _)| is_own_annotation(key))
                .collect(),
        };
        Self {
            name: meta.name.unwrap_or_default(),
            resource_version: meta.resource_version,
            refs: ACCOUNT_REFS.intern(refs),
        }
    }
}

/// Whether a ServiceAccount annotation is one regcreds reads (see [`OWN_ANNOTATION_PREFIX`]).
pub fn is_own_annotation(key: &str) -> bool {
    key.starts_with(OWN_ANNOTATION_PREFIX) || key.starts_with(REFS_ANNOTATION_PREFIX)
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
    use kube::{ResourceExt, api::ObjectMeta};

    use super::*;
    use crate::labels::PATCHER_MANAGED_BY;

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
    fn secrets_keep_what_ownership_decisions_read() {
        let mut other = secret("ecr-pull", b"{1}");
        other.labels_mut().insert(INSTANCE_LABEL.into(), "ecr".into());
        let me = InstanceId::new("hub").expect("id");
        let state = SecretState::from(other);
        assert_eq!(state.claim(&me, |_| true), Claim::Others("ecr".into()));
        assert_eq!(state.predecessor(), None);
        assert_eq!(
            SecretState::from(secret("hub-pull", b"{1}")).claim(&me, |n| n == "hub-pull"),
            Claim::Adopted
        );
        let mut patchers = secret("pull", b"{1}");
        patchers.metadata.labels = None;
        patchers.annotations_mut().extend([
            (PATCHER_MANAGED_BY.0.to_string(), PATCHER_MANAGED_BY.1.to_string()),
            ("unrelated".to_string(), "x".to_string()),
        ]);
        let patchers = SecretState::from(patchers);
        assert!(patchers.predecessor() == Some(&Predecessor::Patcher) && !patchers.is_managed());
    }

    #[test]
    fn service_accounts_keep_references_and_only_regcreds_annotations() {
        let account = ServiceAccount {
            metadata: ObjectMeta {
                name: Some("default".into()),
                resource_version: Some("7".into()),
                annotations: Some(BTreeMap::from([
                    ("regcreds.dev/image-pull-secrets".into(), "legacy".into()),
                    ("image-pull-secrets.regcreds.dev/hub".into(), "ours".into()),
                    ("image-pull-secrets.regcreds.dev/ecr".into(), "other".into()),
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
        assert_eq!(
            state.annotation("regcreds.dev/image-pull-secrets"),
            Some("legacy")
        );
        assert_eq!(
            state.annotation("image-pull-secrets.regcreds.dev/hub"),
            Some("ours")
        );
        assert_eq!(
            state.annotation("image-pull-secrets.regcreds.dev/ecr"),
            Some("other")
        );
        assert_eq!(state.refs.annotations.len(), 3);
        assert_eq!(state.resource_version.as_deref(), Some("7"));
    }
}
