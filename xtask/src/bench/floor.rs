//! The floor: the writes regcreds has to make, made by a bare kube client with nothing else to do.
//!
//! Per namespace, exactly what regcreds sends when it has nothing to find out: one server-side apply of
//! the pull secret, then a get and an optimistic-concurrency update of the `default` ServiceAccount.
//! A rotation is one apply per namespace (the ServiceAccount already references the Secret). Both run
//! `concurrency` namespaces at a time, like regcreds' `REGCREDS_CONCURRENCY`.
//!
//! The floor's Secrets carry the same labels as regcreds' except `app.kubernetes.io/managed-by`
//! ([`FLOOR_MANAGED_BY`]): regcreds' label-selected watch never sees them, so the floor can rotate its own
//! Secret ([`ROTATED_SECRET_NAME`](super::observer::ROTATED_SECRET_NAME)) in regcreds' namespaces while
//! regcreds runs, idle.

use std::collections::BTreeMap;

use anyhow::{Context, Result, bail};
use futures::{StreamExt, TryStreamExt, stream};
use k8s_openapi::{
    ByteString,
    api::core::v1::{LocalObjectReference, Secret, ServiceAccount},
};
use kube::{
    Api, Client,
    api::{ObjectMeta, Patch, PatchParams, PostParams},
};

use super::observer::{FLOOR_MANAGED_BY, SECRET_NAME};

/// Field manager of the floor's applies.
const FIELD_MANAGER: &str = "regcreds-bench/floor";
/// regcreds' ServiceAccount annotation listing the entries it added.
const REFS_ANNOTATION: &str = "regcreds.dev/image-pull-secrets";
/// Conflicts tolerated per ServiceAccount (kube-controller-manager does not touch `default` after
/// creating it, so one attempt is the norm).
const MAX_ATTEMPTS: u32 = 8;

/// Writes the Secret with `data` into every namespace and references it from each `default` account.
pub async fn propagate(
    client: &Client,
    namespaces: &[String],
    data: &[u8],
    concurrency: usize,
) -> Result<()> {
    stream::iter(namespaces)
        .map(|ns| async move {
            apply_secret(client, ns, SECRET_NAME, data).await?;
            reference(client, ns).await
        })
        .buffer_unordered(concurrency)
        .try_collect()
        .await
}

/// Writes Secret `name` with `data` into every namespace (a rotation once it exists everywhere).
pub async fn rotate(
    client: &Client,
    namespaces: &[String],
    name: &str,
    data: &[u8],
    concurrency: usize,
) -> Result<()> {
    stream::iter(namespaces)
        .map(|ns| apply_secret(client, ns, name, data))
        .buffer_unordered(concurrency)
        .try_collect()
        .await
}

/// The object regcreds applies, labelled as the floor's (the bench's watch selects both).
async fn apply_secret(client: &Client, namespace: &str, name: &str, data: &[u8]) -> Result<()> {
    let secret = Secret {
        metadata: ObjectMeta {
            name: Some(name.to_string()),
            namespace: Some(namespace.to_string()),
            labels: Some(BTreeMap::from([
                (
                    "app.kubernetes.io/managed-by".to_string(),
                    FLOOR_MANAGED_BY.to_string(),
                ),
                (
                    "regcreds.dev/provider".to_string(),
                    "dockerconfigjson".to_string(),
                ),
            ])),
            ..Default::default()
        },
        type_: Some("kubernetes.io/dockerconfigjson".to_string()),
        data: Some(BTreeMap::from([(
            ".dockerconfigjson".to_string(),
            ByteString(data.to_vec()),
        )])),
        ..Default::default()
    };
    Api::<Secret>::namespaced(client.clone(), namespace)
        .patch(
            name,
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(&secret),
        )
        .await
        .with_context(|| format!("applying {namespace}/{name}"))?;
    Ok(())
}

/// Adds the Secret to `default`'s `imagePullSecrets`: get, append, update with the read resourceVersion.
async fn reference(client: &Client, namespace: &str) -> Result<()> {
    let api = Api::<ServiceAccount>::namespaced(client.clone(), namespace);
    for _ in 0..MAX_ATTEMPTS {
        let mut account = api
            .get("default")
            .await
            .with_context(|| format!("reading {namespace}/default"))?;
        let refs = account.image_pull_secrets.get_or_insert_with(Vec::new);
        if refs.iter().any(|r| r.name == SECRET_NAME) {
            return Ok(());
        }
        refs.push(LocalObjectReference {
            name: SECRET_NAME.to_string(),
        });
        // regcreds also records what it added (for cleanup); same bytes, same cost.
        account
            .metadata
            .annotations
            .get_or_insert_with(BTreeMap::new)
            .insert(REFS_ANNOTATION.to_string(), SECRET_NAME.to_string());
        match api.replace("default", &PostParams::default(), &account).await {
            Ok(_) => return Ok(()),
            Err(kube::Error::Api(status)) if status.code == 409 => continue,
            Err(error) => return Err(error).with_context(|| format!("updating {namespace}/default")),
        }
    }
    bail!("{namespace}/default: {MAX_ATTEMPTS} conflicts in a row")
}
