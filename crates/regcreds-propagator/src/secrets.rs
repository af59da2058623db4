//! Writing one managed Secret into one namespace, and removing it.
//!
//! A Secret not known to exist is created (POST): that cannot take over a Secret regcreds did not make.
//! Only if the create conflicts is the Secret read, and then decided on like a known one: a known
//! Secret of this instance (or one it adopts) that differs is updated; one without our label is foreign
//! (left alone unless forced) unless a tool regcreds replaces left it (`takeover.rs`:
//! imagepullsecret-patcher's, and upmc registry-creds' for the registries this credential is for), which
//! is taken over unless that is switched off; another instance's is never touched, forced or not.
//!
//! An update is one of two writes. A rotation — our own Secret, right in every way but the credential —
//! is a JSON merge patch of `.dockerconfigjson` alone, guarded by the `resourceVersion` regcreds saw: the
//! smallest request, cheaper for the apiserver than an apply, and refused (409) if anyone touched the
//! Secret since, in which case it is read and decided on again. Everything else (a repair of labels or
//! type, a takeover) is a forced server-side apply of the whole object under regcreds' field manager.

use std::{
    collections::BTreeMap,
    time::{Duration, Instant},
};

use k8s_openapi::{ByteString, api::core::v1::Secret};
use kube::{
    Api, Client,
    api::{DeleteParams, ObjectMeta, Patch, PatchParams, PostParams},
};

use crate::{
    DesiredSecret, Error, InstanceId, Result, Settings,
    cached::{DATA_KEY, SecretState},
    error::api_error,
    instance::Claim,
    labels::{FIELD_MANAGER, INSTANCE_LABEL, MANAGED_BY_LABEL, MANAGED_BY_VALUE, PROVIDER_LABEL},
    takeover::Predecessor,
};

/// Secret type of a pull secret.
pub const SECRET_TYPE: &str = "kubernetes.io/dockerconfigjson";
/// Creates that conflict, then find nothing when reading (deleted in between), before giving up.
const CREATE_ATTEMPTS: u32 = 3;

/// What happened to one Secret in one namespace.
#[derive(Debug, Clone)]
pub enum Ensured {
    /// Already identical: no request sent.
    Unchanged,
    /// Did not exist; created. The object as the apiserver returned it.
    Created(Secret),
    /// Existed with other content; updated. The object as the apiserver returned it.
    Updated(Secret),
    /// A Secret of that name exists without our label and force is off: left untouched.
    Foreign(SecretState),
    /// Another regcreds instance writes a Secret of that name: left untouched, whatever force says.
    OtherInstance(String),
    /// A tool regcreds replaces wrote it; now regcreds' own.
    TakenOver(TakenOver),
}

/// A predecessor's Secret that regcreds took over.
#[derive(Debug, Clone)]
pub struct TakenOver {
    /// The object as the apiserver returned it.
    pub written: Secret,
    /// Who wrote it before.
    pub from: Predecessor,
    /// When its type had to change (upmc's legacy `kubernetes.io/dockercfg`): the old type and how long
    /// the Secret was absent between the delete and the write.
    pub replaced: Option<(String, Duration)>,
}

/// Whether `existing` already is exactly what we would apply.
fn is_current(existing: &SecretState, desired: &DesiredSecret, instance: &InstanceId) -> bool {
    is_ours_as_written(existing, desired, instance) && holds(existing, desired)
}

/// Whether `existing` is this instance's Secret, right in every way but the credential: a rotation.
fn only_credential_differs(existing: &SecretState, desired: &DesiredSecret, instance: &InstanceId) -> bool {
    existing.resource_version.is_some()
        && is_ours_as_written(existing, desired, instance)
        && !holds(existing, desired)
}

/// Whether `existing` carries this instance's labels and the pull-secret type, as regcreds writes them.
fn is_ours_as_written(existing: &SecretState, desired: &DesiredSecret, instance: &InstanceId) -> bool {
    existing.is_managed()
        && existing.label(INSTANCE_LABEL) == Some(instance.as_str())
        && existing.content.type_.as_deref() == Some(SECRET_TYPE)
        && existing.label(PROVIDER_LABEL) == Some(desired.provider.as_str())
}

/// Whether `existing` holds `desired`'s credential.
fn holds(existing: &SecretState, desired: &DesiredSecret) -> bool {
    existing.content.data.as_deref() == Some(&*desired.data)
}

