//! The kubelet's own checks of a `CredentialProviderConfig` (`kubelet.config.k8s.io/v1`), for configs the
//! shipped manifests generate (the chart's plugin mode): what `--image-credential-provider-config` must
//! pass for the kubelet to start at all — it exits when registering the plugins fails
//! (`k8s.io/kubernetes@v1.37.2/pkg/kubelet/kuberuntime/kuberuntime_manager.go`, "Failed to register CRI
//! auth plugins"). Fields: `k8s.io/kubelet@v0.37.2/config/v1/types.go`; rules:
//! `pkg/credentialprovider/plugin/config.go` (`decode`, `validateCredentialProviderConfig`) and
//! `plugin.go` (the strict codec, the known exchange versions).

use std::collections::BTreeSet;

use serde_json::Value;

use super::{arr, s};

/// Go's `time.ParseDuration`, in seconds (`metav1.Duration` of `defaultCacheDuration`): the sign here, the
/// rest by regcreds' own parser of Go durations, which refuses negative values.
pub fn go_duration_seconds(text: &str) -> Result<f64, String> {
    let (sign, magnitude) = match text.strip_prefix('-') {
        Some(rest) => (-1.0, rest),
        None => (1.0, text),
    };
    regcreds_settings::parse_go_duration(magnitude)
        .map(|duration| sign * duration.as_secs_f64())
        .ok_or_else(|| format!("invalid duration {text:?}"))
}

/// Object keys outside `allowed` (the kubelet decodes strictly: `serializer.EnableStrict` in
/// `plugin.go`, so an unknown field is an error, not ignored).
fn unknown_fields<'a>(v: &'a Value, allowed: &[&str]) -> Vec<&'a str> {
    v.as_object()
        .map(|m| {
            m.keys()
                .map(String::as_str)
                .filter(|k| !allowed.contains(k))
                .collect()
        })
        .unwrap_or_default()
}

