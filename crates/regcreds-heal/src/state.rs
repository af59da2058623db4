//! The healer's memory and its synchronous half: watch events in, pods to look at out; a pod and the
//! time in, a [`Step`] out. No I/O, so the whole event flow is tested by feeding events.
//!
//! ```text
//!  pod event ─────────────▶ that pod                        ┐
//!  ServiceAccount change ─▶ its namespace's pods using it   │ (PodKey, Trigger::State)
//!  minted Secrets change ─▶ every pending pod               │
//!  first list / relist ───▶ every pending pod               ┘
//!  managed Secret's data changed in a namespace ─▶ its pods ── (PodKey, Trigger::CredentialChanged)
//!  rate-limited earlier and due now ─▶ the same (PodKey, Trigger)
//! ```

use std::{
    collections::{BTreeMap, BTreeSet, HashSet},
    time::Instant,
};

use kube::runtime::watcher::Event;

use crate::{
    HealSettings,
    guard::{Futile, ReplacementGuard},
    mirror::{Change, Mirror},
    pod::{PodFacts, PodKey},
    rate_limit::RateLimiter,
    registries::ManagedSecrets,
    verdict::{Heal, Inputs, Leave, Trigger, Verdict, assess},
};

/// `(namespace, name)` of a ServiceAccount or Secret.
pub(crate) type ObjectKey = (String, String);

/// One input of the healer, already reduced to what it keeps.
#[derive(Debug)]
pub(crate) enum Input {
    /// A pending pod (boxed: much larger than the other inputs).
    Pod(Box<Event<(PodKey, PodFacts)>>),
    /// A ServiceAccount's `imagePullSecrets` names.
    Account(Event<(ObjectKey, Vec<String>)>),
    /// A managed Secret's content digest.
    Secret(Event<(ObjectKey, u64)>),
    /// The minted Secrets changed.
    Managed(ManagedSecrets),
}

/// What absorbing an input produced.
#[derive(Debug, Default)]
pub(crate) struct Absorbed {
    /// Pods to look at.
    pub work: BTreeSet<(PodKey, Trigger)>,
    /// Controllers found to recreate pods without the Secret (each reported once).
    pub futile: Vec<(PodFacts, Futile)>,
}

/// What to do about one pod.
#[derive(Debug)]
pub(crate) enum Step {
    /// Delete it (a rate-limit token has been taken).
    Delete(Box<PodFacts>, Heal),
    /// Rate-limited: looked at again when a token is due.
    Deferred(PodKey, std::time::Duration),
    /// Left alone for a reason worth telling the user (first time for this pod).
    Tell(Box<PodFacts>, Leave),
    /// Left alone.
    Leave(PodKey, Leave),
    /// Not pending any more.
    Gone,
}

/// The healer's state.
pub(crate) struct State {
    pods: Mirror<PodKey, PodFacts>,
    accounts: Mirror<ObjectKey, Vec<String>>,
    secrets: Mirror<ObjectKey, u64>,
    managed: ManagedSecrets,
    guard: ReplacementGuard,
    limiter: RateLimiter,
    deferred: BTreeMap<(PodKey, Trigger), Instant>,
    /// Decisions to take again on the pod's next version (its delete met a newer one: 409).
    on_next_version: BTreeMap<PodKey, Trigger>,
    told: HashSet<String>,
    after_credential_change: bool,
}

impl State {
    /// Empty mirrors, full buckets.
    pub(crate) fn new(settings: &HealSettings, now: Instant) -> Self {
        Self {
            pods: Mirror::default(),
            accounts: Mirror::default(),
            secrets: Mirror::default(),
            managed: ManagedSecrets::default(),
            guard: ReplacementGuard::default(),
            limiter: RateLimiter::new(settings.cluster_rate, settings.namespace_rate, now),
            deferred: BTreeMap::new(),
            on_next_version: BTreeMap::new(),
            told: HashSet::new(),
            after_credential_change: settings.after_credential_change,
        }
    }