/// Makes `desired` present in `namespace` on behalf of the instance `settings` name, given what is known
/// to exist there.
///
/// `existing` is `None` when no Secret of that name is known: then the Secret is *created*, which
/// cannot take over a Secret someone else made. Only if the create conflicts (a Secret of that name
/// exists after all: someone else's, or ours not yet seen by the watch) is it read, and decided on.
pub async fn ensure(
    client: &Client,
    namespace: &str,
    desired: &DesiredSecret,
    existing: Option<&SecretState>,
    settings: &Settings,
) -> Result<Ensured> {
    let target = Target {
        client,
        namespace,
        desired,
        force: settings.force,
        take_over: settings.take_over,
        instance: &settings.instance_id,
    };
    match existing {
        Some(existing) => target.update(existing).await,
        None => target.create().await,
    }
}

/// One Secret to make current: where, what, and on whose behalf.
struct Target<'a> {
    client: &'a Client,
    namespace: &'a str,
    desired: &'a DesiredSecret,
    force: bool,
    take_over: bool,
    instance: &'a InstanceId,
}

impl Target<'_> {
    /// Creates the Secret; on a conflict, reads what is there and decides as for a known Secret.
    async fn create(&self) -> Result<Ensured> {
        let (namespace, name) = (self.namespace, &self.desired.name);
        let api: Api<Secret> = Api::namespaced(self.client.clone(), namespace);
        let params = PostParams {
            field_manager: Some(FIELD_MANAGER.to_string()),
            ..Default::default()
        };
        for _ in 0..CREATE_ATTEMPTS {
            match api.create(&params, &self.manifest()).await {
                Ok(created) => return Ok(Ensured::Created(created)),
                Err(kube::Error::Api(status)) if status.code == 409 => {}
                Err(source) => return Err(api_error("create", "secret", name, namespace)(source)),
            }
            let found = api
                .get_opt(name)
                .await
                .map_err(api_error("get", "secret", name, namespace))?;
            // Gone again between the create and the read: create once more.
            if let Some(found) = found {
                return self.update(&SecretState::from(found)).await;
            }
        }
        Err(Error::Conflict {
            kind: "secret",
            name: name.clone(),
            namespace: namespace.to_string(),
            attempts: CREATE_ATTEMPTS,
        })
    }

    /// Brings a Secret known to exist up to date: nothing if current, nothing if another instance's or
    /// foreign (unless forced); a guarded patch of the data if only the credential differs, otherwise a
    /// server-side apply.
    async fn update(&self, existing: &SecretState) -> Result<Ensured> {
        if let Some(decided) = self.leave_alone(existing) {
            return Ok(decided);
        }
        if !only_credential_differs(existing, self.desired, self.instance) {
            return self.apply(existing).await;
        }
        match self.patch_credential(existing).await? {
            Some(written) => Ok(Ensured::Updated(written)),
            // Changed since regcreds saw it (or deleted): decide on what is there now.
            None => self.reread().await,
        }
    }

    /// Reads the Secret after a guarded write was refused, and decides on it with a full apply.
    async fn reread(&self) -> Result<Ensured> {
        let (namespace, name) = (self.namespace, &self.desired.name);
        let api: Api<Secret> = Api::namespaced(self.client.clone(), namespace);
        let found = api
            .get_opt(name)
            .await
            .map_err(api_error("get", "secret", name, namespace))?;
        let Some(found) = found else {
            // NB: boxed, as `create` may come back here through `update`.
            return Box::pin(self.create()).await;
        };
        let found = SecretState::from(found);
        match self.leave_alone(&found) {
            Some(decided) => Ok(decided),
            None => self.apply(&found).await,
        }
    }

    /// The outcome when `existing` must not be written: current already, another instance's, or foreign
    /// with force off.
    fn leave_alone(&self, existing: &SecretState) -> Option<Ensured> {
        // NB: never forced: two instances that both force would overwrite each other forever.
        if existing.is_managed()
            && let Claim::Others(other) = existing.claim(self.instance, |_| true)
        {
            return Some(Ensured::OtherInstance(other));
        }
        if is_current(existing, self.desired, self.instance) {
            return Some(Ensured::Unchanged);
        }
        if !existing.is_managed() && self.predecessor(existing).is_none() && !self.force {
            return Some(Ensured::Foreign(existing.clone()));
        }
        None
    }

    /// The predecessor whose Secret `existing` is, if regcreds takes it over to write this credential.
    fn predecessor<'s>(&self, existing: &'s SecretState) -> Option<&'s Predecessor> {
        existing
            .predecessor()
            .filter(|found| self.take_over && !existing.is_managed() && found.may_take_over(self.desired))
    }

    /// Replaces only the credential, if the Secret is still at the `resourceVersion` regcreds saw.
    /// `None` when it is not (409) or is gone (404).
    async fn patch_credential(&self, existing: &SecretState) -> Result<Option<Secret>> {
        let (namespace, name) = (self.namespace, &self.desired.name);
        let api: Api<Secret> = Api::namespaced(self.client.clone(), namespace);
        let params = PatchParams {
            field_manager: Some(FIELD_MANAGER.to_string()),
            ..Default::default()
        };
        let patch = credential_patch(existing.resource_version.as_deref(), &self.desired.data);
        match api.patch(name, &params, &Patch::Merge(patch)).await {
            Ok(written) => Ok(Some(written)),
            Err(kube::Error::Api(status)) if status.code == 409 || status.code == 404 => Ok(None),
            Err(source) => Err(api_error("patch", "secret", name, namespace)(source)),
        }
    }

    /// Writes the whole object with a forced server-side apply (deleting it first if its type differs).
    async fn apply(&self, existing: &SecretState) -> Result<Ensured> {
        let (namespace, name) = (self.namespace, &self.desired.name);
        let old_type = existing.content.type_.clone().unwrap_or_else(|| "Opaque".into());
        let replace = old_type != SECRET_TYPE;
        let started = Instant::now();
        if replace {
            // NB: `type` is immutable; the Secret must be deleted first. The delete and the write are sent
            // back to back, so the Secret is absent for about two apiserver round trips (see the README).
            delete(self.client, namespace, name).await?;
        }
        let api: Api<Secret> = Api::namespaced(self.client.clone(), namespace);
        let params = PatchParams::apply(FIELD_MANAGER).force();
        let written = api
            .patch(name, &params, &Patch::Apply(self.manifest()))
            .await
            .map_err(api_error("apply", "secret", name, namespace))?;
        if let Some(from) = self.predecessor(existing) {
            return Ok(Ensured::TakenOver(TakenOver {
                written,
                from: from.clone(),
                replaced: replace.then(|| (old_type, started.elapsed())),
            }));
        }
        Ok(if replace {
            Ensured::Created(written)
        } else {
            Ensured::Updated(written)
        })
    }

    /// The full object we own, as created or sent with server-side apply.
    fn manifest(&self) -> Secret {
        manifest(self.namespace, self.desired, self.instance)
    }
}

