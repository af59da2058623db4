//! One image layer: a deterministic tar of directories, files and symlinks.
//!
//! Entries are kept sorted by path and written parents first (a missing parent becomes a `0755`
//! root-owned directory); every mtime is 0 and owners are numeric. The same inputs therefore give the
//! same bytes and the same digests on every build, so an unchanged layer is shared between builds by
//! registries and by containerd.
//!
//! [`LayerBuilder::host_path`] copies a file of this machine together with the symlinks on its way
//! (`/lib64` → `usr/lib64`, `ld-linux-x86-64.so.2` → `/lib/x86_64-linux-gnu/…`), so the image
//! resolves a path exactly as the host does, whether or not the host is `/usr`-merged.

use std::{
    collections::{BTreeMap, VecDeque},
    ffi::OsString,
    fs,
    io::{Read, Write},
    path::{Component, Path, PathBuf},
};

use anyhow::{Context, Result, bail};
use sha2::{Digest, Sha256};

/// Symlinks followed at most while resolving one host path (the kernel's limit is 40 too).
const MAX_SYMLINK_HOPS: usize = 40;

/// How a layer blob is stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    /// A plain tar: fastest to write and to unpack; what tests use.
    None,
    /// gzip (level 6): what registries usually serve; what `cargo xtask image` writes.
    Gzip,
}

/// A built layer: the blob and the digests an image config and manifest refer to.
#[derive(Debug, Clone)]
pub struct Layer {
    /// The blob as stored (compressed or not).
    pub blob: Vec<u8>,
    /// `sha256:…` of [`Layer::blob`]: the manifest's layer digest.
    pub digest: String,
    /// `sha256:…` of the uncompressed tar: the config's `rootfs.diff_ids` entry.
    pub diff_id: String,
    /// OCI media type matching the compression.
    pub media_type: &'static str,
}

/// An owner as numeric `(uid, gid)`.
pub type Owner = (u64, u64);

/// `root:root`.
pub const ROOT: Owner = (0, 0);

#[derive(Debug, Clone, PartialEq, Eq)]
enum Kind {
    Dir,
    /// Contents given in memory.
    Bytes(Vec<u8>),
    /// Contents read from this host file when the layer is built (binaries can be large).
    HostFile(PathBuf),
    Symlink(PathBuf),
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Entry {
    kind: Kind,
    mode: u32,
    owner: Owner,
}

/// Collects entries, then writes them as one tar ([`LayerBuilder::build`]).
#[derive(Debug, Clone, Default)]
pub struct LayerBuilder {
    /// Paths relative to `/`; `PathBuf` orders component by component, so parents sort first.
    entries: BTreeMap<PathBuf, Entry>,
}

impl LayerBuilder {
    /// An empty layer.
    pub fn new() -> Self {
        Self::default()
    }

    /// A directory with the given mode and owner (replaces an implicit parent of the same path).
    pub fn dir(&mut self, path: impl AsRef<Path>, mode: u32, owner: Owner) -> Result<&mut Self> {
        self.insert(path.as_ref(), Kind::Dir, mode, owner)
    }

    /// A file with the given contents and mode, owned by root.
    pub fn file(
        &mut self,
        path: impl AsRef<Path>,
        contents: impl Into<Vec<u8>>,
        mode: u32,
    ) -> Result<&mut Self> {
        self.insert(path.as_ref(), Kind::Bytes(contents.into()), mode, ROOT)
    }

    /// A root-owned file at `path` in the image whose contents are `source` on this host, read when
    /// the layer is built.
    pub fn file_from_host(&mut self, path: impl AsRef<Path>, source: &Path, mode: u32) -> Result<&mut Self> {
        let metadata = fs::metadata(source).with_context(|| format!("reading {}", source.display()))?;
        if !metadata.is_file() {
            bail!("{} is not a regular file", source.display());
        }
        self.insert(path.as_ref(), Kind::HostFile(source.to_path_buf()), mode, ROOT)
    }