    /// Takes in one input and says which pods to look at.
    pub(crate) fn absorb(&mut self, input: Input) -> Absorbed {
        let mut out = Absorbed::default();
        match input {
            Input::Pod(event) => self.absorb_pod(*event, &mut out),
            Input::Account(event) => match self.accounts.apply(event) {
                Change::Applied { key, old } => {
                    if old.as_ref() != self.accounts.get(&key) {
                        self.pods_using(&key, &mut out);
                    }
                }
                Change::Relisted { .. } => self.all_pods(&mut out),
                Change::Deleted { .. } | Change::Pending => {}
            },
            Input::Secret(event) => self.absorb_secret(event, &mut out),
            Input::Managed(managed) => {
                self.managed = managed;
                self.all_pods(&mut out);
            }
        }
        out
    }

    fn absorb_pod(&mut self, event: Event<(PodKey, PodFacts)>, out: &mut Absorbed) {
        if let Event::Apply((_, pod)) | Event::Delete((_, pod)) = &event {
            let gone = matches!(event, Event::Delete(_));
            let pods = &self.pods;
            let pods_of = |owner: &str| -> HashSet<String> {
                pods.iter()
                    .filter(|(_, p)| p.owner.as_ref().is_some_and(|o| o.uid == owner))
                    .map(|(_, p)| p.uid.clone())
                    .collect()
            };
            if let Some(futile) = self.guard.observe(pod, gone, pods_of) {
                out.futile.push((pod.clone(), futile));
            }
        }
        match self.pods.apply(event) {
            Change::Applied { key, .. } => {
                if let Some(trigger) = self.on_next_version.remove(&key) {
                    out.work.insert((key.clone(), trigger));
                }
                out.work.insert((key, Trigger::State));
            }
            Change::Deleted { key, old } => {
                self.on_next_version.remove(&key);
                if let Some(old) = old {
                    self.told.remove(&old.uid);
                }
                self.deferred.retain(|(k, _), _| *k != key);
            }
            Change::Relisted { first, .. } => {
                if !first {
                    self.guard.relisted();
                }
                let uids: HashSet<&String> = self.pods.iter().map(|(_, p)| &p.uid).collect();
                self.told.retain(|uid| uids.contains(uid));
                let pods = &self.pods;
                self.guard.retain_owners(|owner| {
                    pods.iter()
                        .any(|(_, p)| p.owner.as_ref().is_some_and(|o| o.uid == owner))
                });
                self.all_pods(out);
            }
            Change::Pending => {}
        }
    }

    fn absorb_secret(&mut self, event: Event<(ObjectKey, u64)>, out: &mut Absorbed) {
        let was_synced = self.secrets.is_synced();
        let changed: Vec<ObjectKey> = match self.secrets.apply(event) {
            // NB: a Secret created after the first list counts: pods listing it failed without it.
            Change::Applied { key, old } if was_synced && old.as_ref() != self.secrets.get(&key) => vec![key],
            Change::Relisted {
                previous,
                first: false,
            } => self
                .secrets
                .iter()
                .filter(|(key, digest)| previous.get(*key) != Some(*digest))
                .map(|(key, _)| key.clone())
                .collect(),
            _ => Vec::new(),
        };
        if !self.after_credential_change {
            return;
        }
        for (namespace, secret) in changed {
            let start = PodKey {
                namespace: namespace.clone(),
                name: String::new(),
            };
            for (key, pod) in self.pods.range_from(&start) {
                if key.namespace != namespace {
                    break;
                }
                if pod.pull_secrets.contains(&secret) {
                    out.work
                        .insert((key.clone(), Trigger::CredentialChanged(secret.clone())));
                }
            }
        }
    }

    fn pods_using(&self, (namespace, account): &ObjectKey, out: &mut Absorbed) {
        let start = PodKey {
            namespace: namespace.clone(),
            name: String::new(),
        };
        for (key, pod) in self.pods.range_from(&start) {
            if key.namespace != *namespace {
                break;
            }
            if pod.service_account == *account {
                out.work.insert((key.clone(), Trigger::State));
            }
        }
    }

