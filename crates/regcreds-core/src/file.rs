//! Reading the files users point regcreds at — mounted Secrets, key files, CA bundles, token files —
//! with a size bound.
//!
//! Every such file fits in a Kubernetes Secret or ConfigMap, which hold at most 1 MiB. A path aimed by
//! mistake at `/dev/zero`, a log or a disk image must fail at once with a clear message instead of
//! reading until memory runs out: at most [`MAX_INPUT_FILE_BYTES`] + 1 bytes are ever read.

use std::{
    io::Read,
    path::{Path, PathBuf},
};

use tokio::io::AsyncReadExt;

/// The largest input file regcreds reads: 1 MiB, the most a Kubernetes Secret or ConfigMap holds.
pub const MAX_INPUT_FILE_BYTES: u64 = 1024 * 1024;

/// Why an input file could not be used. Never contains the file's content.
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    /// Opening or reading failed (missing, permissions, a directory, ...).
    #[error("cannot read {path}: {source}")]
    Unreadable {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The file holds more than [`MAX_INPUT_FILE_BYTES`] (or never ends, like `/dev/zero`).
    #[error(
        "cannot read {path}: it is larger than 1 MiB, the most a Kubernetes Secret holds \
         (is it the right file?)"
    )]
    TooLarge {
        /// The file.
        path: PathBuf,
    },
}

/// Reads `path` completely if it holds at most [`MAX_INPUT_FILE_BYTES`].
pub fn read_bounded(path: &Path) -> Result<Vec<u8>, FileError> {
    let unreadable = |source| FileError::Unreadable {
        path: path.to_path_buf(),
        source,
    };
    let file = std::fs::File::open(path).map_err(unreadable)?;
    let mut bytes = Vec::new();
    file.take(MAX_INPUT_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(unreadable)?;
    check_size(path, bytes)
}

/// [`read_bounded`] without blocking the async runtime.
pub async fn read_bounded_async(path: &Path) -> Result<Vec<u8>, FileError> {
    let unreadable = |source| FileError::Unreadable {
        path: path.to_path_buf(),
        source,
    };
    let file = tokio::fs::File::open(path).await.map_err(unreadable)?;
    let mut bytes = Vec::new();
    file.take(MAX_INPUT_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .await
        .map_err(unreadable)?;
    check_size(path, bytes)
}

/// [`read_bounded_async`] as UTF-8 text.
pub async fn read_bounded_to_string(path: &Path) -> Result<String, FileError> {
    let bytes = read_bounded_async(path).await?;
    String::from_utf8(bytes).map_err(|_| FileError::Unreadable {
        path: path.to_path_buf(),
        source: std::io::Error::new(std::io::ErrorKind::InvalidData, "not UTF-8 text"),
    })
}

fn check_size(path: &Path, bytes: Vec<u8>) -> Result<Vec<u8>, FileError> {
    if bytes.len() as u64 > MAX_INPUT_FILE_BYTES {
        return Err(FileError::TooLarge {
            path: path.to_path_buf(),
        });
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_within_the_bound_is_read_whole() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("ok");
        std::fs::write(&path, vec![b'x'; MAX_INPUT_FILE_BYTES as usize]).expect("write");
        assert_eq!(
            read_bounded(&path).expect("read").len() as u64,
            MAX_INPUT_FILE_BYTES
        );
    }

    #[tokio::test]
    async fn dev_zero_and_a_100_mb_file_fail_fast_naming_the_path() {
        let started = std::time::Instant::now();
        let err = read_bounded_async(Path::new("/dev/zero"))
            .await
            .expect_err("endless");
        assert!(matches!(err, FileError::TooLarge { .. }), "{err}");
        assert!(err.to_string().contains("/dev/zero"), "{err}");
        let dir = tempfile::tempdir().expect("tempdir");
        let big = dir.path().join("big");
        std::fs::File::create(&big)
            .and_then(|f| f.set_len(100 * 1024 * 1024))
            .expect("sparse 100 MB file");
        assert!(matches!(read_bounded(&big), Err(FileError::TooLarge { .. })));
        assert!(started.elapsed() < std::time::Duration::from_secs(5));
    }

    #[test]
    fn a_missing_file_is_unreadable() {
        let err = read_bounded(Path::new("/nonexistent/regcreds")).expect_err("missing");
        assert!(matches!(err, FileError::Unreadable { .. }), "{err}");
    }
}
