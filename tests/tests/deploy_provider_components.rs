//! The provider components (`deploy/components/providers/*`): every overlay is the base plus its
//! component and nothing else, and components combine — `deploy/examples/ecr-and-dockerhub` and one
//! component of every provider at once render each overlay's variables, volumes and mounts exactly once,
//! keep the base's hardening and RBAC, and pass a server-side dry run.

use std::collections::{BTreeMap, BTreeSet};

use regcreds_testkit::{
    ControlPlane,
    manifests::{
        arr, assert_least_privilege, assert_locked_down, container, dir_name, dry_run, env_names,
        kustomization_of, kustomize, kustomize_with, overlay_dirs, provider_component_dirs, providers, s,
        the,
    },
};
use serde_json::{Value, json};

/// The base plus the ecr and dockerhub components, no patch of its own.
const COMBINED_EXAMPLE: &str = "deploy/examples/ecr-and-dockerhub";

/// Provider components grouped by the provider they configure (`ECR`: `ecr`, `ecr-access-keys`), as
/// the overlay of the same name renders it.
fn components_by_provider() -> BTreeMap<String, Vec<String>> {
    let mut by = BTreeMap::<String, Vec<String>>::new();
    for component in provider_component_dirs() {
        let overlay = format!("deploy/overlays/{}", dir_name(&component));
        let objects = kustomize(&overlay);
        let c = container(the(&objects, "Deployment", &overlay), "regcreds");
        let provider = providers(c)
            .into_iter()
            .next()
            .unwrap_or_else(|| panic!("{overlay}: configures no provider"))
            .to_string();
        by.entry(provider).or_default().push(component);
    }
    by
}

/// Two sets of one component per provider, the first of each provider's components and the last
/// (`ecr`, then `ecr-access-keys`): between them, every provider component.
fn provider_combinations() -> Vec<Vec<String>> {
    let by = components_by_provider();
    let first = by.values().map(|v| v[0].clone()).collect();
    let last = by.values().map(|v| v[v.len() - 1].clone()).collect();
    vec![first, last]
}

/// `objects` (the base plus `components`) hold what each component's overlay renders — every env
/// entry exactly once and with the overlay's value, every volume and mount once, its pod labels and
/// ServiceAccount annotations — and nothing the base and those overlays do not have; they configure
/// exactly the overlays' providers and keep the base's hardening and RBAC.
fn assert_combines(objects: &[Value], components: &[&str], what: &str) {
    let deployment = the(objects, "Deployment", what);
    assert_locked_down(objects, deployment, what);
    assert_least_privilege(objects, what);
    let c = container(deployment, "regcreds");
    let names = env_names(c);
    let unique: BTreeSet<&str> = names.iter().copied().collect();
    assert_eq!(
        unique.len(),
        names.len(),
        "{what}: a variable is set twice: {names:?}"
    );
    let volumes = "/spec/template/spec/volumes";
    let base = kustomize("deploy/base");
    let base_deployment = the(&base, "Deployment", "deploy/base");
    let mut known_env: Vec<Value> = arr(container(base_deployment, "regcreds"), "/env").to_vec();
    let mut known_volumes: Vec<Value> = arr(base_deployment, volumes).to_vec();
    let mut expected_providers = BTreeSet::new();
    for component in components {
        let overlay = format!("deploy/overlays/{}", dir_name(component));
        let alone = kustomize(&overlay);
        let alone_deployment = the(&alone, "Deployment", &overlay);
        let alone_c = container(alone_deployment, "regcreds");
        expected_providers.extend(providers(alone_c).into_iter().map(str::to_string));
        known_env.extend(arr(alone_c, "/env").iter().cloned());
        known_volumes.extend(arr(alone_deployment, volumes).iter().cloned());
        for (list, from_overlay, combined) in [
            ("env", arr(alone_c, "/env"), arr(c, "/env")),
            (
                "volumeMounts",
                arr(alone_c, "/volumeMounts"),
                arr(c, "/volumeMounts"),
            ),
            (
                "volumes",
                arr(alone_deployment, volumes),
                arr(deployment, volumes),
            ),
        ] {
            for item in from_overlay {
                let n = combined.iter().filter(|x| *x == item).count();
                assert_eq!(n, 1, "{what}: {list} entry {item} of {overlay} appears {n} times");
            }
        }
        for (of, pointer) in [
            ("Deployment", "/spec/template/metadata/labels"),
            ("ServiceAccount", "/metadata/annotations"),
        ] {
            let map = |objects: &[Value], what: &str| {
                the(objects, of, what)
                    .pointer(pointer)
                    .and_then(Value::as_object)
                    .cloned()
                    .unwrap_or_default()
            };
            let combined = map(objects, what);
            for (key, value) in map(&alone, &overlay) {
                assert_eq!(
                    combined.get(&key),
                    Some(&value),
                    "{what}: {of} {pointer} {key} of {overlay}"
                );
            }
        }
    }
    for e in arr(c, "/env") {
        assert!(
            known_env.contains(e),
            "{what}: {e} is in no overlay of {components:?}"
        );
    }
    for v in arr(deployment, volumes) {
        assert!(
            known_volumes.contains(v),
            "{what}: volume {v} is in no overlay of {components:?}"
        );
    }
    let configured: BTreeSet<String> = providers(c).into_iter().map(str::to_string).collect();
    assert_eq!(configured, expected_providers, "{what}: providers");
}

