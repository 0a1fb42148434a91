//! Content store for the small blobs of an image — manifests, indexes and
//! configs — kept by digest, each verified before it becomes visible.
//!
//! Layer blobs are not kept: they stream straight into their snapshot (see
//! `pull`), so a node stores each layer's bytes once, unpacked.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering as AtomicOrdering};

use crate::digest::Digest;

/// What failed in the content store.
#[derive(Debug, thiserror::Error)]
pub enum ContentError {
    /// The bytes offered for a blob do not hash to its digest.
    #[error("blob {expected} failed verification: content hashes to {actual}")]
    DigestMismatch {
        /// The digest the blob was stored under.
        expected: Digest,
        /// What its content hashes to.
        actual: Digest,
    },
    /// A blob that is not in the store.
    #[error("blob {0} is not in the content store")]
    Missing(Digest),
    /// A filesystem operation failed.
    #[error("content store: {op} {path}: {source}")]
    Io {
        /// What was being done.
        op: &'static str,
        /// On which path.
        path: PathBuf,
        /// The OS error.
        source: io::Error,
    },
}

impl ContentError {
    fn io<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> Self + 'a {
        move |source| Self::Io {
            op,
            path: path.to_path_buf(),
            source,
        }
    }

    /// Whether the failure was the disk running out of space.
    pub fn is_no_space(&self) -> bool {
        matches!(self, Self::Io { source, .. } if source.raw_os_error() == Some(libc::ENOSPC))
    }
}

/// Blobs by digest under `<root>/blobs/sha256/<hex>`, written through
/// `<root>/ingest/` and renamed into place only once verified and synced.
#[derive(Debug, Clone)]
pub struct ContentStore {
    root: PathBuf,
}

impl ContentStore {
    /// Opens (creating) the store at `root` and drops unfinished writes.
    pub fn open(root: &Path) -> Result<Self, ContentError> {
        let store = Self {
            root: root.to_path_buf(),
        };
        for dir in [store.blobs_dir(), store.ingest_dir()] {
            fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(&dir)
                .map_err(ContentError::io("create directory", &dir))?;
        }
        // Whatever is in ingest/ was never committed: a crash mid-write.
        let ingest = store.ingest_dir();
        for entry in fs::read_dir(&ingest).map_err(ContentError::io("read", &ingest))? {
            let path = entry.map_err(ContentError::io("read", &ingest))?.path();
            if let Err(err) = fs::remove_file(&path) {
                tracing::warn!(path = %path.display(), %err, "cannot remove unfinished blob");
            }
        }
        Ok(store)
    }

    fn blobs_dir(&self) -> PathBuf {
        self.root.join("blobs").join("sha256")
    }

    fn ingest_dir(&self) -> PathBuf {
        self.root.join("ingest")
    }

    /// Where the blob `digest` lives (whether or not it is present).
    pub fn path(&self, digest: &Digest) -> PathBuf {
        self.blobs_dir().join(digest.hex())
    }

    /// Whether the blob is present.
    pub fn contains(&self, digest: &Digest) -> bool {
        self.path(digest).is_file()
    }

    /// Stores `data` as blob `digest` after checking that it hashes to it.
    /// Storing a blob that is already present is a no-op.
    pub fn write(&self, digest: &Digest, data: &[u8]) -> Result<(), ContentError> {
        let actual = Digest::sha256_of(data);
        if &actual != digest {
            return Err(ContentError::DigestMismatch {
                expected: digest.clone(),
                actual,
            });
        }
        let target = self.path(digest);
        if target.is_file() {
            return Ok(());
        }
        // One temporary name per write, so writers of one blob in this
        // process (two pulls of one image) and in others never share one.
        static WRITES: AtomicU64 = AtomicU64::new(0);
        let tmp = self.ingest_dir().join(format!(
            "{}.{}.{}",
            digest.hex(),
            std::process::id(),
            WRITES.fetch_add(1, AtomicOrdering::Relaxed)
        ));
        let result = write_synced(&tmp, data).and_then(|()| {
            fs::rename(&tmp, &target).map_err(ContentError::io("rename into place", &target))
        });
        if result.is_err() {
            let _ = fs::remove_file(&tmp);
            // Another writer may have committed the same verified bytes.
            if target.is_file() {
                return Ok(());
            }
        }
        result?;
        sync_dir(&self.blobs_dir())
    }

