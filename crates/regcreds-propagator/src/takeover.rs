//! Secrets left by the tools regcreds replaces, recognised by their fingerprint, and when regcreds takes
//! one over instead of leaving it alone as foreign.
//!
//! ```text
//!  Secret of the name regcreds writes, without regcreds' label
//!     │ Predecessor::recognise (metadata + type + data shape, never the credential itself)
//!     ├─ imagepullsecret-patcher's annotation ─────────────────────────────▶ take over
//!     ├─ upmc's shape, every entry on a registry this credential is for ──▶ take over
//!     └─ anything else ─────────────────────────────────────────────────────▶ foreign (left alone)
//! ```
//!
//! Both fingerprints are read from the tools' own code:
//!
//! * **imagepullsecret-patcher** (`secret.go`, `dockerconfigSecret`): annotation
//!   `app.kubernetes.io/managed-by: imagepullsecret-patcher`, type `kubernetes.io/dockerconfigjson`.
//! * **upmc registry-creds** (`main.go`, `generateSecretObj` and `processNamespace`): a Secret created
//!   with a name and nothing else in its metadata — no labels, no annotations, no owner references — and
//!   one of the data shapes that function writes:
//!   - `kubernetes.io/dockerconfigjson` with only `.dockerconfigjson` =
//!     `{"auths":{"<endpoint>":{"auth":"…","email":"none"}}}`, every entry exactly `auth` and `email`
//!     (ECR, the private registry, ACR), or `{}` (what it wrote after a failed mint, upmc #106);
//!   - `kubernetes.io/dockercfg` with only `.dockercfg` =
//!     `{"<gcr-url>":{"username":"oauth2accesstoken","password":"…","email":"none"}}` (GCR);
//!   - `Opaque` without data (a GCR mint that failed: no type, no data).
//!
//!   `kubectl create secret docker-registry` writes `username`, `password` and `auth` in each entry, so a
//!   user's own Secret does not match; a Secret of upmc's shape for a registry this credential is not
//!   for (another account, another GCR host) stays foreign.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::core::v1::Secret;
use regcreds_core::{DockerConfig, RegistryHost, reference};
use serde_json::{Map, Value};

use crate::{DesiredSecret, labels::PATCHER_MANAGED_BY};

/// A tool regcreds replaces, whose Secrets it takes over.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Predecessor {
    /// imagepullsecret-patcher (its ownership annotation).
    Patcher,
    /// upmc registry-creds, with the registry hosts of its entries (none for the shapes it wrote after a
    /// failed mint).
    Upmc {
        /// Lower-case `host[:port]` of each entry, Docker Hub's aliases as `docker.io`.
        hosts: BTreeSet<String>,
    },
}

/// upmc's legacy type for GCR.
const DOCKERCFG_TYPE: &str = "kubernetes.io/dockercfg";
/// The pull-secret type regcreds writes (and upmc for every other registry).
const DOCKERCONFIGJSON_TYPE: &str = "kubernetes.io/dockerconfigjson";

impl Predecessor {
    /// Which predecessor wrote `secret`, if its fingerprint says so.
    pub fn recognise(secret: &Secret) -> Option<Self> {
        let meta = &secret.metadata;
        let (key, value) = PATCHER_MANAGED_BY;
        if meta
            .annotations
            .as_ref()
            .and_then(|a| a.get(key))
            .is_some_and(|v| v == value)
        {
            return Some(Self::Patcher);
        }
        let bare = meta.labels.as_ref().is_none_or(|l| l.is_empty())
            && meta.annotations.as_ref().is_none_or(|a| a.is_empty())
            && meta.owner_references.as_ref().is_none_or(|o| o.is_empty());
        if !bare {
            return None;
        }
        upmc_hosts(secret).map(|hosts| Self::Upmc { hosts })
    }

    /// The tool's name, for logs and Events.
    pub fn tool(&self) -> &'static str {
        match self {
            Self::Patcher => "imagepullsecret-patcher",
            Self::Upmc { .. } => "upmc registry-creds",
        }
    }

    /// Whether regcreds takes this Secret over to write `desired` into it: always for the patcher's
    /// (it names its Secret, regcreds writes that name); for upmc's only when each of its entries is on a
    /// registry `desired` holds a credential for.
    pub fn may_take_over(&self, desired: &DesiredSecret) -> bool {
        match self {
            Self::Patcher => true,
            Self::Upmc { hosts } => {
                let ours = desired_hosts(desired);
                hosts.iter().all(|host| ours.contains(host))
            }
        }
    }
}