    /// A symlink at `path` pointing at `target` (kept verbatim, relative or absolute).
    pub fn symlink(&mut self, path: impl AsRef<Path>, target: impl AsRef<Path>) -> Result<&mut Self> {
        self.insert(
            path.as_ref(),
            Kind::Symlink(target.as_ref().to_path_buf()),
            0o777,
            ROOT,
        )
    }

    /// Copies the absolute host path `path` to the same path in the image, root-owned with the host's
    /// permission bits, and reproduces every symlink met while resolving it. Returns the host path of
    /// the regular file (or directory) it ended at.
    pub fn host_path(&mut self, path: &Path) -> Result<PathBuf> {
        if !path.is_absolute() {
            bail!("{} is not an absolute path", path.display());
        }
        let mut resolved = PathBuf::from("/");
        let mut pending: VecDeque<OsString> = VecDeque::new();
        push_front_components(&mut pending, path);
        let mut hops = 0;
        while let Some(name) = pending.pop_front() {
            if name == ".." {
                resolved.pop();
                continue;
            }
            let candidate = resolved.join(&name);
            let metadata = fs::symlink_metadata(&candidate)
                .with_context(|| format!("reading {}", candidate.display()))?;
            if metadata.file_type().is_symlink() {
                hops += 1;
                if hops > MAX_SYMLINK_HOPS {
                    bail!("too many symlinks resolving {}", path.display());
                }
                let target = fs::read_link(&candidate)?;
                self.symlink(&candidate, &target)?;
                // Resolution continues with the target's components, then whatever followed the link.
                if target.is_absolute() {
                    resolved = PathBuf::from("/");
                }
                push_front_components(&mut pending, &target);
            } else if pending.is_empty() {
                let mode = std::os::unix::fs::PermissionsExt::mode(&metadata.permissions()) & 0o7777;
                if metadata.is_dir() {
                    self.dir(&candidate, mode, ROOT)?;
                } else {
                    self.file_from_host(&candidate, &candidate, mode)?;
                }
                return Ok(candidate);
            } else {
                resolved = candidate;
            }
        }
        Ok(resolved)
    }

    /// Whether the layer has an entry at `path`.
    pub fn contains(&self, path: impl AsRef<Path>) -> bool {
        relative(path.as_ref()).is_ok_and(|p| self.entries.contains_key(&p))
    }

    /// Writes the tar (and compresses it) and computes the digests.
    pub fn build(&self, compression: Compression) -> Result<Layer> {
        let tar = self.tar()?;
        let diff_id = sha256_digest(&tar);
        let (blob, media_type) = match compression {
            Compression::None => (tar, LAYER_TAR),
            Compression::Gzip => {
                // GzEncoder writes mtime 0 and no file name: the bytes depend on the tar alone.
                let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
                encoder.write_all(&tar)?;
                (encoder.finish()?, LAYER_TAR_GZIP)
            }
        };
        Ok(Layer {
            digest: sha256_digest(&blob),
            blob,
            diff_id,
            media_type,
        })
    }

    fn tar(&self) -> Result<Vec<u8>> {
        let mut builder = tar::Builder::new(Vec::new());
        for (path, entry) in &self.entries {
            let mut header = tar::Header::new_gnu();
            header.set_mtime(0);
            header.set_uid(entry.owner.0);
            header.set_gid(entry.owner.1);
            header.set_mode(entry.mode);
            match &entry.kind {
                Kind::Dir => {
                    header.set_entry_type(tar::EntryType::Directory);
                    header.set_size(0);
                    builder.append_data(&mut header, path, std::io::empty())?;
                }
                Kind::Bytes(bytes) => {
                    header.set_entry_type(tar::EntryType::Regular);
                    header.set_size(bytes.len() as u64);
                    builder.append_data(&mut header, path, bytes.as_slice())?;
                }
                Kind::HostFile(source) => {
                    let file =
                        fs::File::open(source).with_context(|| format!("reading {}", source.display()))?;
                    let size = file.metadata()?.len();
                    header.set_entry_type(tar::EntryType::Regular);
                    header.set_size(size);
                    // `take`: a file that grows meanwhile must not overrun the size in the header.
                    builder
                        .append_data(&mut header, path, file.take(size))
                        .with_context(|| format!("adding {} to a layer", source.display()))?;
                }
                Kind::Symlink(target) => {
                    header.set_entry_type(tar::EntryType::Symlink);
                    header.set_size(0);
                    builder.append_link(&mut header, path, target)?;
                }
            }
        }
        Ok(builder.into_inner()?)
    }

