//! The decision: delete a pod (so that its controller recreates it) or leave it alone, and why.
//!
//! Pure: a pod's facts, its ServiceAccount's `imagePullSecrets`, the managed Secrets' registries and the
//! replacement guard in, a [`Verdict`] out. Every rule of the feature is here, in the order checked:
//!
//! 1. the pod is not being deleted, some container waits in `ErrImagePull`/`ImagePullBackOff`, no
//!    container has ever started (restarts, a completed init container and a previous state count), no
//!    container waits for another reason (`CreateContainerConfigError`, `InvalidImageName`, …), and the
//!    runtime did not say the image does not exist;
//! 2. for a missing reference: its ServiceAccount lists a managed Secret the pod lacks, that Secret
//!    covers the registry of a failing image, and every Secret the pod does list is on the ServiceAccount
//!    too (otherwise its template sets `imagePullSecrets` and admission would not add ours to the
//!    replacement either);
//!    for a changed credential: the pod lists that Secret and it covers the registry of a failing image;
//! 3. a workload controller that recreates it owns it (never a bare pod), and the guard has not seen
//!    that controller's replacements come back without the Secret.

use std::collections::BTreeSet;

use crate::{
    guard::ReplacementGuard,
    pod::{ContainerFacts, Owner, PodFacts},
    registries::ManagedSecrets,
};

/// Why a pod is being looked at.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Trigger {
    /// The pod, its ServiceAccount or the managed Secrets changed: heal a missing reference.
    State,
    /// The managed Secret of this name in the pod's namespace just got new content.
    CredentialChanged(String),
}

/// Why a pod is deleted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Cause {
    /// Created before its ServiceAccount listed these managed Secrets.
    MissingReference {
        /// Managed Secrets the ServiceAccount lists and the pod lacks (covering a failing image).
        secrets: BTreeSet<String>,
        /// The ServiceAccount.
        service_account: String,
    },
    /// Its Secret changed; kubelet would wait out its back-off (up to 5 minutes) before retrying.
    CredentialChanged {
        /// The Secret.
        secret: String,
    },
}

impl Cause {
    /// Metric label and log field.
    pub(crate) fn label(&self) -> &'static str {
        match self {
            Self::MissingReference { .. } => "missing_reference",
            Self::CredentialChanged { .. } => "credential_changed",
        }
    }

    /// The Secrets involved.
    pub(crate) fn secrets(&self) -> BTreeSet<String> {
        match self {
            Self::MissingReference { secrets, .. } => secrets.clone(),
            Self::CredentialChanged { secret } => [secret.clone()].into(),
        }
    }
}

/// A pod to delete.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Heal {
    /// Why.
    pub cause: Cause,
    /// Its controller.
    pub owner: Owner,
    /// The failing image a managed Secret covers.
    pub image: String,
    /// The registry key that covers it.
    pub registry: String,
}

/// Why a pod is left alone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Leave {
    /// Already being deleted.
    Deleting,
    /// No container fails to pull.
    NotPulling,
    /// A container has started at some point: the pod is not "never started".
    Started,
    /// A container waits for a reason that is not an image pull.
    OtherFailure(String),
    /// The runtime said the image does not exist: a credential would not help.
    ImageNotFound,
    /// The ServiceAccount is not (yet) known.
    NoServiceAccount,
    /// The pod lacks no managed Secret its ServiceAccount lists.
    NothingMissing,
    /// The pod does not list the changed Secret.
    NotReferenced,
    /// No managed Secret in question covers a failing image's registry.
    NotCovered,
    /// The pod lists `imagePullSecrets` its ServiceAccount does not: they come from its template, so a
    /// replacement would not get the ServiceAccount's either.
    OwnSecrets(BTreeSet<String>),
    /// No controller owns it: nothing would recreate it.
    Bare(BTreeSet<String>),
    /// Its controller is not one that recreates pods from a template.
    NotRecreated(Owner),
    /// Replacements of its controller came back without the Secret.
    Futile(Owner, BTreeSet<String>),
}

