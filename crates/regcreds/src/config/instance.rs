//! Which regcreds this is: its namespace, its pod, and its instance — the owner of the Secrets and
//! ServiceAccount references it writes, so that several instances can run side by side.
//!
//! ```text
//!  REGCREDS_INSTANCE ──────────────────────────────────────────────▶ id = the name as given
//!  pod name (REGCREDS_POD_NAME, else HOSTNAME in a cluster)
//!    "hub-7d9f8b6c4-x2k5p" ──workload──▶ "hub" ──+ namespace──────▶ id = "hub.regcreds"
//!  neither ─────────────────────────────▶ "regcreds" ──+ namespace ─▶ id = "regcreds.regcreds"
//! ```
//!
//! The workload (the Deployment, StatefulSet, Job, ... the pod belongs to) is also the default Lease
//! name: two Deployments in one namespace elect a leader each, and every replica of one Deployment
//! shares it. The namespace in the id keeps same-named installs in two namespaces apart.

use clap::Args;
use regcreds_propagator::InstanceId;

use regcreds_settings::{ConfigProblems, Source, is_dns_subdomain};

const INSTANCE: Source = Source::new("REGCREDS_INSTANCE", "instance");
/// Where the Kubernetes client finds its own namespace when none is configured.
const SERVICE_ACCOUNT_NAMESPACE_FILE: &str = "/var/run/secrets/kubernetes.io/serviceaccount/namespace";
/// Characters Kubernetes uses for generated name suffixes (pod-template-hash, random suffixes).
const GENERATED_ALPHABET: &str = "bcdfghjklmnpqrstvwxz2456789";

/// Where regcreds runs and which instance it is.
#[derive(Args, Debug, Clone, Default)]
#[command(next_help_heading = "Instance")]
pub struct InstanceArgs {
    /// regcreds' own namespace (always excluded: source Secrets live there) [default: the pod's namespace].
    #[arg(long = "namespace", env = "REGCREDS_NAMESPACE")]
    pub namespace: Option<String>,
    /// This pod's name, for Events and leader election [default: $HOSTNAME inside a cluster].
    #[arg(long = "pod-name", env = "REGCREDS_POD_NAME")]
    pub pod_name: Option<String>,
    /// Which regcreds this is: the Secrets and ServiceAccount references it writes carry this id, and
    /// only those are withdrawn or cleaned up by it [default: <workload>.<namespace>, the workload
    /// (Deployment) name taken from the pod name, or "regcreds" outside a cluster].
    #[arg(long = "instance", env = "REGCREDS_INSTANCE")]
    pub instance: Option<String>,
}

/// The resolved identity of this instance.
#[derive(Debug, Clone)]
pub struct Instance {
    /// The owner id written into labels and annotations.
    pub id: InstanceId,
    /// The default Lease name: the instance name if given, else the workload's.
    pub lease_name: String,
    /// How the id was chosen, for the start-up log line.
    pub origin: String,
}

impl InstanceArgs {
    /// regcreds' own namespace: configured, or the one the pod runs in.
    pub fn own_namespace(&self) -> Option<String> {
        non_blank(self.namespace.as_deref()).or_else(|| {
            regcreds_core::read_bounded(std::path::Path::new(SERVICE_ACCOUNT_NAMESPACE_FILE))
                .ok()
                .and_then(|bytes| String::from_utf8(bytes).ok())
                .and_then(|s| non_blank(Some(&s)))
        })
    }

    /// This pod's name: configured, else `HOSTNAME` when running in a cluster (kubelet sets it to the
    /// pod name in every container).
    pub fn pod_name(&self) -> Option<String> {
        non_blank(self.pod_name.as_deref()).or_else(|| {
            std::env::var_os("KUBERNETES_SERVICE_HOST")?;
            non_blank(std::env::var("HOSTNAME").ok().as_deref())
        })
    }

    /// The instance id and default Lease name, or a problem with `REGCREDS_INSTANCE`.
    pub fn resolve(&self, problems: &mut ConfigProblems) -> Option<Instance> {
        self.resolve_as(None, problems)
    }

    /// Like [`Self::resolve`], for the pods of `workload` rather than this pod: what a controller running
    /// as that Deployment resolves (`regcreds cleanup --deployment`, run from a Job's pod).
    pub fn resolve_as(&self, workload: Option<&str>, problems: &mut ConfigProblems) -> Option<Instance> {
        if let Some(name) = non_blank(self.instance.as_deref()) {
            // NB: the name is a Lease name (a DNS subdomain) and a label value (at most 63 characters).
            if name.len() > 63 || !is_dns_subdomain(&name) {
                problems.add(
                    INSTANCE,
                    format!(
                        "{name:?} is not a valid instance name (lowercase letters, digits, '-' and '.', \
                         at most 63 characters, beginning and ending with a letter or digit)"
                    ),
                );
                return None;
            }
            let id = InstanceId::new(name.clone()).ok()?;
            return Some(Instance {
                id,
                lease_name: name,
                origin: format!("{} is set", INSTANCE.env),
            });
        }
        let pod = self.pod_name();
        let (workload, origin) = match (workload, pod.as_deref()) {
            (Some(workload), _) => (
                workload.to_string(),
                format!("Deployment {workload:?}; set {} to choose", INSTANCE.env),
            ),
            (None, Some(pod)) => {
                let workload = workload_of(pod);
                let origin = format!(
                    "workload {workload:?} of pod {pod:?}; set {} to choose",
                    INSTANCE.env
                );
                (workload, origin)
            }
            (None, None) => (
                InstanceId::DEFAULT.to_string(),
                format!("no pod name; set {} to choose", INSTANCE.env),
            ),
        };
        let qualified = match self.own_namespace() {
            Some(namespace) => format!("{workload}.{namespace}"),
            None => workload.clone(),
        };
        match InstanceId::new(fit_label(&qualified)) {
            Ok(id) => Some(Instance {
                id,
                lease_name: workload,
                origin,
            }),
            Err(error) => {
                problems.add(INSTANCE, format!("cannot be derived ({error}); set it"));
                None
            }
        }
    }
}

