//! The propagator library in the test process (no regcreds binary), against a control plane, scoped to
//! one test's namespaces (those labelled [`TEST_LABEL`]`=<test>`): for tests of propagation itself
//! that count requests or watch objects change, where a child process would only add noise.

use std::time::Duration;

use kube::Client;
use regcreds_propagator::{Desired, NamespaceScope, Propagator, Settings, parse_label_selector};
use tokio::sync::{oneshot, watch};

use crate::TEST_LABEL;

/// Settings scoped to namespaces labelled `TEST_LABEL=<test>`, plus `extra_excludes` glob patterns.
pub fn settings(test: &str, extra_excludes: &[&str]) -> Settings {
    let selector = parse_label_selector(&format!("{TEST_LABEL}={test}")).expect("selector");
    let excludes: Vec<String> = extra_excludes.iter().map(|s| s.to_string()).collect();
    let mut settings = Settings::new(NamespaceScope::new(&excludes, Some(selector), None).expect("scope"));
    settings.concurrency = 16;
    settings
}

/// A propagator running in this process until [`Running::stop`].
pub struct Running {
    /// What it propagates; send to change it.
    pub desired: watch::Sender<Desired>,
    stop: oneshot::Sender<()>,
    task: tokio::task::JoinHandle<()>,
}

impl Running {
    /// Starts a propagator with `settings`, propagating `initial`.
    pub async fn start(client: Client, settings: Settings, initial: Desired) -> Self {
        let (desired, receiver) = watch::channel(initial);
        let (stop, stopped) = oneshot::channel::<()>();
        let propagator = Propagator::new(client, settings, receiver);
        let task = tokio::spawn(async move {
            propagator
                .run(async move { drop(stopped.await) })
                .await
                .expect("propagator runs");
        });
        Self { desired, stop, task }
    }

    /// Stops it and waits (bounded) for it to end.
    pub async fn stop(self) {
        let _ = self.stop.send(());
        let _ = tokio::time::timeout(Duration::from_secs(20), self.task).await;
    }
}