/// The problems the kubelet would find reading `config` (empty = it starts): the decoding of
/// `readCredentialProviderConfig`/`decode` and the rules of `validateCredentialProviderConfig`
/// (`k8s.io/kubernetes@v1.37.2/pkg/credentialprovider/plugin/config.go`) over the fields of
/// `k8s.io/kubelet@v0.37.2/config/v1/types.go`.
pub fn kubelet_config_problems(config: &Value) -> Vec<String> {
    let mut problems = Vec::new();
    let mut problem = |p: String| problems.push(p);
    if s(config, "/kind") != "CredentialProviderConfig" {
        problem(format!("kind {:?}: wrong Kind", s(config, "/kind")));
    }
    // The decoder accepts the versions of the group kubelet.config.k8s.io it knows.
    if !["v1", "v1beta1", "v1alpha1"]
        .iter()
        .any(|v| s(config, "/apiVersion") == format!("kubelet.config.k8s.io/{v}"))
    {
        problem(format!(
            "apiVersion {:?}: unexpected Group",
            s(config, "/apiVersion")
        ));
    }
    for field in unknown_fields(config, &["apiVersion", "kind", "providers"]) {
        problem(format!("unknown field {field:?}"));
    }
    let providers = arr(config, "/providers");
    if providers.is_empty() {
        problem("providers: at least 1 item in plugins is required".into());
    }
    let mut seen = BTreeSet::new();
    for p in providers {
        for field in unknown_fields(
            p,
            &[
                "name",
                "matchImages",
                "defaultCacheDuration",
                "apiVersion",
                "args",
                "env",
                "tokenAttributes",
            ],
        ) {
            problem(format!("providers: unknown field {field:?}"));
        }
        let provider_name = s(p, "/name");
        if provider_name.is_empty() || p.get("name").is_some_and(|n| !n.is_string()) {
            problem("providers.name: a string is required".into());
        }
        if provider_name.contains('/') || provider_name.contains(' ') || [".", ".."].contains(&provider_name)
        {
            problem(format!("providers.name {provider_name:?}: invalid"));
        }
        if !seen.insert(provider_name) {
            problem(format!("providers.name {provider_name:?}: duplicate"));
        }
        match s(p, "/apiVersion") {
            "" => problem("providers.apiVersion: Required value".into()),
            "credentialprovider.kubelet.k8s.io/v1"
            | "credentialprovider.kubelet.k8s.io/v1beta1"
            | "credentialprovider.kubelet.k8s.io/v1alpha1" => {}
            other => problem(format!("providers.apiVersion {other:?}: Unsupported value")),
        }
        let images = arr(p, "/matchImages");
        if images.is_empty() {
            problem("providers.matchImages: at least 1 item in matchImages is required".into());
        }
        for image in images {
            let Some(image) = image.as_str() else {
                problem(format!("providers.matchImages: {image} is not a string"));
                continue;
            };
            // ParseSchemelessURL: url.Parse("https://" + matchImage).
            match format!("https://{image}").parse::<http::Uri>() {
                Err(e) => problem(format!(
                    "providers.matchImages {image:?}: match image is invalid: {e}"
                )),
                Ok(uri) => {
                    // types.go: "Globs can be used in the domain, but not in the port or the path."
                    let port_or_path = image.split_once(['/', ':']).map_or("", |(_, rest)| rest);
                    if port_or_path.contains('*') || uri.host().is_none_or(str::is_empty) {
                        problem(format!(
                            "providers.matchImages {image:?}: globs only in the domain"
                        ));
                    }
                }
            }
        }
        match p.get("defaultCacheDuration").map(|d| d.as_str()) {
            None => problem("providers.defaultCacheDuration: Required value".into()),
            Some(None) => problem("providers.defaultCacheDuration: not a duration string".into()),
            Some(Some(d)) => match go_duration_seconds(d) {
                Err(e) => problem(format!("providers.defaultCacheDuration: {e}")),
                Ok(seconds) if seconds < 0.0 => {
                    problem("providers.defaultCacheDuration: must be greater than or equal to 0".into())
                }
                Ok(_) => {}
            },
        }
        if p.get("args")
            .is_some_and(|a| !a.as_array().is_some_and(|a| a.iter().all(Value::is_string)))
        {
            problem("providers.args: a list of strings".into());
        }
        for e in arr(p, "/env") {
            for field in unknown_fields(e, &["name", "value"]) {
                problem(format!("providers.env: unknown field {field:?}"));
            }
            if !e.get("name").is_some_and(Value::is_string) || !e.get("value").is_some_and(Value::is_string) {
                problem(format!("providers.env {e}: name and value are strings"));
            }
        }
        if p.get("env").is_some_and(|e| !e.is_array()) {
            problem("providers.env: a list".into());
        }
        if let Some(attributes) = p.get("tokenAttributes") {
            token_attributes_problems(attributes, s(p, "/apiVersion"), &mut problem);
        }
    }
    problems
}