/// The registry hosts of upmc's entries, if `secret` has one of the data shapes upmc writes.
fn upmc_hosts(secret: &Secret) -> Option<BTreeSet<String>> {
    let empty = BTreeMap::new();
    let data = secret.data.as_ref().unwrap_or(&empty);
    let only = |key: &str| match (data.len(), data.get(key)) {
        (1, Some(bytes)) => serde_json::from_slice::<Value>(&bytes.0).ok(),
        _ => None,
    };
    let no_string_data = secret.string_data.as_ref().is_none_or(|d| d.is_empty());
    if !no_string_data {
        return None;
    }
    match secret.type_.as_deref() {
        Some(DOCKERCONFIGJSON_TYPE) => match only(".dockerconfigjson")? {
            Value::Object(top) if top.is_empty() => Some(BTreeSet::new()),
            Value::Object(top) if top.len() == 1 => {
                let auths = top.get("auths")?.as_object()?;
                entry_hosts(auths, &[("auth", None), ("email", Some("none"))])
            }
            _ => None,
        },
        Some(DOCKERCFG_TYPE) => {
            let entries = only(".dockercfg")?;
            let entries = entries.as_object().filter(|e| e.len() == 1)?;
            entry_hosts(
                entries,
                &[
                    ("username", Some("oauth2accesstoken")),
                    ("password", None),
                    ("email", Some("none")),
                ],
            )
        }
        None | Some("Opaque") if data.is_empty() => Some(BTreeSet::new()),
        _ => None,
    }
}

/// The hosts of `entries` if each entry has exactly the string fields `fields` (with the given value
/// where one is given).
fn entry_hosts(entries: &Map<String, Value>, fields: &[(&str, Option<&str>)]) -> Option<BTreeSet<String>> {
    if entries.is_empty() {
        return None;
    }
    let mut hosts = BTreeSet::new();
    for (key, entry) in entries {
        let entry = entry.as_object().filter(|e| e.len() == fields.len())?;
        for (field, wanted) in fields {
            let value = entry.get(*field)?.as_str()?;
            if wanted.is_some_and(|wanted| wanted != value) {
                return None;
            }
        }
        hosts.insert(host_of(key)?);
    }
    Some(hosts)
}

/// The hosts `desired` holds credentials for.
fn desired_hosts(desired: &DesiredSecret) -> BTreeSet<String> {
    DockerConfig::parse(&desired.data)
        .map(|config| config.credentials().registries())
        .unwrap_or_default()
        .iter()
        .filter_map(|key| host_of(key))
        .collect()
}

