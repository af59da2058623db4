//! What regcreds writes and leaves in a cluster, and what a user adds by hand that it must leave alone.

use std::collections::BTreeMap;

use anyhow::Result;
use k8s_openapi::api::core::v1::{LocalObjectReference, Secret, ServiceAccount};
use kube::{
    Api, Client, ResourceExt,
    api::{ListParams, ObjectMeta, PostParams},
};

/// Label every Secret regcreds writes carries (`app.kubernetes.io/managed-by=regcreds`).
const MANAGED: &str = "app.kubernetes.io/managed-by=regcreds";
/// Annotations in which regcreds records the `imagePullSecrets` entries it added: one per instance
/// (prefix), and the shared one of versions before instances.
const RECORD_PREFIX: &str = "image-pull-secrets.regcreds.dev/";
const SHARED_RECORD: &str = "regcreds.dev/image-pull-secrets";

/// Everything regcreds wrote that is still in the cluster, one line each: Secrets labelled
/// `app.kubernetes.io/managed-by=regcreds`, ServiceAccounts with one of its record annotations, and
/// `imagePullSecrets` entries naming one of `secret_names` (the names its providers write). Empty once
/// an uninstall left nothing behind.
pub async fn regcreds_leftovers(client: &Client, secret_names: &[&str]) -> Result<Vec<String>> {
    let mut left = Vec::new();
    let secrets = Api::<Secret>::all(client.clone())
        .list_metadata(&ListParams::default().labels(MANAGED))
        .await?;
    for secret in secrets {
        left.push(format!(
            "secret {}/{}",
            secret.namespace().unwrap_or_default(),
            secret.name_any()
        ));
    }
    let accounts = Api::<ServiceAccount>::all(client.clone())
        .list(&ListParams::default())
        .await?;
    for account in accounts {
        let at = format!(
            "{}/{}",
            account.namespace().unwrap_or_default(),
            account.name_any()
        );
        for key in account.annotations().keys() {
            if key.starts_with(RECORD_PREFIX) || key == SHARED_RECORD {
                left.push(format!("serviceaccount {at}: annotation {key}"));
            }
        }
        for entry in account.image_pull_secrets.iter().flatten() {
            if secret_names.contains(&entry.name.as_str()) {
                left.push(format!(
                    "serviceaccount {at}: imagePullSecrets entry {}",
                    entry.name
                ));
            }
        }
    }
    Ok(left)
}

/// How many Secrets labelled `app.kubernetes.io/managed-by=regcreds` the cluster holds (0 if the list
/// fails).
pub async fn managed_secret_count(client: &Client) -> usize {
    Api::<Secret>::all(client.clone())
        .list_metadata(&ListParams::default().labels(MANAGED))
        .await
        .map_or(0, |list| list.items.len())
}

/// Appends `secret` to the `imagePullSecrets` of ServiceAccount `account` in `namespace`, as a careful
/// user would: read, append, write back with the read `resourceVersion`, and read again after a conflict
/// (regcreds may write the same list meanwhile), so nobody's entry is lost.
pub async fn append_pull_secret_ref(
    client: &Client,
    namespace: &str,
    account: &str,
    secret: &str,
) -> Result<()> {
    let api = Api::<ServiceAccount>::namespaced(client.clone(), namespace);
    for _ in 0..10 {
        let mut current = api.get(account).await?;
        current
            .image_pull_secrets
            .get_or_insert_with(Vec::new)
            .push(LocalObjectReference { name: secret.into() });
        match api.replace(account, &PostParams::default(), &current).await {
            Ok(_) => return Ok(()),
            Err(kube::Error::Api(status)) if status.code == 409 => continue,
            Err(error) => return Err(error.into()),
        }
    }
    anyhow::bail!("{namespace}/{account}: 10 conflicts in a row adding imagePullSecrets entry {secret}")
}

/// Secret `name` in `namespace`, if any.
pub async fn secret(client: &Client, namespace: &str, name: &str) -> Option<Secret> {
    Api::<Secret>::namespaced(client.clone(), namespace)
        .get_opt(name)
        .await
        .ok()
        .flatten()
}

/// The `.dockerconfigjson` bytes of Secret `name` in `namespace`.
pub async fn secret_data(client: &Client, namespace: &str, name: &str) -> Option<Vec<u8>> {
    let secret = secret(client, namespace, name).await?;
    Some(secret.data?.get(".dockerconfigjson")?.0.clone())
}

/// The `imagePullSecrets` names of ServiceAccount `account` in `namespace`.
pub async fn pull_secret_refs(client: &Client, namespace: &str, account: &str) -> Option<Vec<String>> {
    let account = Api::<ServiceAccount>::namespaced(client.clone(), namespace)
        .get_opt(account)
        .await
        .ok()??;
    Some(
        account
            .image_pull_secrets
            .unwrap_or_default()
            .into_iter()
            .map(|r| r.name)
            .collect(),
    )
}

/// A Secret `name` that a user made by hand (no regcreds label, type `Opaque`): what regcreds must
/// leave alone.
pub fn users_opaque_secret(name: &str) -> Secret {
    Secret {
        metadata: ObjectMeta {
            name: Some(name.into()),
            ..Default::default()
        },
        type_: Some("Opaque".into()),
        data: Some(BTreeMap::from([(
            "token".to_string(),
            k8s_openapi::ByteString(b"user-owned".to_vec()),
        )])),
        ..Default::default()
    }
}
