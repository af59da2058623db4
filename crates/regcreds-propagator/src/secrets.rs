//! Writing one managed Secret into one namespace, and removing it.

use std::collections::BTreeMap;

use k8s_openapi::{ByteString, api::core::v1::Secret};
use kube::{
    Api, Client, ResourceExt,
    api::{DeleteParams, ObjectMeta, Patch, PatchParams},
};

use crate::{
    DesiredSecret, InstanceId, Result,
    error::api_error,
    instance::Claim,
    labels::{
        FIELD_MANAGER, INSTANCE_LABEL, MANAGED_BY_LABEL, MANAGED_BY_VALUE, PATCHER_MANAGED_BY, PROVIDER_LABEL,
    },
};

/// Secret type and data key of a pull secret.
pub const SECRET_TYPE: &str = "kubernetes.io/dockerconfigjson";
const DATA_KEY: &str = ".dockerconfigjson";

/// What happened to one Secret in one namespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretOutcome {
    /// Already identical: no request sent.
    Unchanged,
    /// Did not exist; created.
    Created,
    /// Existed with other content; updated.
    Updated,
    /// A Secret of that name exists without our label and force is off: left untouched.
    Foreign,
    /// Another regcreds instance writes a Secret of that name: left untouched, whatever force says.
    OtherInstance(String),
}

/// Whether a Secret carries regcreds' ownership label.
pub fn is_managed(secret: &Secret) -> bool {
    secret.labels().get(MANAGED_BY_LABEL).map(String::as_str) == Some(MANAGED_BY_VALUE)
}

/// Whether imagepullsecret-patcher created the Secret: regcreds replaces that tool, so it takes such a
/// Secret over like one of its own instead of treating it as foreign.
fn is_patchers(secret: &Secret) -> bool {
    let (key, value) = PATCHER_MANAGED_BY;
    secret.annotations().get(key).map(String::as_str) == Some(value)
}

/// Whether `existing` already is exactly what we would apply.
fn is_current(existing: &Secret, desired: &DesiredSecret, instance: &InstanceId) -> bool {
    is_managed(existing)
        && existing.labels().get(INSTANCE_LABEL).map(String::as_str) == Some(instance.as_str())
        && existing.type_.as_deref() == Some(SECRET_TYPE)
        && existing.labels().get(PROVIDER_LABEL) == Some(&desired.provider)
        && existing
            .data
            .as_ref()
            .and_then(|d| d.get(DATA_KEY))
            .map(|b| b.0.as_slice())
            == Some(&*desired.data)
}

/// Makes `desired` present in `namespace` for `instance`, given what currently exists there.
pub async fn ensure(
    client: &Client,
    namespace: &str,
    desired: &DesiredSecret,
    existing: Option<&Secret>,
    force: bool,
    instance: &InstanceId,
) -> Result<SecretOutcome> {
    let api: Api<Secret> = Api::namespaced(client.clone(), namespace);
    // NB: never forced: two instances that both force would overwrite each other forever.
    if let Some(Claim::Others(other)) = existing
        .filter(|s| is_managed(s))
        .map(|s| instance.claim(s, |_| true))
    {
        return Ok(SecretOutcome::OtherInstance(other));
    }
    let outcome = match existing {
        Some(secret) if is_current(secret, desired, instance) => return Ok(SecretOutcome::Unchanged),
        Some(secret) if !is_managed(secret) && !is_patchers(secret) && !force => {
            return Ok(SecretOutcome::Foreign);
        }
        Some(secret) if secret.type_.as_deref() != Some(SECRET_TYPE) => {
            // NB: `type` is immutable; a forced takeover of an Opaque Secret must delete it first.
            delete(client, namespace, &desired.name).await?;
            SecretOutcome::Created
        }
        Some(_) => SecretOutcome::Updated,
        None => SecretOutcome::Created,
    };
    let params = PatchParams::apply(FIELD_MANAGER).force();
    api.patch(
        &desired.name,
        &params,
        &Patch::Apply(manifest(namespace, desired, instance)),
    )
    .await
    .map_err(api_error("apply", "secret", &desired.name, namespace))?;
    Ok(outcome)
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