/// The checks of `tokenAttributes` in `validateCredentialProviderConfig` (and the strict decoding of
/// `ServiceAccountTokenAttributes`), for a provider of exchange version `api_version`. The feature gate
/// `KubeletServiceAccountTokenForCredentialProviders` is taken as on (beta, on by default since 1.34).
fn token_attributes_problems(attributes: &Value, api_version: &str, problem: &mut impl FnMut(String)) {
    const AT: &str = "providers.tokenAttributes";
    if !attributes.is_object() {
        problem(format!("{AT}: an object, not {attributes}"));
        return;
    }
    for field in unknown_fields(
        attributes,
        &[
            "serviceAccountTokenAudience",
            "cacheType",
            "requireServiceAccount",
            "requiredServiceAccountAnnotationKeys",
            "optionalServiceAccountAnnotationKeys",
        ],
    ) {
        problem(format!("{AT}: unknown field {field:?}"));
    }
    match attributes.get("serviceAccountTokenAudience") {
        Some(Value::String(audience)) if !audience.is_empty() => {}
        None | Some(Value::Null) | Some(Value::String(_)) => {
            problem(format!("{AT}.serviceAccountTokenAudience: Required value"))
        }
        Some(other) => problem(format!(
            "{AT}.serviceAccountTokenAudience: {other} is not a string"
        )),
    }
    let require_service_account = match attributes.get("requireServiceAccount") {
        Some(Value::Bool(b)) => Some(*b),
        None | Some(Value::Null) => {
            problem(format!("{AT}.requireServiceAccount: Required value"));
            None
        }
        Some(other) => {
            problem(format!("{AT}.requireServiceAccount: {other} is not a boolean"));
            None
        }
    };
    if api_version != "credentialprovider.kubelet.k8s.io/v1" {
        problem(format!(
            "{AT}: Forbidden: tokenAttributes is only supported for credentialprovider.kubelet.k8s.io/v1 API version"
        ));
    }
    let keys = |list: &str, problem: &mut dyn FnMut(String)| -> Vec<String> {
        let mut keys = Vec::new();
        match attributes.get(list) {
            None | Some(Value::Null) => {}
            Some(Value::Array(items)) => {
                let mut seen = BTreeSet::new();
                for item in items {
                    let Some(key) = item.as_str() else {
                        problem(format!("{AT}.{list}: {item} is not a string"));
                        continue;
                    };
                    if let Err(e) = qualified_name(&key.to_lowercase()) {
                        problem(format!("{AT}.{list} {key:?}: Invalid value: {e}"));
                    }
                    if !seen.insert(key) {
                        problem(format!("{AT}.{list} {key:?}: Duplicate value"));
                    }
                    keys.push(key.to_string());
                }
            }
            Some(other) => problem(format!("{AT}.{list}: {other} is not a list")),
        }
        keys
    };
    let required = keys("requiredServiceAccountAnnotationKeys", problem);
    let optional = keys("optionalServiceAccountAnnotationKeys", problem);
    if require_service_account == Some(false) && !required.is_empty() {
        problem(format!(
            "{AT}.requiredServiceAccountAnnotationKeys: Forbidden: requireServiceAccount cannot be false when \
             requiredServiceAccountAnnotationKeys is set"
        ));
    }
    let both: BTreeSet<&String> = required.iter().filter(|k| optional.contains(k)).collect();
    if !both.is_empty() {
        problem(format!(
            "{AT}: Invalid value: {both:?}: annotation keys cannot be both required and optional"
        ));
    }
    match attributes.get("cacheType") {
        None | Some(Value::Null) => problem(format!(
            "{AT}.cacheType: Required value: cacheType is required to be set when tokenAttributes is specified. \
             Supported values are: ServiceAccount, Token"
        )),
        Some(Value::String(t)) if t.is_empty() => problem(format!("{AT}.cacheType: Required value")),
        Some(Value::String(t)) if t == "Token" || t == "ServiceAccount" => {}
        Some(other) => problem(format!(
            "{AT}.cacheType: Unsupported value: {other}: supported values: \"ServiceAccount\", \"Token\""
        )),
    }
}

