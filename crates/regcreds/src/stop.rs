//! Stopping the Deployment a regcreds instance runs as, for `regcreds cleanup --deployment D --stop`
//! (the Helm chart's pre-delete hook): scale it to zero through its `scale` subresource, then wait until
//! none of its pods is left, since a terminating controller may still be writing.

use std::time::Duration;

use anyhow::{Context, bail};
use k8s_openapi::{
    api::{apps::v1::Deployment, core::v1::Pod},
    apimachinery::pkg::apis::meta::v1::LabelSelector,
};
use kube::{
    Api, Client, ResourceExt,
    api::{ListParams, Patch, PatchParams},
};
use tokio::time::Instant;
use tracing::info;

/// How often the pods are listed while waiting for them to go.
const POLL: Duration = Duration::from_millis(500);

/// Scales Deployment `name` in `namespace` to zero and waits until its pods are gone (all but
/// `own_pod`, the pod running this). A Deployment that does not exist is already stopped.
pub async fn stop_deployment(
    client: &Client,
    namespace: &str,
    name: &str,
    own_pod: Option<&str>,
    timeout: Duration,
) -> anyhow::Result<()> {
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), namespace);
    let Some(deployment) = deployments
        .get_opt(name)
        .await
        .with_context(|| format!("reading deployment {namespace}/{name}"))?
    else {
        info!(%namespace, deployment = %name, "deployment {namespace}/{name} does not exist: nothing to stop");
        return Ok(());
    };
    let spec = deployment.spec;
    let selector = selector_string(&spec.selector);
    if selector.is_empty() {
        bail!("deployment {namespace}/{name} has an empty selector: cannot tell its pods");
    }
    let replicas = spec.replicas.unwrap_or(1);
    if replicas != 0 {
        let zero = Patch::Merge(serde_json::json!({ "spec": { "replicas": 0 } }));
        deployments
            .patch_scale(name, &PatchParams::default(), &zero)
            .await
            .with_context(|| format!("scaling deployment {namespace}/{name} to zero replicas"))?;
        info!(%namespace, deployment = %name, was = replicas, "scaled deployment {namespace}/{name} from {replicas} to 0 replicas");
    }
    let pods: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let deadline = Instant::now() + timeout;
    let mut said = false;
    loop {
        let left: Vec<String> = pods
            .list_metadata(&ListParams::default().labels(&selector))
            .await
            .with_context(|| format!("listing the pods of deployment {namespace}/{name}"))?
            .into_iter()
            .map(|pod| pod.name_any())
            .filter(|pod| Some(pod.as_str()) != own_pod)
            .collect();
        if left.is_empty() {
            info!(%namespace, deployment = %name, "no pod of deployment {namespace}/{name} is left");
            return Ok(());
        }
        if Instant::now() >= deadline {
            bail!(
                "{} pod(s) of deployment {namespace}/{name} still exist {}s after it was scaled to zero: {}",
                left.len(),
                timeout.as_secs(),
                left.join(", ")
            );
        }
        if !said {
            info!(%namespace, deployment = %name, pods = %left.join(","), "waiting for {} pod(s) of deployment {namespace}/{name} to stop", left.len());
            said = true;
        }
        tokio::time::sleep(POLL).await;
    }
}

/// A label selector in the query syntax (`a=b,c in (d,e),!f`).
fn selector_string(selector: &LabelSelector) -> String {
    let labels = selector
        .match_labels
        .iter()
        .flatten()
        .map(|(key, value)| format!("{key}={value}"));
    let expressions = selector.match_expressions.iter().flatten().map(|e| {
        let values = e.values.clone().unwrap_or_default().join(",");
        match e.operator.as_str() {
            "In" => format!("{} in ({values})", e.key),
            "NotIn" => format!("{} notin ({values})", e.key),
            "DoesNotExist" => format!("!{}", e.key),
            _ => e.key.clone(),
        }
    });
    labels.chain(expressions).collect::<Vec<_>>().join(",")
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelectorRequirement;

    use super::*;

    #[test]
    fn a_deployment_selector_becomes_the_pod_list_query() {
        let requirement = |key: &str, operator: &str, values: &[&str]| LabelSelectorRequirement {
            key: key.into(),
            operator: operator.into(),
            values: (!values.is_empty()).then(|| values.iter().map(|v| v.to_string()).collect()),
        };
        let selector = LabelSelector {
            match_labels: Some(BTreeMap::from([
                ("app.kubernetes.io/instance".to_string(), "regcreds".to_string()),
                ("app.kubernetes.io/name".to_string(), "regcreds".to_string()),
            ])),
            match_expressions: Some(vec![
                requirement("tier", "In", &["a", "b"]),
                requirement("legacy", "DoesNotExist", &[]),
                requirement("track", "Exists", &[]),
                requirement("zone", "NotIn", &["x"]),
            ]),
        };
        assert_eq!(
            selector_string(&selector),
            "app.kubernetes.io/instance=regcreds,app.kubernetes.io/name=regcreds,tier in (a,b),!legacy,\
             track,zone notin (x)"
        );
    }
}
