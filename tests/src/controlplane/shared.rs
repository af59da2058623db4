//! The per-test-binary shared control plane.
//!
//! Initialised by the first test that asks, inside that test's runtime; later tests (on other
//! runtimes) only read the `static`. A start-up failure is stored too, so every test fails with the
//! same message instead of each retrying a slow start.

use tokio::sync::OnceCell;

use super::ControlPlane;

static SHARED: OnceCell<Result<ControlPlane, String>> = OnceCell::const_new();

/// The shared control plane; panics with the start-up error.
pub(super) async fn get() -> &'static ControlPlane {
    let started = SHARED
        .get_or_init(|| async { ControlPlane::start().await.map_err(|e| format!("{e:#}")) })
        .await;
    match started {
        Ok(cp) => cp,
        Err(e) => panic!("the shared control plane did not start: {e}"),
    }
}