    fn insert(&mut self, path: &Path, kind: Kind, mode: u32, owner: Owner) -> Result<&mut Self> {
        let path = relative(path)?;
        if path.as_os_str().is_empty() {
            bail!("a layer cannot replace /");
        }
        for parent in path.ancestors().skip(1).filter(|p| !p.as_os_str().is_empty()) {
            match self.entries.get(parent) {
                Some(Entry { kind: Kind::Dir, .. }) => {}
                Some(_) => bail!(
                    "cannot add /{}: its parent /{} is not a directory in this layer",
                    path.display(),
                    parent.display()
                ),
                None => {
                    self.entries.insert(
                        parent.to_path_buf(),
                        Entry {
                            kind: Kind::Dir,
                            mode: 0o755,
                            owner: ROOT,
                        },
                    );
                }
            }
        }
        let entry = Entry { kind, mode, owner };
        match self.entries.get(&path) {
            // A directory may be re-declared (explicit mode/owner win over an implicit parent).
            Some(existing) if existing.kind == Kind::Dir && entry.kind == Kind::Dir => {}
            Some(existing) if *existing != entry => {
                bail!("/{} is added twice with different contents", path.display())
            }
            _ => {}
        }
        self.entries.insert(path, entry);
        Ok(self)
    }
}

/// OCI media type of an uncompressed layer.
pub const LAYER_TAR: &str = "application/vnd.oci.image.layer.v1.tar";
/// OCI media type of a gzip-compressed layer.
pub const LAYER_TAR_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";

/// `sha256:<hex>` of `bytes`.
pub fn sha256_digest(bytes: &[u8]) -> String {
    format!("sha256:{:x}", Sha256::digest(bytes))
}

/// `/etc/passwd` → `etc/passwd`; refuses `..` so nothing can point outside the image root.
fn relative(path: &Path) -> Result<PathBuf> {
    let mut out = PathBuf::new();
    for component in path.components() {
        match component {
            Component::RootDir | Component::CurDir => {}
            Component::Normal(name) => out.push(name),
            Component::ParentDir | Component::Prefix(_) => {
                bail!("{}: layer paths must be plain absolute paths", path.display())
            }
        }
    }
    Ok(out)
}

/// Puts the components of `path` (skipping `/` and `.`, keeping `..`) in front of `pending`.
fn push_front_components(pending: &mut VecDeque<OsString>, path: &Path) {
    for component in path.components().rev() {
        match component {
            Component::Normal(name) => pending.push_front(name.to_os_string()),
            Component::ParentDir => pending.push_front("..".into()),
            Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entries(layer: &Layer) -> Vec<(String, tar::EntryType, u32, u64, String)> {
        let mut archive = tar::Archive::new(layer.blob.as_slice());
        archive
            .entries()
            .expect("entries")
            .map(|entry| {
                let entry = entry.expect("entry");
                let header = entry.header();
                let link = entry
                    .link_name()
                    .expect("link name")
                    .map(|l| l.display().to_string())
                    .unwrap_or_default();
                (
                    entry.path().expect("path").display().to_string(),
                    header.entry_type(),
                    header.mode().expect("mode"),
                    header.uid().expect("uid"),
                    link,
                )
            })
            .collect()
    }

    #[test]
    fn parents_come_first_and_the_bytes_are_reproducible() -> Result<()> {
        let mut builder = LayerBuilder::new();
        builder
            .file("/usr/lib/x/libfoo.so", b"elf".to_vec(), 0o644)?
            .dir("/home/nonroot", 0o700, (65532, 65532))?
            .symlink("/lib", "usr/lib")?
            .dir("/tmp", 0o1777, ROOT)?;
        let layer = builder.build(Compression::None)?;
        let listed: Vec<_> = entries(&layer)
            .into_iter()
            .map(|(path, kind, mode, uid, link)| format!("{path} {kind:?} {mode:o} {uid} {link}"))
            .collect();
        assert_eq!(
            listed,
            [
                "home Directory 755 0 ",
                "home/nonroot Directory 700 65532 ",
                "lib Symlink 777 0 usr/lib",
                "tmp Directory 1777 0 ",
                "usr Directory 755 0 ",
                "usr/lib Directory 755 0 ",
                "usr/lib/x Directory 755 0 ",
                "usr/lib/x/libfoo.so Regular 644 0 ",
            ]
        );
        let again = builder.clone().build(Compression::None)?;
        assert_eq!(layer.digest, again.digest);
        assert_eq!(layer.digest, layer.diff_id, "uncompressed: blob = tar");
        let gzip = builder.build(Compression::Gzip)?;
        assert_eq!(gzip.diff_id, layer.diff_id);
        assert_ne!(gzip.digest, layer.digest);
        assert_eq!(gzip.digest, builder.build(Compression::Gzip)?.digest);
        Ok(())
    }

    #[test]
    fn refuses_paths_through_files_and_conflicting_duplicates() -> Result<()> {
        let mut builder = LayerBuilder::new();
        builder.symlink("/lib", "usr/lib")?;
        let err = builder
            .file("/lib/libc.so.6", b"x".to_vec(), 0o755)
            .expect_err("through a symlink");
        assert!(
            err.to_string().contains("parent /lib is not a directory"),
            "{err}"
        );
        builder.file("/etc/passwd", b"a".to_vec(), 0o644)?;
        builder.file("/etc/passwd", b"a".to_vec(), 0o644)?;
        let err = builder
            .file("/etc/passwd", b"b".to_vec(), 0o644)
            .expect_err("a different file");
        assert!(err.to_string().contains("added twice"), "{err}");
        assert!(builder.file("/../etc/x", b"".to_vec(), 0o644).is_err());
        Ok(())
    }

    #[test]
    fn host_paths_keep_the_symlinks_on_their_way() -> Result<()> {
        let dir = tempfile::tempdir()?;
        let root = dir.path();
        fs::create_dir_all(root.join("usr/lib/x86_64"))?;
        fs::write(root.join("usr/lib/x86_64/ld.so"), b"loader")?;
        fs::create_dir_all(root.join("usr/lib64"))?;
        std::os::unix::fs::symlink("usr/lib", root.join("lib"))?;
        std::os::unix::fs::symlink("usr/lib64", root.join("lib64"))?;
        // Relative with `..`, and absolute through another link, as Debian's loader links are.
        std::os::unix::fs::symlink("../lib/x86_64/ld.so", root.join("usr/lib64/ld.so"))?;
        std::os::unix::fs::symlink(root.join("lib/x86_64/ld.so"), root.join("usr/lib64/abs.so"))?;

        let mut builder = LayerBuilder::new();
        assert_eq!(
            builder.host_path(&root.join("lib64/ld.so"))?,
            root.join("usr/lib/x86_64/ld.so")
        );
        assert_eq!(
            builder.host_path(&root.join("lib64/abs.so"))?,
            root.join("usr/lib/x86_64/ld.so")
        );
        let rel = |p: &str| relative(&root.join(p)).expect("relative").display().to_string();
        let listed: Vec<_> = entries(&builder.build(Compression::None)?)
            .into_iter()
            .filter(|(_, kind, ..)| *kind != tar::EntryType::Directory)
            .map(|(path, kind, _, _, link)| (path, kind, link))
            .collect();
        let symlink = |path: &str, target: String| (rel(path), tar::EntryType::Symlink, target);
        assert_eq!(
            listed,
            [
                symlink("lib", "usr/lib".to_string()),
                symlink("lib64", "usr/lib64".to_string()),
                (
                    rel("usr/lib/x86_64/ld.so"),
                    tar::EntryType::Regular,
                    String::new()
                ),
                symlink(
                    "usr/lib64/abs.so",
                    root.join("lib/x86_64/ld.so").display().to_string()
                ),
                symlink("usr/lib64/ld.so", "../lib/x86_64/ld.so".to_string()),
            ]
        );
        Ok(())
    }
}