    fn all_pods(&self, out: &mut Absorbed) {
        out.work
            .extend(self.pods.iter().map(|(key, _)| (key.clone(), Trigger::State)));
    }

    /// Decides about one pod now; takes a rate-limit token for a deletion.
    pub(crate) fn decide(&mut self, key: &PodKey, trigger: Trigger, now: Instant) -> Step {
        let Some(pod) = self.pods.get(key) else {
            return Step::Gone;
        };
        let account = (key.namespace.clone(), pod.service_account.clone());
        let inputs = Inputs {
            account_refs: self.accounts.get(&account).map(Vec::as_slice),
            managed: &self.managed,
            guard: &self.guard,
        };
        let verdict = assess(pod, &trigger, &inputs);
        let entry = (key.clone(), trigger);
        match verdict {
            Verdict::Heal(heal) => match self.limiter.try_acquire(&key.namespace, now) {
                Ok(()) => {
                    self.deferred.remove(&entry);
                    Step::Delete(Box::new(pod.clone()), heal)
                }
                Err(wait) => {
                    self.deferred.insert(entry, now + wait);
                    Step::Deferred(key.clone(), wait)
                }
            },
            Verdict::Leave(leave) => {
                self.deferred.remove(&entry);
                let worth_telling = matches!(leave, Leave::Bare(_) | Leave::OwnSecrets(_));
                if worth_telling && self.told.insert(pod.uid.clone()) {
                    Step::Tell(Box::new(pod.clone()), leave)
                } else {
                    Step::Leave(key.clone(), leave)
                }
            }
        }
    }

    /// Records a successful deletion (for the replacement guard).
    pub(crate) fn deleted(&mut self, pod: &PodFacts, heal: &Heal) {
        if let crate::verdict::Cause::MissingReference { secrets, .. } = &heal.cause {
            self.guard.deleted(pod, secrets);
        }
    }

    /// The pod changed between the decision and the delete (409): decide again, for the same reason,
    /// when its newer version arrives. (A one-off trigger such as a credential change would otherwise
    /// be lost; a missing reference is looked at on every version anyway.)
    pub(crate) fn changed_meanwhile(&mut self, key: &PodKey, trigger: Trigger) {
        if let Trigger::CredentialChanged(_) = trigger {
            self.on_next_version.insert(key.clone(), trigger);
        }
    }

    /// When the earliest rate-limited pod is due.
    pub(crate) fn next_wake(&self) -> Option<Instant> {
        self.deferred.values().min().copied()
    }