    /// Reads the whole blob `digest`.
    pub fn read(&self, digest: &Digest) -> Result<Vec<u8>, ContentError> {
        let path = self.path(digest);
        fs::read(&path).map_err(|source| {
            if source.kind() == io::ErrorKind::NotFound {
                ContentError::Missing(digest.clone())
            } else {
                ContentError::Io {
                    op: "read",
                    path,
                    source,
                }
            }
        })
    }

    /// Removes the blob `digest` if present.
    pub fn remove(&self, digest: &Digest) -> Result<(), ContentError> {
        let path = self.path(digest);
        match fs::remove_file(&path) {
            Err(err) if err.kind() != io::ErrorKind::NotFound => Err(ContentError::Io {
                op: "remove",
                path,
                source: err,
            }),
            _ => Ok(()),
        }
    }

    /// Every blob present, with its size in bytes.
    pub fn list(&self) -> Result<Vec<(Digest, u64)>, ContentError> {
        let dir = self.blobs_dir();
        let mut blobs = Vec::new();
        for entry in fs::read_dir(&dir).map_err(ContentError::io("read", &dir))? {
            let entry = entry.map_err(ContentError::io("read", &dir))?;
            let name = entry.file_name();
            let Some(digest) = name
                .to_str()
                .and_then(|hex| format!("sha256:{hex}").parse().ok())
            else {
                continue;
            };
            let len = entry.metadata().map(|m| m.len()).unwrap_or(0);
            blobs.push((digest, len));
        }
        Ok(blobs)
    }
}

fn write_synced(path: &Path, data: &[u8]) -> Result<(), ContentError> {
    let mut file: File = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(ContentError::io("create", path))?;
    file.write_all(data)
        .map_err(ContentError::io("write", path))?;
    file.sync_all().map_err(ContentError::io("sync", path))
}

/// Makes a rename inside `dir` durable.
pub(crate) fn sync_dir(dir: &Path) -> Result<(), ContentError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(ContentError::io("sync directory", dir))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_written_blob_reads_back_and_lists() {
        let dir = tempfile::tempdir().unwrap();
        let store = ContentStore::open(dir.path()).unwrap();
        let digest = Digest::sha256_of(b"config");
        store.write(&digest, b"config").unwrap();
        assert!(store.contains(&digest));
        assert_eq!(store.read(&digest).unwrap(), b"config");
        assert_eq!(store.list().unwrap(), vec![(digest.clone(), 6)]);
        store.write(&digest, b"config").unwrap();
        store.remove(&digest).unwrap();
        assert!(matches!(store.read(&digest), Err(ContentError::Missing(_))));
    }

    #[test]
    fn a_blob_that_does_not_match_its_digest_is_not_stored() {
        let dir = tempfile::tempdir().unwrap();
        let store = ContentStore::open(dir.path()).unwrap();
        let digest = Digest::sha256_of(b"good");
        let err = store.write(&digest, b"evil").unwrap_err();
        assert!(matches!(err, ContentError::DigestMismatch { .. }), "{err}");
        assert!(!store.contains(&digest));
        assert!(store.list().unwrap().is_empty());
    }

    #[test]
    fn concurrent_writers_of_one_blob_all_succeed() {
        let dir = tempfile::tempdir().unwrap();
        let store = ContentStore::open(dir.path()).unwrap();
        let data = vec![7u8; 4 << 20];
        let digest = Digest::sha256_of(&data);
        std::thread::scope(|scope| {
            let writers: Vec<_> = (0..8)
                .map(|_| scope.spawn(|| store.write(&digest, &data)))
                .collect();
            for writer in writers {
                writer.join().unwrap().unwrap();
            }
        });
        assert_eq!(store.read(&digest).unwrap(), data);
        let ingest: Vec<_> = fs::read_dir(dir.path().join("ingest")).unwrap().collect();
        assert!(ingest.is_empty(), "{ingest:?}");
    }

    #[test]
    fn unfinished_writes_are_dropped_on_open() {
        let dir = tempfile::tempdir().unwrap();
        ContentStore::open(dir.path()).unwrap();
        let leftover = dir.path().join("ingest").join("abc.1");
        fs::write(&leftover, b"half").unwrap();
        ContentStore::open(dir.path()).unwrap();
        assert!(!leftover.exists());
    }
}