/// apimachinery's `validation.IsQualifiedName`: an optional DNS-1123 subdomain prefix (at most 253
/// characters) and `/`, then a name of at most 63 characters, alphanumeric at both ends with `-`, `_` and
/// `.` between. The kubelet checks annotation keys in lower case, so the prefix's case does not matter.
pub fn qualified_name(value: &str) -> Result<(), String> {
    let parts: Vec<&str> = value.split('/').collect();
    let name = match parts[..] {
        [name] => name,
        [prefix, name] => {
            if prefix.is_empty() {
                return Err("prefix part must be non-empty".into());
            }
            if prefix.len() > 253 {
                return Err("prefix part must be no more than 253 characters".into());
            }
            let label = |l: &str| {
                !l.is_empty()
                    && l.bytes()
                        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                    && !l.starts_with('-')
                    && !l.ends_with('-')
            };
            if !prefix.split('.').all(label) {
                return Err(format!(
                    "prefix part {prefix:?}: a lowercase RFC 1123 subdomain must consist of lower case \
                     alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character"
                ));
            }
            name
        }
        _ => {
            return Err(
                "a qualified name must consist of alphanumeric characters, '-', '_' or '.', and must start \
                 and end with an alphanumeric character, with an optional DNS subdomain prefix and '/'"
                    .into(),
            );
        }
    };
    if name.is_empty() {
        return Err("name part must be non-empty".into());
    }
    if name.len() > 63 {
        return Err("name part must be no more than 63 characters".into());
    }
    let inner = |b: u8| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.';
    let bytes = name.as_bytes();
    if !(bytes.iter().all(|&b| inner(b))
        && bytes[0].is_ascii_alphanumeric()
        && bytes[bytes.len() - 1].is_ascii_alphanumeric())
    {
        return Err(format!(
            "name part {name:?} must consist of alphanumeric characters, '-', '_' or '.', and must start and \
             end with an alphanumeric character"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn the_kubelet_checks_reproduced_here_refuse_what_the_kubelet_refuses() {
        let good = json!({
            "apiVersion": "kubelet.config.k8s.io/v1",
            "kind": "CredentialProviderConfig",
            "providers": [{
                "name": "regcreds",
                "matchImages": ["*.dkr.ecr.eu-west-1.amazonaws.com", "registry.io:8080/path", "docker.io"],
                "defaultCacheDuration": "1h30m",
                "apiVersion": "credentialprovider.kubelet.k8s.io/v1",
                "args": ["credential-provider"],
                "env": [{"name": "A", "value": "b"}],
            }],
        });
        assert_eq!(kubelet_config_problems(&good), Vec::<String>::new());
        let broken = |pointer: &str, value: Value| {
            let mut config = good.clone();
            *config.pointer_mut(pointer).expect("pointer") = value;
            assert!(
                !kubelet_config_problems(&config).is_empty(),
                "{pointer} = {} must be refused",
                config.pointer(pointer).expect("pointer")
            );
        };
        broken("/apiVersion", json!("kubelet.config.k8s.io/v2"));
        broken("/kind", json!("KubeletConfiguration"));
        broken("/providers", json!([]));
        broken("/providers/0/name", json!("a/b"));
        broken("/providers/0/name", json!(".."));
        broken("/providers/0/matchImages", json!([]));
        broken("/providers/0/matchImages/1", json!("registry.io:80*/path"));
        broken("/providers/0/matchImages/1", json!("bad host"));
        broken("/providers/0/defaultCacheDuration", json!("-1s"));
        broken("/providers/0/defaultCacheDuration", json!("10"));
        broken(
            "/providers/0/apiVersion",
            json!("credentialprovider.kubelet.k8s.io/v2"),
        );
        broken("/providers/0/apiVersion", json!(""));
        broken("/providers/0/env/0", json!({"name": "A", "valueFrom": {}}));
        let mut missing = good.clone();
        missing["providers"][0]
            .as_object_mut()
            .expect("object")
            .remove("defaultCacheDuration");
        assert_eq!(
            kubelet_config_problems(&missing),
            ["providers.defaultCacheDuration: Required value"]
        );
        assert_eq!(go_duration_seconds("10m"), Ok(600.0));
        assert_eq!(go_duration_seconds("1.5h"), Ok(5400.0));
        assert_eq!(go_duration_seconds("0"), Ok(0.0));
        assert_eq!(go_duration_seconds("-1m"), Ok(-60.0));
        assert!(go_duration_seconds("10").is_err() && go_duration_seconds("").is_err());
    }

    #[test]
    fn token_attributes_are_refused_where_validate_credential_provider_config_refuses_them() {
        let good = json!({
            "apiVersion": "kubelet.config.k8s.io/v1",
            "kind": "CredentialProviderConfig",
            "providers": [{
                "name": "regcreds",
                "matchImages": ["*.dkr.ecr.eu-west-1.amazonaws.com"],
                "defaultCacheDuration": "10m",
                "apiVersion": "credentialprovider.kubelet.k8s.io/v1",
                "tokenAttributes": {
                    "serviceAccountTokenAudience": "sts.amazonaws.com",
                    "cacheType": "ServiceAccount",
                    "requireServiceAccount": true,
                    "requiredServiceAccountAnnotationKeys": ["eks.amazonaws.com/role-arn"],
                    "optionalServiceAccountAnnotationKeys": ["Example.COM/Upper_Case.ok", "plain-name"],
                },
            }],
        });
        assert_eq!(kubelet_config_problems(&good), Vec::<String>::new());
        let minimal =
            json!({"serviceAccountTokenAudience": "a", "cacheType": "Token", "requireServiceAccount": false});
        let mut config = good.clone();
        config["providers"][0]["tokenAttributes"] = minimal;
        assert_eq!(
            kubelet_config_problems(&config),
            Vec::<String>::new(),
            "the three required fields suffice"
        );

        // Each change alone, and the words of the kubelet's refusal it must bring.
        let refused = |change: &dyn Fn(&mut Value), wanted: &str| {
            let mut config = good.clone();
            change(&mut config["providers"][0]);
            let problems = kubelet_config_problems(&config);
            assert!(
                problems.iter().any(|p| p.contains(wanted)),
                "{} must be refused with {wanted:?}: {problems:?}",
                config["providers"][0]
            );
        };
        let remove = |field: &'static str| {
            move |p: &mut Value| {
                p["tokenAttributes"]
                    .as_object_mut()
                    .expect("object")
                    .remove(field);
            }
        };
        let set = |field: &'static str, value: Value| {
            move |p: &mut Value| p["tokenAttributes"][field] = value.clone()
        };
        refused(
            &remove("serviceAccountTokenAudience"),
            "serviceAccountTokenAudience: Required",
        );
        refused(
            &set("serviceAccountTokenAudience", json!("")),
            "serviceAccountTokenAudience: Required",
        );
        refused(
            &remove("requireServiceAccount"),
            "requireServiceAccount: Required",
        );
        refused(
            &set("requireServiceAccount", json!("true")),
            "requireServiceAccount",
        );
        refused(&remove("cacheType"), "cacheType: Required");
        refused(&set("cacheType", json!("Pod")), "cacheType: Unsupported value");
        refused(&set("cachetype", json!("Token")), "unknown field \"cachetype\"");
        refused(
            &set("requireServiceAccount", json!(false)),
            "requireServiceAccount cannot be false when requiredServiceAccountAnnotationKeys is set",
        );
        refused(
            &set(
                "optionalServiceAccountAnnotationKeys",
                json!(["eks.amazonaws.com/role-arn"]),
            ),
            "cannot be both required and optional",
        );
        refused(
            &set(
                "optionalServiceAccountAnnotationKeys",
                json!(["a.io/x", "a.io/x"]),
            ),
            "Duplicate value",
        );
        for bad in [
            "a/b/c", "/name", "prefix/", "-a.io/x", "a..io/x", "a.io/-x", "a.io/x-", "sp ace", "",
        ] {
            refused(
                &set("optionalServiceAccountAnnotationKeys", json!([bad])),
                "Invalid value",
            );
        }
        refused(
            &set("optionalServiceAccountAnnotationKeys", json!(["n".repeat(64)])),
            "no more than 63",
        );
        refused(
            &set(
                "optionalServiceAccountAnnotationKeys",
                json!([format!("{}/n", "a.".repeat(127) + "b")]),
            ),
            "no more than 253",
        );
        refused(
            &|p: &mut Value| p["apiVersion"] = json!("credentialprovider.kubelet.k8s.io/v1beta1"),
            "only supported for credentialprovider.kubelet.k8s.io/v1",
        );
        refused(&|p: &mut Value| p["tokenAttributes"] = json!("yes"), "an object");
        assert_eq!(
            qualified_name(&format!("{}/{}", "a".repeat(253), "n".repeat(63))),
            Ok(())
        );
    }
}
