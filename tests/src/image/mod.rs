//! Container images without a Docker daemon: the regcreds image the `Dockerfile` describes, assembled
//! from this machine's Debian files, written as an OCI image layout, pushed with skopeo.
//!
//! ```text
//! regcreds binary ─► runtime::runtime_layer   loader + libraries (ldd), CA bundle, passwd/group with
//!                  │                          nonroot 65532, /tmp, dpkg records: distroless cc-debian12
//!                  ├► layer::LayerBuilder      deterministic tar (sorted, mtime 0, numeric owners)
//!                  └► regcreds::build          2 layers + config (User, Entrypoint, Cmd, port, labels)
//!                        ─► oci::OciLayout     DIR/{oci-layout,index.json,blobs/sha256/*} (+ archive tar)
//!                        ─► push::push         skopeo copy oci:DIR:TAG docker://HOST/REPO:TAG
//!                        ─► rootfs::unpack + rootfs::run_as   chroot as 65532: does it really run?
//! dockerfile::final_stage                      the Dockerfile's last stage, for the agreement test
//! ```
//!
//! Why not buildah: it needs a storage root, vfs copies, `/etc/cni` side effects and root even to
//! build; a layout written here is byte-for-byte reproducible (same commit and host files → same
//! digest), takes a second, and skopeo (already a test dependency) pushes it.
//!
//! Typical use from a test (the node tests run this image as pods):
//!
//! ```no_run
//! # async fn demo() -> anyhow::Result<()> {
//! use regcreds_testkit::{image::{self, PushToRegistry}, registry::{RegistryOptions, TestRegistry}};
//! // Built once per test process from the binary under test; or image::regcreds::build(binary, dir, &options).
//! let layout = image::regcreds::test_image();
//! let registry = TestRegistry::start(RegistryOptions::default()).await;
//! let digest = registry.push_layout(layout, "regcreds/regcreds:test")?;
//! // Pods: image `{registry.host()}/regcreds/regcreds:test` (or `@{digest}`), with a pull Secret for
//! // registry.host(); the registry's CA is registry.ca_pem() / registry.cert_dir().
//! # let _ = digest; Ok(()) }
//! ```

pub mod dockerfile;
pub mod layer;
pub mod oci;
pub mod push;
pub mod regcreds;
pub mod rootfs;
pub mod runtime;

pub use layer::{Compression, LayerBuilder};
pub use oci::{ImageConfig, OciImage, OciLayout};
pub use push::{Credentials, PushToRegistry, RegistryAccess};
