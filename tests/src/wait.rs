//! Polling helper for eventually-consistent assertions.

use std::{future::Future, time::Duration};

use tokio::time::Instant;

/// How often [`wait_for`] re-runs its check.
const POLL_INTERVAL: Duration = Duration::from_millis(100);

/// Polls `check` every 100 ms until it returns `Some`, panicking with `what` after `timeout`.
///
/// A check that hangs counts against the same deadline, so a stuck API call cannot stall a test.
pub async fn wait_for<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        match tokio::time::timeout_at(deadline, check()).await {
            Ok(Some(value)) => return value,
            Ok(None) if Instant::now() + POLL_INTERVAL < deadline => tokio::time::sleep(POLL_INTERVAL).await,
            _ => panic!("timed out after {timeout:?} waiting for {what}"),
        }
    }
}
