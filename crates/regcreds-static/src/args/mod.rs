//! The static providers' command-line and environment surface (feature `cli`): `REGCREDS_STATIC_*` with
//! upmc's `DOCKER_PRIVATE_REGISTRY_*`, and `REGCREDS_DOCKERCONFIGJSON*` with imagepullsecret-patcher's
//! `CONFIG_*`.

mod dockerconfig;
mod server;

pub use dockerconfig::DockerConfigArgs;
pub use server::StaticArgs;
