//! Snapshots: one directory per unpacked layer, shared by every image that
//! has the layer, and one writable directory per container, mounted together
//! as the container's overlayfs root.
//!
//! Directories are named by short numeric IDs (`snapshots/<id>/fs`) so that
//! an overlay of many layers still fits the mount options. A snapshot's row
//! in the metadata is written before its directory and marked ready after
//! it is complete; on open, anything not ready is a crash leftover and goes.

use std::collections::HashSet;
use std::fs;
use std::io;
use std::os::unix::fs::{DirBuilderExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::digest::Digest;
use crate::metadata::{ImageRecord, Metadata, MetadataError, SnapshotKind, SnapshotRecord};
use crate::overlay::{MountError, Mounter, OverlaySpec};

/// What failed while managing snapshots.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    /// The metadata database failed.
    #[error(transparent)]
    Metadata(#[from] MetadataError),
    /// Mounting or unmounting failed.
    #[error(transparent)]
    Mount(#[from] MountError),
    /// A filesystem operation failed.
    #[error("snapshots: {op} {path}: {source}")]
    Io {
        /// What was being done.
        op: &'static str,
        /// On which path.
        path: PathBuf,
        /// The OS error.
        source: io::Error,
    },
    /// A container snapshot key that is already taken.
    #[error("a container snapshot named {0:?} already exists")]
    AlreadyExists(String),
    /// No snapshot has that key.
    #[error("no snapshot named {0:?}")]
    NotFound(String),
    /// An image whose layer snapshots are not all present.
    #[error("layer {diff_id} of image {image} is not unpacked")]
    MissingLayer {
        /// The image.
        image: Digest,
        /// Its missing layer.
        diff_id: Digest,
    },
}

fn io_err<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> SnapshotError + 'a {
    move |source| SnapshotError::Io {
        op,
        path: path.to_path_buf(),
        source,
    }
}

/// Disk space a snapshot uses.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    /// Bytes in its files (rounded to blocks as `du` counts them).
    pub bytes: u64,
    /// Inodes.
    pub inodes: u64,
}

/// A container's root filesystem: its overlay and where its writable layer lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rootfs {
    /// The snapshot key the caller chose (a container ID).
    pub key: String,
    /// The image it was prepared from.
    pub image: Digest,
    /// The overlay to mount.
    pub overlay: OverlaySpec,
}

/// The snapshot directories and their records.
#[derive(Debug)]
pub struct Snapshots {
    root: PathBuf,
    meta: Arc<Metadata>,
    mounter: Arc<dyn Mounter>,
}

impl Snapshots {
    /// Opens the snapshot directory `root`, removing crash leftovers: rows
    /// never marked ready and directories without a row.
    pub fn open(
        root: &Path,
        meta: Arc<Metadata>,
        mounter: Arc<dyn Mounter>,
    ) -> Result<Self, SnapshotError> {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(root)
            .map_err(io_err("create directory", root))?;
        let snapshots = Self {
            root: root.to_path_buf(),
            meta,
            mounter,
        };
        snapshots.remove_leftovers()?;
        Ok(snapshots)
    }

    fn remove_leftovers(&self) -> Result<(), SnapshotError> {
        let mut known = HashSet::new();
        for snap in self.meta.snapshots()? {
            if snap.ready {
                known.insert(snap.id.to_string());
            } else {
                tracing::info!(snapshot = snap.id, key = %snap.key, "removing unfinished snapshot");
                self.remove_dir(snap.id)?;
                self.meta.delete_snapshot(snap.id)?;
            }
        }
        for entry in fs::read_dir(&self.root).map_err(io_err("read", &self.root))? {
            let entry = entry.map_err(io_err("read", &self.root))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if !known.contains(&name) {
                tracing::info!(dir = %entry.path().display(), "removing orphaned snapshot directory");
                remove_tree(&entry.path())?;
            }
        }
        Ok(())
    }

    fn dir(&self, id: i64) -> PathBuf {
        self.root.join(id.to_string())
    }

    /// The directory holding a snapshot's files (a layer's content, or a
    /// container's upper dir).
    pub fn fs_dir(&self, id: i64) -> PathBuf {
        self.dir(id).join("fs")
    }