/// A merge patch setting `.dockerconfigjson` to `data`, refused by the apiserver unless the Secret is
/// still at `resource_version`.
fn credential_patch(resource_version: Option<&str>, data: &[u8]) -> serde_json::Value {
    serde_json::json!({
        "metadata": { "resourceVersion": resource_version },
        "data": { DATA_KEY: ByteString(data.to_vec()) },
    })
}

/// The full object we own, as sent with server-side apply.
fn manifest(namespace: &str, desired: &DesiredSecret, instance: &InstanceId) -> Secret {
    let labels = BTreeMap::from([
        (MANAGED_BY_LABEL.to_string(), MANAGED_BY_VALUE.to_string()),
        (PROVIDER_LABEL.to_string(), desired.provider.clone()),
        (INSTANCE_LABEL.to_string(), instance.as_str().to_string()),
    ]);
    Secret {
        metadata: ObjectMeta {
            name: Some(desired.name.clone()),
            namespace: Some(namespace.to_string()),
            labels: Some(labels),
            ..Default::default()
        },
        type_: Some(SECRET_TYPE.to_string()),
        data: Some(BTreeMap::from([(
            DATA_KEY.to_string(),
            ByteString(desired.data.to_vec()),
        )])),
        ..Default::default()
    }
}

/// Deletes a Secret; already gone counts as success.
pub async fn delete(client: &Client, namespace: &str, name: &str) -> Result<()> {
    let api: Api<Secret> = Api::namespaced(client.clone(), namespace);
    match api.delete(name, &DeleteParams::default()).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(status)) if status.code == 404 => Ok(()),
        Err(source) => Err(api_error("delete", "secret", name, namespace)(source)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_credential_patch_carries_the_guard_and_only_the_credential() {
        let patch = credential_patch(Some("42"), b"{}");
        assert_eq!(
            patch,
            serde_json::json!({
                "metadata": { "resourceVersion": "42" },
                "data": { ".dockerconfigjson": "e30=" },
            })
        );
    }
}
