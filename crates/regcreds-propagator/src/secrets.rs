//! Writing one managed Secret into one namespace, and removing it.
//!
//! A Secret not known to exist is created (POST): that cannot take over a Secret regcreds did not make.
//! Only if the create conflicts is the Secret read, and then decided on like a known one: a known
//! Secret of this instance (or one it adopts) that differs is updated with server-side apply; one
//! without our label is foreign (left alone unless forced; imagepullsecret-patcher's are taken over);
//! another instance's is never touched, forced or not.

use std::collections::BTreeMap;

use k8s_openapi::{ByteString, api::core::v1::Secret};
use kube::{
    Api, Client,
    api::{DeleteParams, ObjectMeta, Patch, PatchParams, PostParams},
};

use crate::{
    DesiredSecret, Error, InstanceId, Result,
    cached::{DATA_KEY, SecretState},
    error::api_error,
    instance::Claim,
    labels::{FIELD_MANAGER, INSTANCE_LABEL, MANAGED_BY_LABEL, MANAGED_BY_VALUE, PROVIDER_LABEL},
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
}

/// Whether `existing` already is exactly what we would apply.
fn is_current(existing: &SecretState, desired: &DesiredSecret, instance: &InstanceId) -> bool {
    existing.is_managed()
        && existing.label(INSTANCE_LABEL) == Some(instance.as_str())
        && existing.content.type_.as_deref() == Some(SECRET_TYPE)
        && existing.label(PROVIDER_LABEL) == Some(desired.provider.as_str())
        && existing.content.data.as_deref() == Some(&*desired.data)
}

/// Makes `desired` present in `namespace` for `instance`, given what is known to exist there.
///
/// `existing` is `None` when no Secret of that name is known: then the Secret is *created*, which
/// cannot take over a Secret someone else made. Only if the create conflicts (a Secret of that name
/// exists after all: someone else's, or ours not yet seen by the watch) is it read, and decided on.
pub async fn ensure(
    client: &Client,
    namespace: &str,
    desired: &DesiredSecret,
    existing: Option<&SecretState>,
    force: bool,
    instance: &InstanceId,
) -> Result<Ensured> {
    let target = Target {
        client,
        namespace,
        desired,
        force,
        instance,
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
    /// foreign (unless forced), otherwise a server-side apply.
    async fn update(&self, existing: &SecretState) -> Result<Ensured> {
        // NB: never forced: two instances that both force would overwrite each other forever.
        if existing.is_managed()
            && let Claim::Others(other) = existing.claim(self.instance, |_| true)
        {
            return Ok(Ensured::OtherInstance(other));
        }
        if is_current(existing, self.desired, self.instance) {
            return Ok(Ensured::Unchanged);
        }
        if !existing.is_managed() && !existing.is_patchers() && !self.force {
            return Ok(Ensured::Foreign(existing.clone()));
        }
        let (namespace, name) = (self.namespace, &self.desired.name);
        let replace = existing.content.type_.as_deref() != Some(SECRET_TYPE);
        if replace {
            // NB: `type` is immutable; a forced takeover of an Opaque Secret must delete it first.
            delete(self.client, namespace, name).await?;
        }
        let api: Api<Secret> = Api::namespaced(self.client.clone(), namespace);
        let params = PatchParams::apply(FIELD_MANAGER).force();
        let written = api
            .patch(name, &params, &Patch::Apply(self.manifest()))
            .await
            .map_err(api_error("apply", "secret", name, namespace))?;
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
