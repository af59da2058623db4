//! An OCI image (config + layers) written as an OCI image layout directory, and read back.
//!
//! ```text
//! DIR/oci-layout                 {"imageLayoutVersion":"1.0.0"}
//! DIR/index.json                 one manifest descriptor, annotated org.opencontainers.image.ref.name = TAG
//! DIR/blobs/sha256/<hex>         manifest, config, layers
//! ```
//!
//! skopeo reads it as `oci:DIR:TAG` (push, inspect), containerd imports a tar of it
//! ([`OciLayout::write_archive`]). JSON is written with sorted keys, so equal inputs give equal digests.

use std::{
    collections::BTreeMap,
    fs,
    io::Read,
    path::{Path, PathBuf},
};

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};

use super::layer::{LAYER_TAR_GZIP, Layer, sha256_digest};

/// OCI media type of an image manifest.
pub const MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// OCI media type of an image config.
pub const CONFIG: &str = "application/vnd.oci.image.config.v1+json";

/// The runtime part of an image config (`config` in the OCI image config JSON).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImageConfig {
    /// `User`, e.g. `65532:65532`.
    pub user: String,
    /// `Entrypoint`.
    pub entrypoint: Vec<String>,
    /// `Cmd`.
    pub cmd: Vec<String>,
    /// `Env` as `NAME=value`.
    pub env: Vec<String>,
    /// `WorkingDir`.
    pub working_dir: String,
    /// `ExposedPorts` keys, e.g. `8080/tcp`.
    pub exposed_ports: Vec<String>,
    /// `Labels`.
    pub labels: BTreeMap<String, String>,
}

/// An image: when it was created, its config, and its layers (first = bottom), each with the
/// `created_by` text its history entry shows.
#[derive(Debug, Clone)]
pub struct OciImage {
    /// RFC 3339 creation time (`created` in the config and each history entry).
    pub created: String,
    /// The runtime config.
    pub config: ImageConfig,
    /// `(layer, created_by)`, bottom first.
    pub layers: Vec<(Layer, String)>,
}

/// An image layout on disk, as written by [`OciImage::write_layout`] or opened by [`OciLayout::open`].
#[derive(Debug, Clone)]
pub struct OciLayout {
    /// The layout directory.
    pub dir: PathBuf,
    /// The tag (`org.opencontainers.image.ref.name`) the manifest is listed under.
    pub tag: String,
    /// `sha256:…` of the manifest: what a registry reports after a push.
    pub manifest_digest: String,
}

impl OciImage {
    /// Writes the image as a layout in `dir` under `tag`, replacing an earlier layout there. Refuses a
    /// non-empty `dir` that is not a layout, so a mistyped path cannot wipe anything else.
    pub fn write_layout(&self, dir: &Path, tag: &str) -> Result<OciLayout> {
        prepare_layout_dir(dir)?;
        let blobs = dir.join("blobs/sha256");
        fs::create_dir_all(&blobs).with_context(|| format!("creating {}", blobs.display()))?;
        let put = |bytes: &[u8], media_type: &str| -> Result<Value> {
            let digest = sha256_digest(bytes);
            let hex = digest.trim_start_matches("sha256:");
            fs::write(blobs.join(hex), bytes).with_context(|| format!("writing blob {digest}"))?;
            Ok(json!({ "mediaType": media_type, "digest": digest, "size": bytes.len() }))
        };
        let mut layer_descriptors = Vec::new();
        for (layer, _) in &self.layers {
            layer_descriptors.push(put(&layer.blob, layer.media_type)?);
        }
        let config = serde_json::to_vec(&self.config_json())?;
        let manifest = json!({
            "schemaVersion": 2,
            "mediaType": MANIFEST,
            "config": put(&config, CONFIG)?,
            "layers": layer_descriptors,
        });
        let mut manifest_descriptor = put(&serde_json::to_vec(&manifest)?, MANIFEST)?;
        manifest_descriptor["annotations"] = json!({ "org.opencontainers.image.ref.name": tag });
        let index = json!({ "schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
                            "manifests": [manifest_descriptor.clone()] });
        fs::write(dir.join("index.json"), serde_json::to_vec(&index)?)?;
        fs::write(dir.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#)?;
        Ok(OciLayout {
            dir: dir.to_path_buf(),
            tag: tag.to_string(),
            manifest_digest: manifest_descriptor["digest"]
                .as_str()
                .expect("digest is a string")
                .to_string(),
        })
    }

    /// The OCI image config document.
    pub fn config_json(&self) -> Value {
        let c = &self.config;
        let ports: serde_json::Map<String, Value> =
            c.exposed_ports.iter().map(|p| (p.clone(), json!({}))).collect();
        let history: Vec<Value> = self
            .layers
            .iter()
            .map(|(_, created_by)| json!({ "created": self.created, "created_by": created_by }))
            .collect();
        json!({
            "created": self.created,
            "architecture": oci_architecture(),
            "os": "linux",
            "config": {
                "User": c.user,
                "ExposedPorts": ports,
                "Env": c.env,
                "Entrypoint": c.entrypoint,
                "Cmd": c.cmd,
                "WorkingDir": c.working_dir,
                "Labels": c.labels,
            },
            "rootfs": {
                "type": "layers",
                "diff_ids": self.layers.iter().map(|(l, _)| l.diff_id.clone()).collect::<Vec<_>>(),
            },
            "history": history,
        })
    }
}

impl OciLayout {
    /// Opens the layout in `dir` and finds the manifest tagged `tag`.
    pub fn open(dir: &Path, tag: &str) -> Result<Self> {
        let index: Value = read_json(&dir.join("index.json"))?;
        let manifest_digest = index["manifests"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|m| m["annotations"]["org.opencontainers.image.ref.name"] == tag)
            .and_then(|m| m["digest"].as_str())
            .with_context(|| format!("{} has no image tagged {tag}", dir.display()))?
            .to_string();
        Ok(Self {
            dir: dir.to_path_buf(),
            tag: tag.to_string(),
            manifest_digest,
        })
    }