/// The workload a pod belongs to, from the pod's name: `<deployment>-<pod-template-hash>-<suffix>`,
/// `<cronjob>-<scheduled minute>-<suffix>`, `<job|daemonset>-<suffix>`, `<statefulset>-<ordinal>`.
/// Every replica of one workload gets the same answer; a name without such suffixes is kept whole.
pub fn workload_of(pod: &str) -> String {
    let generated = |part: &str, len: std::ops::RangeInclusive<usize>| {
        len.contains(&part.len()) && part.chars().all(|c| GENERATED_ALPHABET.contains(c))
    };
    let mut parts: Vec<&str> = pod.split('-').collect();
    if parts.len() >= 2 && generated(parts[parts.len() - 1], 5..=5) {
        parts.pop();
        let last = parts[parts.len() - 1];
        let hash_or_minute =
            generated(last, 6..=10) || (last.len() >= 8 && last.chars().all(|c| c.is_ascii_digit()));
        if parts.len() >= 2 && hash_or_minute {
            parts.pop();
        }
    } else if parts.len() >= 2 && parts[parts.len() - 1].chars().all(|c| c.is_ascii_digit()) {
        parts.pop();
    }
    parts.join("-")
}

/// `value` if it fits a label value (63 characters), else its first 54 characters and a hash of all.
fn fit_label(value: &str) -> String {
    if value.len() <= 63 {
        return value.to_string();
    }
    // FNV-1a: stable across builds and platforms (std's hasher is not guaranteed to be).
    let hash = value.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    });
    let head: String = value.chars().take(54).collect();
    let head = head.trim_end_matches(['-', '.']);
    format!("{head}-{:08x}", hash as u32)
}

fn non_blank(value: Option<&str>) -> Option<String> {
    value.map(str::trim).filter(|v| !v.is_empty()).map(String::from)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_replica_of_a_workload_maps_to_the_workload() {
        for (pod, workload) in [
            ("regcreds-7d9f8b6c4-x2k5p", "regcreds"),
            ("regcreds-7d9f8b6c4d-q8w4z", "regcreds"),
            ("team-a-regcreds-5c7b9d6f8-bdfgh", "team-a-regcreds"),
            ("nightly-28912345-x2k5p", "nightly"),
            ("regcreds-ds-zx9k2", "regcreds-ds"),
            ("regcreds-0", "regcreds"),
            ("regcreds", "regcreds"),
            ("regcreds-once", "regcreds-once"),
            (
                "imagepullsecret-patcher-6b9c7d5f4-w2x8z",
                "imagepullsecret-patcher",
            ),
        ] {
            assert_eq!(workload_of(pod), workload, "{pod}");
        }
    }

    #[test]
    fn the_default_id_is_the_workload_in_its_namespace_and_the_lease_is_the_workload() {
        let args = InstanceArgs {
            namespace: Some("regcreds-system".into()),
            pod_name: Some("hub-7d9f8b6c4-x2k5p".into()),
            instance: None,
        };
        let instance = args.resolve(&mut ConfigProblems::default()).expect("instance");
        assert_eq!(instance.id.as_str(), "hub.regcreds-system");
        assert_eq!(instance.lease_name, "hub");
    }

    #[test]
    fn a_cleanup_job_resolves_the_instance_and_lease_of_the_deployment_it_names() {
        let job = InstanceArgs {
            namespace: Some("regcreds-system".into()),
            pod_name: Some("hub-cleanup-x2k5p".into()),
            instance: None,
        };
        let instance = job
            .resolve_as(Some("hub"), &mut ConfigProblems::default())
            .expect("instance");
        assert_eq!(
            (instance.id.as_str(), instance.lease_name.as_str()),
            ("hub.regcreds-system", "hub")
        );
        // An explicit instance still wins, as it does for the Deployment's own pods.
        let named = InstanceArgs {
            instance: Some("ecr".into()),
            ..job
        };
        let instance = named
            .resolve_as(Some("hub"), &mut ConfigProblems::default())
            .expect("instance");
        assert_eq!(instance.id.as_str(), "ecr");
    }

    #[test]
    fn an_explicit_instance_is_used_verbatim_and_must_be_a_dns_name() {
        let mut args = InstanceArgs {
            instance: Some("ecr".into()),
            ..Default::default()
        };
        let instance = args.resolve(&mut ConfigProblems::default()).expect("instance");
        assert_eq!(
            (instance.id.as_str(), instance.lease_name.as_str()),
            ("ecr", "ecr")
        );
        args.instance = Some("Bad_Name".into());
        let mut problems = ConfigProblems::default();
        assert!(args.resolve(&mut problems).is_none());
        assert!(problems.to_string().contains("REGCREDS_INSTANCE"), "{problems}");
    }

    #[test]
    fn long_ids_are_shortened_stably() {
        let long = format!("{}.{}", "w".repeat(40), "n".repeat(40));
        let fitted = fit_label(&long);
        assert!(
            fitted.len() <= 63 && InstanceId::new(fitted.clone()).is_ok(),
            "{fitted}"
        );
        assert_eq!(fitted, fit_label(&long));
        assert_ne!(fitted, fit_label(&format!("{long}x")));
    }
}