    /// Rate-limited pods that are due now.
    pub(crate) fn due(&mut self, now: Instant) -> BTreeSet<(PodKey, Trigger)> {
        let due: BTreeSet<(PodKey, Trigger)> = self
            .deferred
            .iter()
            .filter(|(_, at)| **at <= now)
            .map(|(entry, _)| entry.clone())
            .collect();
        self.deferred.retain(|entry, _| !due.contains(entry));
        self.limiter.forget_idle(now);
        due
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use serde_json::json;

    use super::*;
    use crate::{
        pod::fixtures::{pod, stuck},
        rate_limit::RateLimit,
        verdict::Cause,
    };

    const IMAGE: &str = "10.254.77.1:5443/demo/hello:v1";

    fn settings(namespace_burst: u32) -> HealSettings {
        HealSettings {
            cluster_rate: RateLimit {
                per_second: 100.0,
                burst: 100,
            },
            namespace_rate: RateLimit {
                per_second: 1.0,
                burst: namespace_burst,
            },
            after_credential_change: true,
        }
    }

    fn facts(value: serde_json::Value) -> (PodKey, PodFacts) {
        let facts = PodFacts::from_pod(&pod(value));
        (facts.key.clone(), facts)
    }

    fn account(refs: &[&str]) -> (ObjectKey, Vec<String>) {
        (
            ("apps".into(), "default".into()),
            refs.iter().map(|s| s.to_string()).collect(),
        )
    }

    /// A state that has listed `pods`, the `default` ServiceAccount without references, one managed
    /// Secret, and its digest 1.
    fn listed(pods: Vec<serde_json::Value>, namespace_burst: u32) -> State {
        let mut state = State::new(&settings(namespace_burst), Instant::now());
        state.absorb(Input::Managed(ManagedSecrets::from_keys(&[(
            "dpr-secret",
            &["10.254.77.1:5443"],
        )])));
        for event in [Event::Init, Event::InitApply(account(&[])), Event::InitDone] {
            state.absorb(Input::Account(event));
        }
        let secret = (("apps".to_string(), "dpr-secret".to_string()), 1);
        for event in [Event::Init, Event::InitApply(secret), Event::InitDone] {
            state.absorb(Input::Secret(event));
        }
        state.absorb(Input::Pod(Box::new(Event::Init)));
        for value in pods {
            state.absorb(Input::Pod(Box::new(Event::InitApply(facts(value)))));
        }
        state.absorb(Input::Pod(Box::new(Event::InitDone)));
        state
    }

    fn deletions(state: &mut State, work: BTreeSet<(PodKey, Trigger)>, now: Instant) -> Vec<String> {
        work.into_iter()
            .filter_map(|(key, trigger)| match state.decide(&key, trigger, now) {
                Step::Delete(pod, _) => Some(pod.key.name),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn the_reference_appearing_heals_the_pods_of_that_service_account() {
        let mut other_account = stuck("worker-1", IMAGE);
        other_account["spec"]["serviceAccountName"] = json!("worker");
        let mut state = listed(
            vec![stuck("web-1", IMAGE), stuck("web-2", IMAGE), other_account],
            10,
        );
        let absorbed = state.absorb(Input::Account(Event::Apply(account(&["dpr-secret"]))));
        let names: Vec<&str> = absorbed.work.iter().map(|(k, _)| k.name.as_str()).collect();
        assert_eq!(names, ["web-1", "web-2"]);
        assert_eq!(
            deletions(&mut state, absorbed.work, Instant::now()),
            ["web-1", "web-2"]
        );
    }

    #[test]
    fn an_unchanged_service_account_wakes_nothing() {
        let mut state = listed(vec![stuck("web-1", IMAGE)], 10);
        assert!(
            state
                .absorb(Input::Account(Event::Apply(account(&[]))))
                .work
                .is_empty()
        );
    }

    #[test]
    fn rate_limited_pods_come_back_when_a_token_is_due() {
        let pods = (1..=4).map(|i| stuck(&format!("web-{i}"), IMAGE)).collect();
        let mut state = listed(pods, 2);
        let start = Instant::now();
        let work = state
            .absorb(Input::Account(Event::Apply(account(&["dpr-secret"]))))
            .work;
        assert_eq!(deletions(&mut state, work, start), ["web-1", "web-2"]);
        let wake = state.next_wake().expect("two pods wait");
        assert!(wake > start && wake <= start + Duration::from_secs(1));
        assert!(state.due(start).is_empty());
        let due = state.due(wake);
        assert_eq!(due.len(), 2);
        assert_eq!(deletions(&mut state, due, wake), ["web-3"]);
        let later = state.next_wake().expect("one pod waits");
        let due = state.due(later);
        assert_eq!(deletions(&mut state, due, later), ["web-4"]);
        assert_eq!(state.next_wake(), None);
    }

    #[test]
    fn a_pod_leaving_pending_is_forgotten() {
        let mut state = listed(vec![stuck("web-1", IMAGE)], 0);
        let work = state
            .absorb(Input::Account(Event::Apply(account(&["dpr-secret"]))))
            .work;
        assert!(deletions(&mut state, work, Instant::now()).is_empty());
        assert!(state.next_wake().is_some());
        state.absorb(Input::Pod(Box::new(Event::Delete(facts(stuck("web-1", IMAGE))))));
        assert_eq!(state.next_wake(), None);
    }

    #[test]
    fn a_changed_secret_retries_the_pods_that_list_it() {
        let mut listing = stuck("web-1", IMAGE);
        listing["spec"]["imagePullSecrets"] = json!([{"name": "dpr-secret"}]);
        let mut state = listed(vec![listing, stuck("web-2", IMAGE)], 10);
        let key = ("apps".to_string(), "dpr-secret".to_string());
        let same = state.absorb(Input::Secret(Event::Apply((key.clone(), 1))));
        assert!(same.work.is_empty(), "same content: nothing to retry");
        let changed = state.absorb(Input::Secret(Event::Apply((key, 2))));
        let work: Vec<_> = changed.work.iter().cloned().collect();
        assert_eq!(work.len(), 1);
        assert_eq!(work[0].0.name, "web-1");
        assert_eq!(work[0].1, Trigger::CredentialChanged("dpr-secret".into()));
        let now = Instant::now();
        let Step::Delete(_, heal) = state.decide(&work[0].0, work[0].1.clone(), now) else {
            panic!("expected a deletion");
        };
        assert_eq!(
            heal.cause,
            Cause::CredentialChanged {
                secret: "dpr-secret".into()
            }
        );
    }

    #[test]
    fn a_credential_change_survives_a_delete_that_met_a_newer_pod() {
        let mut listing = stuck("web-1", IMAGE);
        listing["spec"]["imagePullSecrets"] = json!([{"name": "dpr-secret"}]);
        let mut state = listed(vec![listing.clone()], 10);
        let key = ("apps".to_string(), "dpr-secret".to_string());
        let work = state.absorb(Input::Secret(Event::Apply((key, 2)))).work;
        let (pod, trigger) = work.into_iter().next().expect("the pod");
        state.changed_meanwhile(&pod, trigger.clone());
        listing["metadata"]["resourceVersion"] = json!("43");
        let next = state.absorb(Input::Pod(Box::new(Event::Apply(facts(listing)))));
        assert!(next.work.contains(&(pod.clone(), trigger)), "{:?}", next.work);
        assert!(next.work.contains(&(pod, Trigger::State)));
    }

    #[test]
    fn changes_missed_while_the_secret_watch_was_down_count() {
        let mut listing = stuck("web-1", IMAGE);
        listing["spec"]["imagePullSecrets"] = json!([{"name": "dpr-secret"}]);
        let mut state = listed(vec![listing], 10);
        let key = ("apps".to_string(), "dpr-secret".to_string());
        state.absorb(Input::Secret(Event::Init));
        state.absorb(Input::Secret(Event::InitApply((key, 7))));
        let relisted = state.absorb(Input::Secret(Event::InitDone));
        assert_eq!(relisted.work.len(), 1);
    }

    #[test]
    fn credential_changes_are_ignored_when_turned_off() {
        let mut listing = stuck("web-1", IMAGE);
        listing["spec"]["imagePullSecrets"] = json!([{"name": "dpr-secret"}]);
        let mut state = listed(vec![listing], 10);
        state.after_credential_change = false;
        let key = ("apps".to_string(), "dpr-secret".to_string());
        assert!(
            state
                .absorb(Input::Secret(Event::Apply((key, 2))))
                .work
                .is_empty()
        );
    }

    #[test]
    fn a_bare_pod_is_told_about_once() {
        let mut bare = stuck("solo", IMAGE);
        bare["metadata"]["ownerReferences"] = json!(null);
        let mut state = listed(vec![bare], 10);
        let work = state
            .absorb(Input::Account(Event::Apply(account(&["dpr-secret"]))))
            .work;
        let (key, trigger) = work.into_iter().next().expect("the pod");
        let now = Instant::now();
        assert!(matches!(
            state.decide(&key, trigger.clone(), now),
            Step::Tell(_, Leave::Bare(_))
        ));
        assert!(matches!(
            state.decide(&key, trigger, now),
            Step::Leave(_, Leave::Bare(_))
        ));
    }
}
