//! Throwaway namespaces for tests.

use std::{collections::BTreeMap, time::Duration};

use k8s_openapi::api::core::v1::{Namespace, ServiceAccount};
use kube::{Api, api::PostParams};
use rand::distr::{Alphanumeric, SampleString};

use crate::wait::wait_for;

/// Label on every namespace [`temp_namespace`] creates, to find leftovers.
pub const TEMP_NAMESPACE_LABEL: &str = "regcreds-testkit/temp";

/// How long the controller manager may take to create the `default` ServiceAccount.
const DEFAULT_SA_TIMEOUT: Duration = Duration::from_secs(30);

/// Creates `<prefix>-<random>` and waits (<= 30 s) until its `default` ServiceAccount exists.
///
/// `prefix` must be a DNS label of at most 56 characters. Panics on failure (it is test set-up).
pub async fn temp_namespace(client: &kube::Client, prefix: &str) -> String {
    let suffix = Alphanumeric.sample_string(&mut rand::rng(), 6).to_lowercase();
    let name = format!("{prefix}-{suffix}");
    let mut ns = Namespace::default();
    ns.metadata.name = Some(name.clone());
    ns.metadata.labels = Some(BTreeMap::from([(
        TEMP_NAMESPACE_LABEL.to_string(),
        "true".to_string(),
    )]));
    Api::<Namespace>::all(client.clone())
        .create(&PostParams::default(), &ns)
        .await
        .unwrap_or_else(|e| panic!("creating namespace {name}: {e}"));

    let accounts = Api::<ServiceAccount>::namespaced(client.clone(), &name);
    let what = format!("ServiceAccount {name}/default");
    wait_for(&what, DEFAULT_SA_TIMEOUT, || async {
        accounts.get_opt("default").await.ok().flatten()
    })
    .await;
    name
}
