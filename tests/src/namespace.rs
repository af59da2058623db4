//! Namespaces for tests: throwaway ones with a random name ([`temp_namespace`]), and named ones a test
//! labels with [`TEST_LABEL`] so that its regcreds instance selects only them ([`ensure_namespace`]).

use std::{collections::BTreeMap, time::Duration};

use k8s_openapi::api::core::v1::{Namespace, ServiceAccount};
use kube::{Api, Client, api::PostParams};
use rand::distr::{Alphanumeric, SampleString};

use crate::wait::wait_for;

/// Label on every namespace [`temp_namespace`] creates, to find leftovers.
pub const TEMP_NAMESPACE_LABEL: &str = "regcreds-testkit/temp";

/// Label every named test namespace carries (`regcreds-e2e/test=<test>`), so each regcreds instance
/// selects only its own test's.
pub const TEST_LABEL: &str = "regcreds-e2e/test";

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

/// Creates namespace `name` with `labels` (already existing is fine) and waits (<= 60 s) for its
/// `default` ServiceAccount.
pub async fn ensure_namespace(client: &Client, name: &str, labels: &[(&str, &str)]) {
    let mut namespace = Namespace::default();
    namespace.metadata.name = Some(name.into());
    namespace.metadata.labels = Some(
        labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect::<BTreeMap<_, _>>(),
    );
    match Api::<Namespace>::all(client.clone())
        .create(&PostParams::default(), &namespace)
        .await
    {
        Ok(_) => {}
        Err(kube::Error::Api(status)) if status.code == 409 => {}
        Err(error) => panic!("creating namespace {name}: {error}"),
    }
    let accounts = Api::<ServiceAccount>::namespaced(client.clone(), name);
    wait_for(
        &format!("ServiceAccount {name}/default"),
        Duration::from_secs(60),
        || async { accounts.get_opt("default").await.ok().flatten() },
    )
    .await;
}

/// Deletes namespaces, ignoring errors (test clean-up).
pub async fn delete_namespaces(client: &Client, names: &[&str]) {
    let api = Api::<Namespace>::all(client.clone());
    for name in names {
        let _ = api.delete(name, &Default::default()).await;
    }
}