    /// `oci:DIR:TAG`, the transport reference skopeo takes.
    pub fn skopeo_reference(&self) -> String {
        format!("oci:{}:{}", self.dir.display(), self.tag)
    }

    /// The path of the blob with `digest` (`sha256:…`).
    pub fn blob_path(&self, digest: &str) -> Result<PathBuf> {
        let hex = digest
            .strip_prefix("sha256:")
            .filter(|h| h.len() == 64 && h.chars().all(|c| c.is_ascii_hexdigit()))
            .with_context(|| format!("not a sha256 digest: {digest}"))?;
        Ok(self.dir.join("blobs/sha256").join(hex))
    }

    /// The manifest document.
    pub fn manifest(&self) -> Result<Value> {
        read_json(&self.blob_path(&self.manifest_digest)?)
    }

    /// The image config document.
    pub fn config(&self) -> Result<Value> {
        let manifest = self.manifest()?;
        let digest = manifest["config"]["digest"]
            .as_str()
            .context("manifest without config")?;
        read_json(&self.blob_path(digest)?)
    }

    /// `(digest, media type, size)` of each layer, bottom first.
    pub fn layers(&self) -> Result<Vec<(String, String, u64)>> {
        let manifest = self.manifest()?;
        manifest["layers"]
            .as_array()
            .context("manifest without layers")?
            .iter()
            .map(|layer| {
                Ok((
                    layer["digest"].as_str().context("layer digest")?.to_string(),
                    layer["mediaType"]
                        .as_str()
                        .context("layer media type")?
                        .to_string(),
                    layer["size"].as_u64().context("layer size")?,
                ))
            })
            .collect()
    }

    /// A reader of layer `digest` as a plain tar (decompressed if needed).
    pub fn layer_tar(&self, digest: &str, media_type: &str) -> Result<Box<dyn Read>> {
        let file = fs::File::open(self.blob_path(digest)?)?;
        Ok(match media_type {
            // OCI `…tar+gzip` and Docker's `…rootfs.diff.tar.gzip`.
            t if t == LAYER_TAR_GZIP || t.ends_with(".tar.gzip") => {
                Box::new(flate2::read::GzDecoder::new(file))
            }
            t if t.ends_with(".tar") => Box::new(file),
            other => bail!("layer {digest}: unsupported media type {other}"),
        })
    }

    /// Sum of manifest, config and layer blob sizes: what a registry stores and a node downloads.
    pub fn size(&self) -> Result<u64> {
        let manifest = self.manifest()?;
        let blobs = fs::metadata(self.blob_path(&self.manifest_digest)?)?.len();
        let config = manifest["config"]["size"].as_u64().unwrap_or(0);
        let layers: u64 = self.layers()?.iter().map(|(_, _, size)| size).sum();
        Ok(blobs + config + layers)
    }

    /// Writes the layout as one tar file (an "OCI archive"): `skopeo copy oci-archive:FILE …` and
    /// `ctr images import FILE` read it.
    pub fn write_archive(&self, path: &Path) -> Result<()> {
        let file = fs::File::create(path).with_context(|| format!("creating {}", path.display()))?;
        let mut builder = tar::Builder::new(file);
        builder.mode(tar::HeaderMode::Deterministic);
        for name in ["oci-layout", "index.json"] {
            builder.append_path_with_name(self.dir.join(name), name)?;
        }
        let mut digests = vec![self.manifest_digest.clone()];
        digests.push(
            self.manifest()?["config"]["digest"]
                .as_str()
                .context("config digest")?
                .to_string(),
        );
        digests.extend(self.layers()?.into_iter().map(|(digest, _, _)| digest));
        for digest in digests {
            let name = format!("blobs/sha256/{}", digest.trim_start_matches("sha256:"));
            builder.append_path_with_name(self.blob_path(&digest)?, &name)?;
        }
        builder.into_inner()?;
        Ok(())
    }
}

/// The OCI architecture name of this machine (`amd64`, `arm64`, …).
pub fn oci_architecture() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
}

fn prepare_layout_dir(dir: &Path) -> Result<()> {
    if dir.exists() {
        let is_layout = dir.join("oci-layout").is_file();
        let is_empty = fs::read_dir(dir)?.next().is_none();
        if !is_layout && !is_empty {
            bail!(
                "{} exists and is not an OCI image layout; refusing to replace it",
                dir.display()
            );
        }
        fs::remove_dir_all(dir).with_context(|| format!("removing the old layout {}", dir.display()))?;
    }
    fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))
}

fn read_json(path: &Path) -> Result<Value> {
    let bytes = fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    serde_json::from_slice(&bytes).with_context(|| format!("parsing {}", path.display()))
}