#[test]
fn every_overlay_is_the_base_plus_its_provider_component_and_nothing_else() {
    let components = provider_component_dirs();
    let overlays = overlay_dirs();
    let names = |dirs: &[String]| dirs.iter().map(|d| dir_name(d).to_string()).collect::<Vec<_>>();
    assert_eq!(
        names(&components),
        names(&overlays),
        "one provider component per overlay, named alike"
    );
    for component in &components {
        let k = kustomization_of(component);
        assert_eq!(
            s(&k, "/apiVersion"),
            "kustomize.config.k8s.io/v1alpha1",
            "{component}"
        );
        assert_eq!(s(&k, "/kind"), "Component", "{component}");
        assert!(
            k.get("resources").is_none(),
            "{component}: a provider component patches the base's objects, it adds none"
        );
    }
    for overlay in &overlays {
        let k = kustomization_of(overlay);
        let keys: BTreeSet<&str> = k
            .as_object()
            .expect("a mapping")
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(
            keys,
            BTreeSet::from(["apiVersion", "kind", "resources", "components"]),
            "{overlay}: the base and its component, no patch of its own"
        );
        assert_eq!(k.get("resources"), Some(&json!(["../../base"])), "{overlay}");
        assert_eq!(
            k.get("components"),
            Some(&json!([format!(
                "../../components/providers/{}",
                dir_name(overlay)
            )])),
            "{overlay}"
        );
    }
}

#[test]
fn provider_components_combine_with_no_copied_patch_and_each_variable_exactly_once() {
    let k = kustomization_of(COMBINED_EXAMPLE);
    assert!(
        k.get("patches").is_none(),
        "{COMBINED_EXAMPLE}: combines by components alone"
    );
    let listed: Vec<&str> = arr(&k, "/components").iter().filter_map(Value::as_str).collect();
    assert_eq!(
        listed,
        [
            "../../components/providers/ecr",
            "../../components/providers/dockerhub"
        ],
        "{COMBINED_EXAMPLE}"
    );
    let objects = kustomize(COMBINED_EXAMPLE);
    assert_combines(
        &objects,
        &[
            "deploy/components/providers/ecr",
            "deploy/components/providers/dockerhub",
        ],
        COMBINED_EXAMPLE,
    );

    let combinations = provider_combinations();
    let covered: BTreeSet<&String> = combinations.iter().flatten().collect();
    assert_eq!(
        covered.into_iter().cloned().collect::<Vec<_>>(),
        provider_component_dirs(),
        "every provider component is combined"
    );
    for combination in &combinations {
        let components: Vec<&str> = combination.iter().map(String::as_str).collect();
        let what = format!("base + {components:?}");
        assert_combines(&kustomize_with(&["deploy/base"], &components), &components, &what);
    }
}

#[tokio::test]
async fn the_combined_example_and_all_providers_at_once_pass_a_server_side_dry_run() {
    let cp = ControlPlane::shared().await;
    dry_run(cp, &kustomize(COMBINED_EXAMPLE), COMBINED_EXAMPLE).await;
    for combination in provider_combinations() {
        let components: Vec<&str> = combination.iter().map(String::as_str).collect();
        let what = format!("base + {components:?}");
        dry_run(cp, &kustomize_with(&["deploy/base"], &components), &what).await;
    }
}