    fn remove_dir(&self, id: i64) -> Result<(), SnapshotError> {
        remove_tree(&self.dir(id))
    }

    /// The ready layer snapshot for `diff_id`, if the layer is unpacked.
    pub fn layer(&self, diff_id: &Digest) -> Result<Option<SnapshotRecord>, SnapshotError> {
        Ok(self
            .meta
            .snapshot(&diff_id.to_string())?
            .filter(|s| s.ready))
    }

    /// Creates the snapshot for layer `diff_id` by running `fill` on its empty
    /// directory. The snapshot becomes visible only if `fill` succeeds and
    /// reports the usage; on error the directory is removed.
    pub fn create_layer<E: From<SnapshotError>>(
        &self,
        diff_id: &Digest,
        fill: impl FnOnce(&Path) -> Result<Usage, E>,
    ) -> Result<SnapshotRecord, E> {
        let id = self
            .meta
            .begin_snapshot(SnapshotKind::Layer, &diff_id.to_string(), None)
            .map_err(|e| E::from(SnapshotError::from(e)))?;
        let fs_dir = self.fs_dir(id);
        let filled = fs::DirBuilder::new()
            .recursive(true)
            .mode(0o755)
            .create(&fs_dir)
            .map_err(|e| E::from(io_err("create directory", &fs_dir)(e)))
            .and_then(|()| fill(&fs_dir));
        match filled {
            Ok(usage) => {
                sync_tree_root(&self.dir(id));
                self.meta
                    .finish_snapshot(id, usage.bytes, usage.inodes)
                    .map_err(|e| E::from(e.into()))?;
                Ok(SnapshotRecord {
                    id,
                    kind: SnapshotKind::Layer,
                    key: diff_id.to_string(),
                    image: None,
                    ready: true,
                    disk_usage: usage.bytes,
                    inodes: usage.inodes,
                })
            }
            Err(err) => {
                if let Err(cleanup) = self
                    .remove_dir(id)
                    .and_then(|()| Ok(self.meta.delete_snapshot(id)?))
                {
                    tracing::warn!(snapshot = id, %cleanup, "cannot clean up failed layer snapshot");
                }
                Err(err)
            }
        }
    }

    /// Removes the snapshot of layer `diff_id` (the caller checked no image uses it).
    pub fn remove_layer(&self, diff_id: &Digest) -> Result<(), SnapshotError> {
        if let Some(snap) = self.meta.snapshot(&diff_id.to_string())? {
            self.remove_dir(snap.id)?;
            self.meta.delete_snapshot(snap.id)?;
        }
        Ok(())
    }

    /// Every snapshot record.
    pub fn list(&self) -> Result<Vec<SnapshotRecord>, SnapshotError> {
        Ok(self.meta.snapshots()?)
    }

    /// Prepares a writable root filesystem for a container over `image`:
    /// a fresh upper and work directory on top of the image's layers.
    pub fn prepare_rootfs(&self, key: &str, image: &ImageRecord) -> Result<Rootfs, SnapshotError> {
        if self.meta.snapshot(key)?.is_some() {
            return Err(SnapshotError::AlreadyExists(key.to_string()));
        }
        let lower = self.lower_dirs(image)?;
        let id = self
            .meta
            .begin_snapshot(SnapshotKind::Container, key, Some(&image.id))?;
        let created = (|| {
            for dir in [self.fs_dir(id), self.dir(id).join("work")] {
                fs::DirBuilder::new()
                    .recursive(true)
                    .mode(0o755)
                    .create(&dir)
                    .map_err(io_err("create directory", &dir))?;
            }
            self.meta.finish_snapshot(id, 0, 0)?;
            Ok(())
        })();
        if let Err(err) = created {
            let _ = self.remove_dir(id);
            let _ = self.meta.delete_snapshot(id);
            return Err(err);
        }
        Ok(self.rootfs_of(id, key, image.id.clone(), lower))
    }

