//! regcreds' image in the world's public registry, built and pushed on first use.

use std::path::Path;

use anyhow::Result;

use super::images;
use crate::{image::PushToRegistry, registry::TestRegistry};

/// Repository of regcreds' image in the public registry.
pub(crate) const REPOSITORY: &str = "regcreds/regcreds";
/// Its tag.
pub(crate) const TAG: &str = "test";

/// Builds the image from the regcreds binary under test and pushes it; returns its name.
pub(crate) fn build_and_push(registry: &TestRegistry, world: &Path) -> Result<String> {
    let layout = images::write_regcreds(&world.join("images/regcreds"), &scratch(world))?;
    let name = format!("{REPOSITORY}:{TAG}");
    registry.push_layout(&layout, &name)?;
    Ok(format!("{}/{name}", registry.host()))
}

/// Where [`images::write_regcreds`] puts the binary it wraps.
fn scratch(world: &Path) -> std::path::PathBuf {
    world.join("images/regcreds-binary")
}

/// The executable inside the image, as [`images::write_regcreds`] left it in [`scratch`].
pub(crate) fn binary(world: &Path) -> std::path::PathBuf {
    scratch(world).join("regcreds")
}