impl Leave {
    /// The Secrets a user should know this pod cannot get by itself, for cases worth telling once.
    pub(crate) fn stuck_without(&self) -> Option<&BTreeSet<String>> {
        match self {
            Self::OwnSecrets(secrets) | Self::Bare(secrets) | Self::Futile(_, secrets) => Some(secrets),
            _ => None,
        }
    }
}

/// The decision about one pod.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Delete it.
    Heal(Heal),
    /// Leave it alone.
    Leave(Leave),
}

/// What the decision looks at besides the pod.
pub(crate) struct Inputs<'a> {
    /// `imagePullSecrets` of the pod's ServiceAccount, if the ServiceAccount is known.
    pub account_refs: Option<&'a [String]>,
    /// Managed Secrets and their registries.
    pub managed: &'a ManagedSecrets,
    /// The replacement guard.
    pub guard: &'a ReplacementGuard,
}

/// Decides about `pod`.
pub(crate) fn assess(pod: &PodFacts, trigger: &Trigger, inputs: &Inputs<'_>) -> Verdict {
    match assess_inner(pod, trigger, inputs) {
        Ok(heal) => Verdict::Heal(heal),
        Err(leave) => Verdict::Leave(leave),
    }
}

fn assess_inner(pod: &PodFacts, trigger: &Trigger, inputs: &Inputs<'_>) -> Result<Heal, Leave> {
    let failing = failing_pulls(pod)?;
    let (cause, image, registry) = match trigger {
        Trigger::State => missing_reference(pod, &failing, inputs)?,
        Trigger::CredentialChanged(secret) => credential_changed(pod, secret, &failing, inputs)?,
    };
    let owner = match &pod.owner {
        None => return Err(Leave::Bare(cause.secrets())),
        Some(owner) if !owner.recreates_pods() => return Err(Leave::NotRecreated(owner.clone())),
        Some(owner) => owner.clone(),
    };
    if let Cause::MissingReference { secrets, .. } = &cause
        && inputs.guard.is_futile(&owner.uid, secrets)
    {
        return Err(Leave::Futile(owner, secrets.clone()));
    }
    Ok(Heal {
        cause,
        owner,
        image,
        registry,
    })
}

/// Rule 1: the containers whose pull fails for a reason a credential could fix.
fn failing_pulls(pod: &PodFacts) -> Result<Vec<&ContainerFacts>, Leave> {
    if pod.deleting {
        return Err(Leave::Deleting);
    }
    let failing: Vec<&ContainerFacts> = pod.pull_failures().collect();
    if failing.is_empty() {
        return Err(Leave::NotPulling);
    }
    if pod.ever_started() {
        return Err(Leave::Started);
    }
    if let Some(reason) = pod.other_failure() {
        return Err(Leave::OtherFailure(reason.to_string()));
    }
    let fixable: Vec<&ContainerFacts> = failing.into_iter().filter(|c| !image_not_found(c)).collect();
    if fixable.is_empty() {
        return Err(Leave::ImageNotFound);
    }
    Ok(fixable)
}

/// containerd: `…: not found`; registries: `manifest unknown`. A credential cannot fix either (a
/// registry that needs credentials answers 401 before telling whether an image exists).
fn image_not_found(container: &ContainerFacts) -> bool {
    container.waiting.as_ref().is_some_and(|waiting| {
        let message = waiting.message.to_ascii_lowercase();
        message.contains(": not found") || message.contains("manifest unknown")
    })
}

type Found = (Cause, String, String);

