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
    let layout = images::write_regcreds(&world.join("images/regcreds"), &binary(world))?;
    let name = format!("{REPOSITORY}:{TAG}");
    registry.push_layout(&layout, &name)?;
    Ok(format!("{}/{name}", registry.host()))
}

/// The executable inside the image, where [`build_and_push`] has [`images::write_regcreds`] strip it.
pub(crate) fn binary(world: &Path) -> std::path::PathBuf {
    world.join("images/regcreds-binary/regcreds")
}