/// A dockerconfig key's lower-case `host[:port]`, with Docker Hub's aliases as one host.
fn host_of(key: &str) -> Option<String> {
    let key = RegistryHost::parse(key).ok()?;
    Some(reference::canonical_authority(key.authority()))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use k8s_openapi::ByteString;
    use kube::api::ObjectMeta;

    use super::*;

    /// A Secret as upmc's `generateSecretObj` + `CreateSecret` leave it: name and namespace only.
    fn upmc(type_: Option<&str>, key: &str, data: Option<&str>) -> Secret {
        Secret {
            metadata: ObjectMeta {
                name: Some("awsecr-cred".into()),
                namespace: Some("app1".into()),
                ..Default::default()
            },
            type_: type_.map(String::from),
            data: data.map(|d| BTreeMap::from([(key.to_string(), ByteString(d.as_bytes().to_vec()))])),
            ..Default::default()
        }
    }

    const ECR: &str = r#"{"auths":{"https://123456789012.dkr.ecr.us-east-1.amazonaws.com":{"auth":"QVdTOnB3","email":"none"}}}"#;
    const GCR: &str =
        r#"{"https://gcr.io":{"username":"oauth2accesstoken","password":"ya29.x","email":"none"}}"#;

    fn desired(data: &str) -> DesiredSecret {
        DesiredSecret {
            name: "awsecr-cred".into(),
            provider: "ecr".into(),
            data: Arc::from(data.as_bytes()),
        }
    }

    fn hosts(list: &[&str]) -> Option<Predecessor> {
        Some(Predecessor::Upmc {
            hosts: list.iter().map(|h| h.to_string()).collect(),
        })
    }

    #[test]
    fn upmcs_shapes_are_recognised_with_their_registry_hosts() {
        let ecr = upmc(Some(DOCKERCONFIGJSON_TYPE), ".dockerconfigjson", Some(ECR));
        assert_eq!(
            Predecessor::recognise(&ecr),
            hosts(&["123456789012.dkr.ecr.us-east-1.amazonaws.com"])
        );
        let gcr = upmc(Some(DOCKERCFG_TYPE), ".dockercfg", Some(GCR));
        assert_eq!(Predecessor::recognise(&gcr), hosts(&["gcr.io"]));
        // What upmc wrote after a failed mint (#106): `{}`, or a typeless Secret without data.
        let failed = upmc(Some(DOCKERCONFIGJSON_TYPE), ".dockerconfigjson", Some("{}"));
        assert_eq!(Predecessor::recognise(&failed), hosts(&[]));
        assert_eq!(Predecessor::recognise(&upmc(None, "", None)), hosts(&[]));
        assert_eq!(
            Predecessor::recognise(&upmc(Some("Opaque"), "", None)),
            hosts(&[])
        );
    }

    #[test]
    fn a_users_own_secrets_are_not_upmcs() {
        // `kubectl create secret docker-registry` writes username, password and auth.
        let kubectl = r#"{"auths":{"reg.example":{"username":"u","password":"p","auth":"dTpw"}}}"#;
        let cases = [
            upmc(Some(DOCKERCONFIGJSON_TYPE), ".dockerconfigjson", Some(kubectl)),
            // Another email than upmc's "none".
            upmc(
                Some(DOCKERCONFIGJSON_TYPE),
                ".dockerconfigjson",
                Some(&ECR.replace("none", "me@example.com")),
            ),
            // An Opaque Secret with data.
            upmc(Some("Opaque"), "password", Some("x")),
            // Not JSON.
            upmc(Some(DOCKERCONFIGJSON_TYPE), ".dockerconfigjson", Some("nope")),
        ];
        for secret in &cases {
            assert_eq!(Predecessor::recognise(secret), None, "{secret:?}");
        }
        for meta in [
            ObjectMeta {
                labels: Some(BTreeMap::from([("team".into(), "a".into())])),
                ..Default::default()
            },
            ObjectMeta {
                annotations: Some(BTreeMap::from([(
                    "kubectl.kubernetes.io/last-applied-configuration".into(),
                    "{}".into(),
                )])),
                ..Default::default()
            },
        ] {
            let mut secret = upmc(Some(DOCKERCONFIGJSON_TYPE), ".dockerconfigjson", Some(ECR));
            secret.metadata.labels = meta.labels;
            secret.metadata.annotations = meta.annotations;
            assert_eq!(Predecessor::recognise(&secret), None, "metadata of its own");
        }
    }

    #[test]
    fn the_patchers_annotation_is_recognised() {
        let mut secret = upmc(Some(DOCKERCONFIGJSON_TYPE), ".dockerconfigjson", Some("{}"));
        secret.metadata.annotations = Some(BTreeMap::from([(
            "app.kubernetes.io/managed-by".into(),
            "imagepullsecret-patcher".into(),
        )]));
        assert_eq!(Predecessor::recognise(&secret), Some(Predecessor::Patcher));
    }

    #[test]
    fn upmcs_secret_is_taken_over_only_for_the_registries_the_credential_is_for() {
        let found =
            Predecessor::recognise(&upmc(Some(DOCKERCONFIGJSON_TYPE), ".dockerconfigjson", Some(ECR)))
                .expect("upmc's");
        let same = r#"{"auths":{"https://123456789012.dkr.ecr.us-east-1.amazonaws.com":{"username":"AWS","password":"pw","auth":"QVdTOnB3"}}}"#;
        assert!(found.may_take_over(&desired(same)));
        let other_account = same.replace("123456789012", "210987654321");
        assert!(!found.may_take_over(&desired(&other_account)));
        let failed = Predecessor::recognise(&upmc(None, "", None)).expect("upmc's");
        assert!(failed.may_take_over(&desired(same)), "a failed mint's leftovers");
    }

    #[test]
    fn docker_hubs_aliases_are_one_registry() {
        assert_eq!(
            host_of("https://index.docker.io/v1/").as_deref(),
            Some("docker.io")
        );
        assert_eq!(host_of("docker.io").as_deref(), Some("docker.io"));
        assert_eq!(host_of("https://GCR.IO").as_deref(), Some("gcr.io"));
    }
}