/// Rule 2, missing reference.
fn missing_reference(
    pod: &PodFacts,
    failing: &[&ContainerFacts],
    inputs: &Inputs<'_>,
) -> Result<Found, Leave> {
    let refs = inputs.account_refs.ok_or(Leave::NoServiceAccount)?;
    let missing: Vec<&String> = refs
        .iter()
        .filter(|name| inputs.managed.contains(name) && !pod.pull_secrets.contains(name))
        .collect();
    if missing.is_empty() {
        return Err(Leave::NothingMissing);
    }
    let mut secrets = BTreeSet::new();
    let mut first: Option<(String, String)> = None;
    for secret in missing {
        for container in failing {
            if let Some(key) = inputs.managed.covering_key(secret, &container.image) {
                secrets.insert(secret.clone());
                first.get_or_insert_with(|| (container.image.clone(), key.as_str().to_string()));
            }
        }
    }
    let Some((image, registry)) = first else {
        return Err(Leave::NotCovered);
    };
    let own: BTreeSet<String> = pod
        .pull_secrets
        .iter()
        .filter(|name| !refs.contains(name))
        .cloned()
        .collect();
    if !own.is_empty() {
        return Err(Leave::OwnSecrets(secrets));
    }
    let cause = Cause::MissingReference {
        secrets,
        service_account: pod.service_account.clone(),
    };
    Ok((cause, image, registry))
}

