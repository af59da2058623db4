//! The test kit's control plane behaves like a real cluster in the ways regcreds depends on:
//! ServiceAccounts appear, dockerconfigjson Secrets round-trip with the apiserver's validation,
//! namespaces finalize, RBAC is enforced, and request metrics and apiserver restarts work; and it is the
//! Kubernetes release `$REGCREDS_K8S_VERSION` asks for (`cargo xtask test` runs this suite again on the
//! oldest supported one).

use std::{collections::BTreeMap, time::Duration};

use k8s_openapi::{
    ByteString,
    api::{
        core::v1::{ConfigMap, Namespace, Secret},
        rbac::v1::RoleBinding,
    },
};
use kube::{Api, api::PostParams};
use regcreds_testkit::{ControlPlane, temp_namespace, versions, wait_for};

const DOCKERCONFIGJSON: &str = "kubernetes.io/dockerconfigjson";

fn pull_secret(name: &str) -> Secret {
    let config = r#"{"auths":{"registry.example":{"auth":"dXNlcjpwYXNz"}}}"#;
    let mut secret = Secret {
        type_: Some(DOCKERCONFIGJSON.into()),
        data: Some(BTreeMap::from([(
            ".dockerconfigjson".into(),
            ByteString(config.into()),
        )])),
        ..Secret::default()
    };
    secret.metadata.name = Some(name.into());
    secret
}

#[tokio::test]
async fn the_apiserver_serves_the_kubernetes_release_that_was_asked_for() {
    let cp = ControlPlane::shared().await;
    let wanted = versions::selected().expect("$REGCREDS_K8S_VERSION names a known control plane");
    let info = cp.client().apiserver_version().await.expect("GET /version");
    assert_eq!(info.git_version, format!("v{}", wanted.kubernetes), "{info:?}");
    assert_eq!(cp.kubernetes_version(), wanted.kubernetes);
    assert_eq!(
        format!("{}.{}", info.major, info.minor),
        wanted.minor_version(),
        "{info:?}"
    );
}

#[tokio::test]
async fn a_namespace_gets_its_default_service_account_and_is_finalized_on_delete() {
    let cp = ControlPlane::shared().await;
    let client = cp.client();
    // temp_namespace returns only once the controller manager created `default`.
    let ns = temp_namespace(&client, "smoke-lifecycle").await;

    let namespaces = Api::<Namespace>::all(client.clone());
    namespaces
        .delete(&ns, &Default::default())
        .await
        .expect("delete namespace");
    wait_for(
        "the namespace controller to finalize the namespace",
        Duration::from_secs(60),
        || async { matches!(namespaces.get_opt(&ns).await, Ok(None)).then_some(()) },
    )
    .await;
}

#[tokio::test]
async fn a_dockerconfigjson_secret_round_trips_and_its_type_is_immutable() {
    let cp = ControlPlane::shared().await;
    let client = cp.client();
    let ns = temp_namespace(&client, "smoke-secret").await;
    let secrets = Api::<Secret>::namespaced(client, &ns);

    secrets
        .create(&PostParams::default(), &pull_secret("pull"))
        .await
        .expect("create secret");
    let read = secrets.get("pull").await.expect("read secret");
    assert_eq!(read.type_.as_deref(), Some(DOCKERCONFIGJSON));
    assert_eq!(read.data, pull_secret("pull").data);

    let mut retyped = read;
    retyped.type_ = Some("Opaque".into());
    let err = secrets
        .replace("pull", &PostParams::default(), &retyped)
        .await
        .expect_err("type change");
    let kube::Error::Api(status) = err else {
        panic!("expected an API error, got {err}")
    };
    assert_eq!(status.code, 422, "{status:?}");
    assert!(status.message.contains("immutable"), "{}", status.message);
}

#[tokio::test]
async fn a_user_without_bindings_may_not_list_secrets() {
    let cp = ControlPlane::shared().await;
    let nobody = cp.client_as("nobody", &[]).await.expect("client for nobody");

    let err = Api::<Secret>::all(nobody)
        .list(&Default::default())
        .await
        .expect_err("list is refused");
    let kube::Error::Api(status) = err else {
        panic!("expected an API error, got {err}")
    };
    assert_eq!(status.code, 403, "{status:?}");
    assert!(status.message.contains("\"nobody\""), "{}", status.message);
}

#[tokio::test]
async fn a_group_bound_to_the_aggregated_view_role_may_read_configmaps_but_not_secrets() {
    let cp = ControlPlane::shared().await;
    let ns = temp_namespace(&cp.client(), "smoke-rbac").await;
    let binding: RoleBinding = serde_json::from_value(serde_json::json!({
        "metadata": { "name": "readers-view" },
        "roleRef": { "apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "view" },
        "subjects": [{ "apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": "readers" }],
    }))
    .expect("RoleBinding");
    Api::<RoleBinding>::namespaced(cp.client(), &ns)
        .create(&PostParams::default(), &binding)
        .await
        .expect("bind");

    let reader = cp
        .client_as("alice", &["readers"])
        .await
        .expect("client for alice");
    // `view` is empty until the clusterrole-aggregation controller fills it, hence the wait.
    let configmaps = Api::<ConfigMap>::namespaced(reader.clone(), &ns);
    wait_for(
        "alice to be allowed to list configmaps",
        Duration::from_secs(30),
        || async { configmaps.list(&Default::default()).await.ok() },
    )
    .await;
    let err = Api::<Secret>::namespaced(reader, &ns)
        .list(&Default::default())
        .await
        .expect_err("refused");
    assert!(matches!(err, kube::Error::Api(ref s) if s.code == 403), "{err}");
}

#[tokio::test]
async fn request_count_sees_writes() {
    let cp = ControlPlane::shared().await;
    let client = cp.client();
    let ns = temp_namespace(&client, "smoke-metrics").await;
    let before = cp
        .request_count(&["POST"], Some("secrets"))
        .await
        .expect("metrics");

    let secrets = Api::<Secret>::namespaced(client, &ns);
    for name in ["a", "b", "c"] {
        secrets
            .create(&PostParams::default(), &pull_secret(name))
            .await
            .expect("create secret");
    }

    let after = cp
        .request_count(&["POST"], Some("secrets"))
        .await
        .expect("metrics");
    // Other tests in this binary may create Secrets concurrently, hence >=.
    assert!(after >= before + 3, "before {before}, after {after}");
    assert_eq!(
        cp.request_count(&["NO-SUCH-VERB"], None).await.expect("metrics"),
        0
    );
}

#[tokio::test]
async fn a_private_control_plane_survives_an_apiserver_restart_and_cleans_up() {
    let cp = ControlPlane::start().await.expect("start private control plane");
    let ns = temp_namespace(&cp.client(), "smoke-restart").await;

    cp.restart_apiserver().await.expect("restart apiserver");
    // The data lives in etcd, so it outlasts the apiserver.
    Api::<Namespace>::all(cp.client())
        .get(&ns)
        .await
        .expect("namespace still there");

    let dir = cp.dir().to_path_buf();
    let pids: Vec<u32> = cp.processes().iter().map(|(_, pid, _)| *pid).collect();
    drop(cp);
    assert!(!dir.exists(), "{} left behind", dir.display());
    for pid in pids {
        assert!(
            !std::path::Path::new(&format!("/proc/{pid}")).exists(),
            "process {pid} still running"
        );
    }
}
