//! Fixed credentials for any private registry.
//!
//! Two providers live here:
//! * [`StaticProvider`] (`static`): one registry from a server, a user and a password — upmc
//!   registry-creds' `DOCKER_PRIVATE_REGISTRY_*`, written to `dpr-secret` by default.
//! * [`DockerConfigProvider`] (`dockerconfigjson`): a whole dockerconfigjson, inline or from a file —
//!   imagepullsecret-patcher's `CONFIG_DOCKERCONFIGJSON(PATH)`, written to `image-pull-secret`.
//!   A file is re-read on every mint, so a mounted Secret that Kubernetes updates in place is picked up
//!   without a restart; an unreadable or invalid file is an error and the last good credentials stay.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

#[cfg(feature = "cli")]
mod args;
mod dockerconfig;
mod error;
mod server;

#[cfg(feature = "cli")]
pub use args::{DockerConfigArgs, StaticArgs};
pub use dockerconfig::{DockerConfigProvider, DockerConfigSource};
pub use error::{Error, Result};
pub use server::StaticProvider;

/// Default Secret name of [`StaticProvider`], as in upmc registry-creds.
pub const DEFAULT_STATIC_SECRET: &str = "dpr-secret";
/// Default Secret name of [`DockerConfigProvider`], as in imagepullsecret-patcher.
pub const DEFAULT_DOCKERCONFIG_SECRET: &str = "image-pull-secret";