/// Rule 2, changed credential.
fn credential_changed(
    pod: &PodFacts,
    secret: &str,
    failing: &[&ContainerFacts],
    inputs: &Inputs<'_>,
) -> Result<Found, Leave> {
    if !pod.pull_secrets.iter().any(|name| name == secret) {
        return Err(Leave::NotReferenced);
    }
    let (image, registry) = failing
        .iter()
        .find_map(|c| {
            let key = inputs.managed.covering_key(secret, &c.image)?;
            Some((c.image.clone(), key.as_str().to_string()))
        })
        .ok_or(Leave::NotCovered)?;
    let cause = Cause::CredentialChanged {
        secret: secret.to_string(),
    };
    Ok((cause, image, registry))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::pod::fixtures::{pod, stuck};

    const IMAGE: &str = "10.254.77.1:5443/demo/hello:v1";

    fn managed() -> ManagedSecrets {
        ManagedSecrets::from_keys(&[("dpr-secret", &["10.254.77.1:5443"]), ("hub", &["docker.io"])])
    }

    fn decide(value: serde_json::Value, refs: Option<&[&str]>, trigger: Trigger) -> Verdict {
        decide_with(value, refs, trigger, &ReplacementGuard::default())
    }

    fn decide_with(
        value: serde_json::Value,
        refs: Option<&[&str]>,
        trigger: Trigger,
        guard: &ReplacementGuard,
    ) -> Verdict {
        let refs: Option<Vec<String>> = refs.map(|r| r.iter().map(|s| s.to_string()).collect());
        let managed = managed();
        let inputs = Inputs {
            account_refs: refs.as_deref(),
            managed: &managed,
            guard,
        };
        assess(&PodFacts::from_pod(&pod(value)), &trigger, &inputs)
    }

    fn secrets(names: &[&str]) -> BTreeSet<String> {
        names.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn a_controlled_pod_created_before_the_reference_is_healed() {
        let verdict = decide(stuck("web-1", IMAGE), Some(&["dpr-secret"]), Trigger::State);
        let Verdict::Heal(heal) = verdict else {
            panic!("expected a heal, got {verdict:?}");
        };
        assert_eq!(
            heal.cause,
            Cause::MissingReference {
                secrets: secrets(&["dpr-secret"]),
                service_account: "default".into()
            }
        );
        assert_eq!(heal.owner.to_string(), "ReplicaSet/web-5d8");
        assert_eq!(heal.image, IMAGE);
        assert_eq!(heal.registry, "10.254.77.1:5443");
    }

    #[test]
    fn every_recreating_controller_kind_qualifies() {
        for (api_version, kind) in [
            ("apps/v1", "ReplicaSet"),
            ("apps/v1", "StatefulSet"),
            ("apps/v1", "DaemonSet"),
            ("batch/v1", "Job"),
            ("v1", "ReplicationController"),
        ] {
            let mut value = stuck("web-1", IMAGE);
            value["metadata"]["ownerReferences"][0]["apiVersion"] = json!(api_version);
            value["metadata"]["ownerReferences"][0]["kind"] = json!(kind);
            let verdict = decide(value, Some(&["dpr-secret"]), Trigger::State);
            assert!(matches!(verdict, Verdict::Heal(_)), "{kind}: {verdict:?}");
        }
    }

    #[test]
    fn a_bare_pod_or_another_owner_is_left_alone() {
        let mut bare = stuck("web-1", IMAGE);
        bare["metadata"]["ownerReferences"] = json!(null);
        assert_eq!(
            decide(bare, Some(&["dpr-secret"]), Trigger::State),
            Verdict::Leave(Leave::Bare(secrets(&["dpr-secret"])))
        );
        let mut custom = stuck("web-1", IMAGE);
        custom["metadata"]["ownerReferences"][0]["apiVersion"] = json!("argoproj.io/v1alpha1");
        custom["metadata"]["ownerReferences"][0]["kind"] = json!("Workflow");
        assert!(matches!(
            decide(custom, Some(&["dpr-secret"]), Trigger::State),
            Verdict::Leave(Leave::NotRecreated(_))
        ));
        let mut not_controller = stuck("web-1", IMAGE);
        not_controller["metadata"]["ownerReferences"][0]["controller"] = json!(false);
        assert!(matches!(
            decide(not_controller, Some(&["dpr-secret"]), Trigger::State),
            Verdict::Leave(Leave::Bare(_))
        ));
    }

    #[test]
    fn a_pod_that_ever_started_a_container_is_left_alone() {
        let mut restarted = stuck("web-1", IMAGE);
        restarted["status"]["containerStatuses"][0]["restartCount"] = json!(3);
        assert_eq!(
            decide(restarted, Some(&["dpr-secret"]), Trigger::State),
            Verdict::Leave(Leave::Started)
        );
    }

    #[test]
    fn a_failure_that_is_not_an_image_pull_is_left_alone() {
        let mut crash = stuck("web-1", IMAGE);
        crash["status"]["containerStatuses"][0]["state"] =
            json!({"waiting": {"reason": "CrashLoopBackOff", "message": "back-off 10s"}});
        crash["status"]["containerStatuses"][0]["restartCount"] = json!(0);
        assert_eq!(
            decide(crash, Some(&["dpr-secret"]), Trigger::State),
            Verdict::Leave(Leave::NotPulling)
        );
        let mut mixed = stuck("web-1", IMAGE);
        mixed["spec"]["containers"]
            .as_array_mut()
            .expect("containers")
            .push(json!({"name": "side", "image": IMAGE}));
        mixed["status"]["containerStatuses"]
            .as_array_mut()
            .expect("statuses")
            .push(json!({
                "name": "side", "image": IMAGE, "imageID": "", "ready": false, "restartCount": 0,
                "state": {"waiting": {"reason": "CreateContainerConfigError", "message": "secret \"x\" not found"}}
            }));
        assert_eq!(
            decide(mixed, Some(&["dpr-secret"]), Trigger::State),
            Verdict::Leave(Leave::OtherFailure("CreateContainerConfigError".into()))
        );
    }

    #[test]
    fn an_image_that_does_not_exist_is_left_alone() {
        let mut missing = stuck("web-1", IMAGE);
        missing["status"]["containerStatuses"][0]["state"]["waiting"]["message"] = json!(format!(
            "failed to pull and unpack image \"{IMAGE}\": failed to resolve reference \"{IMAGE}\": {IMAGE}: not found"
        ));
        assert_eq!(
            decide(missing, Some(&["dpr-secret"]), Trigger::State),
            Verdict::Leave(Leave::ImageNotFound)
        );
    }

    #[test]
    fn nothing_missing_or_another_registry_is_left_alone() {
        assert_eq!(
            decide(stuck("web-1", IMAGE), Some(&[]), Trigger::State),
            Verdict::Leave(Leave::NothingMissing)
        );
        assert_eq!(
            decide(stuck("web-1", IMAGE), Some(&["not-managed"]), Trigger::State),
            Verdict::Leave(Leave::NothingMissing)
        );
        assert_eq!(
            decide(stuck("web-1", IMAGE), None, Trigger::State),
            Verdict::Leave(Leave::NoServiceAccount)
        );
        assert_eq!(
            decide(
                stuck("web-1", "ghcr.io/team/app:1"),
                Some(&["dpr-secret"]),
                Trigger::State
            ),
            Verdict::Leave(Leave::NotCovered)
        );
        let mut has_it = stuck("web-1", IMAGE);
        has_it["spec"]["imagePullSecrets"] = json!([{"name": "dpr-secret"}]);
        assert_eq!(
            decide(has_it, Some(&["dpr-secret"]), Trigger::State),
            Verdict::Leave(Leave::NothingMissing)
        );
    }

    #[test]
    fn secrets_copied_from_the_service_account_are_fine_but_a_template_s_own_are_not() {
        let mut copied = stuck("web-1", IMAGE);
        copied["spec"]["imagePullSecrets"] = json!([{"name": "team-secret"}]);
        assert!(matches!(
            decide(
                copied.clone(),
                Some(&["team-secret", "dpr-secret"]),
                Trigger::State
            ),
            Verdict::Heal(_)
        ));
        assert_eq!(
            decide(copied, Some(&["dpr-secret"]), Trigger::State),
            Verdict::Leave(Leave::OwnSecrets(secrets(&["dpr-secret"])))
        );
    }

    #[test]
    fn docker_hub_images_are_matched_through_the_hub_key() {
        assert!(matches!(
            decide(stuck("web-1", "team/private:1"), Some(&["hub"]), Trigger::State),
            Verdict::Heal(_)
        ));
    }

    #[test]
    fn a_controller_whose_replacements_lack_the_secret_is_not_healed_again() {
        let mut guard = ReplacementGuard::default();
        let deleted = PodFacts::from_pod(&pod(stuck("web-1", IMAGE)));
        guard.deleted(&deleted, &secrets(&["dpr-secret"]));
        guard.observe(&deleted, true, |_| Default::default());
        let replacement = PodFacts::from_pod(&pod(stuck("web-2", IMAGE)));
        assert!(
            guard
                .observe(&replacement, false, |_| Default::default())
                .is_some()
        );
        assert!(matches!(
            decide_with(
                stuck("web-2", IMAGE),
                Some(&["dpr-secret"]),
                Trigger::State,
                &guard
            ),
            Verdict::Leave(Leave::Futile(_, _))
        ));
    }

    #[test]
    fn a_changed_credential_retries_pods_that_reference_it_and_fail_on_its_registry() {
        let mut referencing = stuck("web-1", IMAGE);
        referencing["spec"]["imagePullSecrets"] = json!([{"name": "dpr-secret"}]);
        let changed = Trigger::CredentialChanged("dpr-secret".into());
        let verdict = decide(referencing.clone(), None, changed.clone());
        let Verdict::Heal(heal) = verdict else {
            panic!("expected a heal, got {verdict:?}");
        };
        assert_eq!(
            heal.cause,
            Cause::CredentialChanged {
                secret: "dpr-secret".into()
            }
        );
        assert_eq!(
            decide(stuck("web-1", IMAGE), None, changed.clone()),
            Verdict::Leave(Leave::NotReferenced)
        );
        let mut elsewhere = stuck("web-1", "ghcr.io/team/app:1");
        elsewhere["spec"]["imagePullSecrets"] = json!([{"name": "dpr-secret"}]);
        assert_eq!(
            decide(elsewhere, None, changed.clone()),
            Verdict::Leave(Leave::NotCovered)
        );
        referencing["metadata"]["ownerReferences"] = json!([]);
        assert!(matches!(
            decide(referencing, None, changed),
            Verdict::Leave(Leave::Bare(_))
        ));
    }
}
