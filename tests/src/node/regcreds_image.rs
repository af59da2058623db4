//! regcreds' image for the node world, pushed to the public registry on first use.
//!
//! Interim: until `cargo xtask image`'s builder (issue #13, point 3) is merged, this wraps the
//! test build of the binary with its shared libraries (`ldd`), the CA bundle and a writable `/tmp`,
//! non-root 65532, entrypoint `/regcreds`, command `run`, as the Dockerfile's final stage.

use std::path::Path;

use anyhow::{Result, anyhow};

use super::images;
use crate::{regcreds_binary, registry::TestRegistry};

/// Repository of regcreds' image in the public registry.
pub(crate) const REPOSITORY: &str = "regcreds/regcreds";
/// Its tag.
pub(crate) const TAG: &str = "test";

/// Builds the image from the regcreds binary under test and pushes it; returns its name.
pub(crate) fn build_and_push(registry: &TestRegistry, world: &Path) -> Result<String> {
    let layout = world.join("images/regcreds");
    // The test build carries debug info (hundreds of MB); the image needs none of it.
    let stripped = world.join("images/regcreds-stripped");
    std::fs::create_dir_all(world.join("images"))?;
    super::run(
        std::process::Command::new("strip")
            .arg("-o")
            .arg(&stripped)
            .arg(regcreds_binary()),
    )?;
    images::write_regcreds(&stripped, &layout, TAG)?;
    registry
        .push_oci_layout(&layout, TAG, REPOSITORY)
        .map_err(|e| anyhow!("pushing regcreds' image: {e}"))
}