    fn lower_dirs(&self, image: &ImageRecord) -> Result<Vec<PathBuf>, SnapshotError> {
        let mut lower = Vec::with_capacity(image.layers.len());
        for layer in image.layers.iter().rev() {
            let snap = self
                .layer(&layer.diff_id)?
                .ok_or_else(|| SnapshotError::MissingLayer {
                    image: image.id.clone(),
                    diff_id: layer.diff_id.clone(),
                })?;
            lower.push(self.fs_dir(snap.id));
        }
        Ok(lower)
    }

    fn rootfs_of(&self, id: i64, key: &str, image: Digest, lower: Vec<PathBuf>) -> Rootfs {
        Rootfs {
            key: key.to_string(),
            image,
            overlay: OverlaySpec {
                lower,
                upper: Some(self.fs_dir(id)),
                work: Some(self.dir(id).join("work")),
            },
        }
    }

    /// The container root filesystem `key`, as prepared earlier.
    pub fn rootfs(&self, key: &str, image: &ImageRecord) -> Result<Rootfs, SnapshotError> {
        let snap = self
            .meta
            .snapshot(key)?
            .filter(|s| s.kind == SnapshotKind::Container)
            .ok_or_else(|| SnapshotError::NotFound(key.to_string()))?;
        Ok(self.rootfs_of(snap.id, key, image.id.clone(), self.lower_dirs(image)?))
    }

    /// Mounts a prepared root filesystem at `target`.
    pub fn mount(&self, rootfs: &Rootfs, target: &Path) -> Result<(), SnapshotError> {
        Ok(self.mounter.mount_overlay(&rootfs.overlay, target)?)
    }

    /// Unmounts a root filesystem mounted at `target`.
    pub fn unmount(&self, target: &Path) -> Result<(), SnapshotError> {
        Ok(self.mounter.unmount(target)?)
    }

    /// Removes a container's writable layer (unmount it first).
    pub fn remove_rootfs(&self, key: &str) -> Result<(), SnapshotError> {
        let snap = self
            .meta
            .snapshot(key)?
            .filter(|s| s.kind == SnapshotKind::Container)
            .ok_or_else(|| SnapshotError::NotFound(key.to_string()))?;
        self.remove_dir(snap.id)?;
        Ok(self.meta.delete_snapshot(snap.id)?)
    }

    /// What a container's writable layer uses now.
    pub fn rootfs_usage(&self, key: &str) -> Result<Usage, SnapshotError> {
        let snap = self
            .meta
            .snapshot(key)?
            .ok_or_else(|| SnapshotError::NotFound(key.to_string()))?;
        disk_usage(&self.fs_dir(snap.id))
    }
}

/// Walks `dir` counting blocks and inodes as `du` does (hard links once).
pub fn disk_usage(dir: &Path) -> Result<Usage, SnapshotError> {
    let mut usage = Usage::default();
    let mut seen = HashSet::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(path) = stack.pop() {
        let meta = fs::symlink_metadata(&path).map_err(io_err("stat", &path))?;
        if meta.nlink() > 1 && !meta.is_dir() && !seen.insert((meta.dev(), meta.ino())) {
            continue;
        }
        usage.inodes += 1;
        usage.bytes += meta.blocks() * 512;
        if meta.is_dir() {
            for entry in fs::read_dir(&path).map_err(io_err("read", &path))? {
                stack.push(entry.map_err(io_err("read", &path))?.path());
            }
        }
    }
    Ok(usage)
}

fn remove_tree(path: &Path) -> Result<(), SnapshotError> {
    match fs::remove_dir_all(path) {
        Err(err) if err.kind() != io::ErrorKind::NotFound => Err(SnapshotError::Io {
            op: "remove",
            path: path.to_path_buf(),
            source: err,
        }),
        _ => Ok(()),
    }
}

/// Flushes a finished snapshot to disk before it is marked ready, so a power
/// cut cannot leave a ready row over half-written files.
fn sync_tree_root(dir: &Path) {
    // syncfs flushes the whole filesystem once, cheaper than fsync per file.
    if let Ok(file) = fs::File::open(dir) {
        let _ = nix::unistd::syncfs(std::os::fd::AsRawFd::as_raw_fd(&file));
    }
}
