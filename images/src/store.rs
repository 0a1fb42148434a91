//! The image store: the one entry point the CRI service and the runtime use.
//! It owns the metadata, the content store, the snapshots and the registry
//! client, and keeps an in-memory copy of the image list so reads
//! (ListImages, ImageStatus) never touch the disk.

use std::collections::{HashMap, HashSet};
use std::fs::{self, File};
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};

use nix::fcntl::{Flock, FlockArg};
use oci_spec::image::ImageConfiguration;

use crate::content::ContentStore;
use crate::digest::Digest;
use crate::distribution::{Credentials, RegistryClient};
use crate::error::ImageError;
use crate::gc::{FsStats, GcPolicy, StatvfsStats};
use crate::locks::KeyedLocks;
use crate::metadata::{ImageRecord, Metadata, SnapshotKind};
use crate::overlay::{KernelMounter, Mounter};
use crate::platform::PlatformMatcher;
use crate::progress::PullProgress;
use crate::pull::PullOutcome;
use crate::reference::Reference;
use crate::registries::RegistriesConfig;
use crate::snapshots::{Rootfs, Snapshots};

/// How to open an [`ImageStore`].
#[derive(Debug, Clone)]
pub struct StoreConfig {
    /// The store's directory (`<data-dir>/agent/image-store`).
    pub root: PathBuf,
    /// Mirrors, credentials and TLS per registry (`registries.yaml`).
    pub registries: RegistriesConfig,
    /// Which platforms this node runs, in preference order.
    pub platforms: PlatformMatcher,
    /// When unused images are garbage-collected.
    pub gc: GcPolicy,
    /// Layers fetched at once per pull (containerd's default is 3).
    pub max_concurrent_downloads: usize,
    /// The OS seam for overlay mounts.
    pub mounter: Arc<dyn Mounter>,
    /// The OS seam for filesystem capacity.
    pub fs_stats: Arc<dyn FsStats>,
}

impl StoreConfig {
    /// Defaults for a store at `root`: no registries config, this host's
    /// platform (then `wasi/wasm`), kubelet's GC thresholds, the real kernel.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self {
            root: root.into(),
            registries: RegistriesConfig::default(),
            platforms: PlatformMatcher::node(),
            gc: GcPolicy::default(),
            max_concurrent_downloads: 3,
            mounter: Arc::new(KernelMounter),
            fs_stats: Arc::new(StatvfsStats),
        }
    }
}

/// Images on this node. Cheap to clone.
#[derive(Debug, Clone)]
pub struct ImageStore {
    inner: Arc<Inner>,
}

#[derive(Debug)]
pub(crate) struct Inner {
    pub(crate) root: PathBuf,
    pub(crate) config: StoreConfig,
    pub(crate) meta: Arc<Metadata>,
    pub(crate) content: ContentStore,
    pub(crate) snapshots: Snapshots,
    pub(crate) client: RegistryClient,
    pub(crate) layer_locks: Arc<KeyedLocks>,
    /// Layers a pull has ensured but not yet recorded in an image: removal
    /// and GC must not take them away in between.
    claims: Mutex<HashMap<Digest, usize>>,
    /// Serializes changes to the image list.
    pub(crate) write_lock: tokio::sync::Mutex<()>,
    images: RwLock<Arc<Vec<ImageRecord>>>,
    _lock: Flock<File>,
}

/// A layer held by an unfinished pull (see [`Inner::claim`]).
#[derive(Debug)]
pub(crate) struct LayerClaim {
    inner: Arc<Inner>,
    diff_id: Digest,
}

impl Drop for LayerClaim {
    fn drop(&mut self) {
        let mut claims = self.inner.claims.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(count) = claims.get_mut(&self.diff_id) {
            *count -= 1;
            if *count == 0 {
                claims.remove(&self.diff_id);
            }
        }
    }
}

/// The store's disk usage, as CRI ImageFsInfo reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FsUsage {
    /// Where the image filesystem lives.
    pub mountpoint: PathBuf,
    /// Bytes used by layers, container layers and blobs.
    pub used_bytes: u64,
    /// Inodes used by them.
    pub inodes_used: u64,
}

impl ImageStore {
    /// Opens (creating) the store, takes its lock, and cleans up whatever a
    /// crash left behind.
    pub async fn open(config: StoreConfig) -> Result<Self, ImageError> {
        tokio::task::spawn_blocking(move || Self::open_blocking(config))
            .await
            .map_err(|e| ImageError::Task(e.to_string()))?
    }

    fn open_blocking(config: StoreConfig) -> Result<Self, ImageError> {
        let root = config.root.clone();
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&root)
            .map_err(ImageError::io("create directory", &root))?;
        let lock_path = root.join("lock");
        let lock_file = File::create(&lock_path).map_err(ImageError::io("create", &lock_path))?;
        let lock = Flock::lock(lock_file, FlockArg::LockExclusiveNonblock)
            .map_err(|_| ImageError::Locked(root.clone()))?;
        let meta = Arc::new(Metadata::open(&root.join("metadata.db"))?);
        let content = ContentStore::open(&root.join("content"))?;
        let snapshots = Snapshots::open(
            &root.join("snapshots"),
            meta.clone(),
            config.mounter.clone(),
        )?;
        let client = RegistryClient::new(config.registries.clone(), config.platforms.clone())?;
        let images = Arc::new(meta.images()?);
        tracing::info!(root = %root.display(), images = images.len(), "image store open");
        Ok(Self {
            inner: Arc::new(Inner {
                root,
                config,
                meta,
                content,
                snapshots,
                client,
                layer_locks: Arc::default(),
                claims: Mutex::default(),
                write_lock: tokio::sync::Mutex::new(()),
                images: RwLock::new(images),
                _lock: lock,
            }),
        })
    }

    pub(crate) fn inner(&self) -> &Arc<Inner> {
        &self.inner
    }

    /// The store's directory.
    pub fn root(&self) -> &Path {
        &self.inner.root
    }

    /// Pulls `reference` (a tag or digest reference, normalized as docker does).
    pub async fn pull(
        &self,
        reference: &str,
        credentials: Option<&Credentials>,
    ) -> Result<PullOutcome, ImageError> {
        self.pull_with_progress(reference, credentials, Arc::new(PullProgress::new()))
            .await
    }

    /// Pulls `reference`, reporting progress into `progress`.
    pub async fn pull_with_progress(
        &self,
        reference: &str,
        credentials: Option<&Credentials>,
        progress: Arc<PullProgress>,
    ) -> Result<PullOutcome, ImageError> {
        let reference: Reference = reference.parse()?;
        let result = self
            .inner
            .pull(&reference, credentials, progress.clone())
            .await;
        progress.finish();
        if let Err(err) = &result {
            tracing::warn!(image = %reference, error = %err, "pull failed");
        }
        result
    }

    /// Every image.
    pub fn list(&self) -> Arc<Vec<ImageRecord>> {
        self.inner.images()
    }

    /// The image `query` names: an image ID (`sha256:…`, or a unique prefix
    /// of its hex), or a reference (tag or repo digest, normalized).
    pub fn get(&self, query: &str) -> Option<ImageRecord> {
        self.inner.find(query)
    }

    /// The image config of image `id`.
    pub fn image_config(&self, id: &Digest) -> Result<ImageConfiguration, ImageError> {
        let bytes = self.inner.content.read(id)?;
        crate::config::parse_image_config(&bytes).map_err(|e| ImageError::InvalidImage {
            image: id.to_string(),
            reason: format!("stored config: {e}"),
        })
    }

    /// A stored blob (manifest, index or config) by digest.
    pub fn read_blob(&self, digest: &Digest) -> Result<Vec<u8>, ImageError> {
        Ok(self.inner.content.read(digest)?)
    }

    /// Removes the image `query` names, with all its names, and the layers no
    /// other image uses. Refused while a container uses the image.
    pub async fn remove(&self, query: &str) -> Result<ImageRecord, ImageError> {
        let _write = self.inner.write_lock.lock().await;
        let image = self
            .inner
            .find(query)
            .ok_or_else(|| ImageError::NotFound(query.into()))?;
        if let Some(container) = self
            .inner
            .snapshots
            .list()?
            .into_iter()
            .find(|s| s.kind == SnapshotKind::Container && s.image.as_ref() == Some(&image.id))
        {
            return Err(ImageError::InUse {
                image: image.id,
                container: container.key,
            });
        }
        self.inner.meta.delete_image(&image.id)?;
        self.inner.reload()?;
        self.inner
            .remove_unused(&image.layers.iter().map(|l| l.diff_id.clone()).collect())
            .await?;
        tracing::info!(image = %image.id, names = ?image.names, "removed image");
        Ok(image)
    }

    /// The store's disk usage.
    pub fn fs_usage(&self) -> Result<FsUsage, ImageError> {
        self.inner.fs_usage()
    }

    /// Prepares a writable root filesystem named `key` (a container ID) over
    /// the image `query` names.
    pub async fn prepare_rootfs(&self, key: &str, query: &str) -> Result<Rootfs, ImageError> {
        let _write = self.inner.write_lock.lock().await;
        let image = self
            .inner
            .find(query)
            .ok_or_else(|| ImageError::NotFound(query.into()))?;
        let rootfs = self.inner.snapshots.prepare_rootfs(key, &image)?;
        self.inner.meta.touch_image(&image.id, unix_now())?;
        Ok(rootfs)
    }

    /// Mounts a prepared root filesystem at `target`.
    pub fn mount_rootfs(&self, rootfs: &Rootfs, target: &Path) -> Result<(), ImageError> {
        Ok(self.inner.snapshots.mount(rootfs, target)?)
    }

    /// Unmounts a root filesystem from `target`.
    pub fn unmount_rootfs(&self, target: &Path) -> Result<(), ImageError> {
        Ok(self.inner.snapshots.unmount(target)?)
    }

    /// Removes the writable layer `key` (unmount it first).
    pub async fn remove_rootfs(&self, key: &str) -> Result<(), ImageError> {
        let _write = self.inner.write_lock.lock().await;
        Ok(self.inner.snapshots.remove_rootfs(key)?)
    }

    /// The snapshot directories.
    pub fn snapshots(&self) -> &Snapshots {
        &self.inner.snapshots
    }
}

impl Inner {
    pub(crate) fn images(&self) -> Arc<Vec<ImageRecord>> {
        self.images
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Re-reads the image list after a change.
    pub(crate) fn reload(&self) -> Result<(), ImageError> {
        let images = Arc::new(self.meta.images()?);
        *self.images.write().unwrap_or_else(|p| p.into_inner()) = images;
        Ok(())
    }

    /// Stores an image record (moving its names from other images) and
    /// returns it as stored.
    pub(crate) async fn record_image(
        &self,
        record: ImageRecord,
    ) -> Result<ImageRecord, ImageError> {
        let _write = self.write_lock.lock().await;
        self.meta.put_image(&record)?;
        self.reload()?;
        self.images()
            .iter()
            .find(|i| i.id == record.id)
            .cloned()
            .ok_or_else(|| {
                ImageError::Task(format!("image {} vanished after recording", record.id))
            })
    }

    pub(crate) fn find(&self, query: &str) -> Option<ImageRecord> {
        let images = self.images();
        let hex = query.strip_prefix("sha256:").unwrap_or(query);
        if let Some(image) = images.iter().find(|i| hex.len() == 64 && i.id.hex() == hex) {
            return Some(image.clone());
        }
        if let Ok(reference) = query.parse::<Reference>() {
            let name = reference.to_string();
            if let Some(image) = images.iter().find(|i| i.names.contains(&name)) {
                return Some(image.clone());
            }
        }
        // A unique ID prefix, as docker and crictl accept (`crictl rmi 3f57d9`).
        let is_hex = hex.len() >= 4 && hex.bytes().all(|b| b.is_ascii_hexdigit());
        if is_hex {
            let mut matches = images.iter().filter(|i| i.id.hex().starts_with(hex));
            if let (Some(image), None) = (matches.next(), matches.next()) {
                return Some(image.clone());
            }
        }
        None
    }

    /// Keeps `diff_id` from removal until the returned claim is dropped.
    /// Call while holding the layer's lock.
    pub(crate) fn claim(self: &Arc<Self>, diff_id: &Digest) -> LayerClaim {
        *self
            .claims
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(diff_id.clone())
            .or_default() += 1;
        LayerClaim {
            inner: self.clone(),
            diff_id: diff_id.clone(),
        }
    }

    fn is_claimed(&self, diff_id: &Digest) -> bool {
        self.claims
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains_key(diff_id)
    }

    /// Removes those of `candidates` that no image uses and no pull claims,
    /// and every stored blob no image refers to. Returns the layers removed.
    pub(crate) async fn remove_unused(
        self: &Arc<Self>,
        candidates: &HashSet<Digest>,
    ) -> Result<Vec<Digest>, ImageError> {
        let mut removed = Vec::new();
        for diff_id in candidates {
            let _guard = self.layer_locks.lock(diff_id.hex()).await;
            let used = self
                .images()
                .iter()
                .any(|i| i.layers.iter().any(|l| &l.diff_id == diff_id));
            if used || self.is_claimed(diff_id) {
                continue;
            }
            let inner = self.clone();
            let layer = diff_id.clone();
            tokio::task::spawn_blocking(move || inner.snapshots.remove_layer(&layer))
                .await
                .map_err(|e| ImageError::Task(e.to_string()))??;
            tracing::debug!(layer = %diff_id, "removed unused layer");
            removed.push(diff_id.clone());
        }
        self.prune_content()?;
        Ok(removed)
    }

    fn prune_content(&self) -> Result<(), ImageError> {
        let images = self.images();
        let mut referenced: HashSet<Digest> = HashSet::new();
        for image in images.iter() {
            referenced.insert(image.id.clone());
            referenced.insert(image.manifest_digest.clone());
            for name in &image.names {
                if let Some(digest) = name.rsplit_once('@').and_then(|(_, d)| d.parse().ok()) {
                    referenced.insert(digest);
                }
            }
        }
        for (digest, _) in self.content.list()? {
            if !referenced.contains(&digest) {
                self.content.remove(&digest)?;
            }
        }
        Ok(())
    }

    pub(crate) fn fs_usage(&self) -> Result<FsUsage, ImageError> {
        let mut usage = FsUsage {
            mountpoint: self.root.join("snapshots"),
            used_bytes: 0,
            inodes_used: 0,
        };
        for snap in self.snapshots.list()? {
            let (bytes, inodes) = match snap.kind {
                SnapshotKind::Layer => (snap.disk_usage, snap.inodes),
                SnapshotKind::Container => match self.snapshots.rootfs_usage(&snap.key) {
                    Ok(u) => (u.bytes, u.inodes),
                    Err(err) => {
                        tracing::debug!(key = %snap.key, %err, "cannot measure container layer");
                        (0, 0)
                    }
                },
            };
            usage.used_bytes += bytes;
            usage.inodes_used += inodes;
        }
        for (_, size) in self.content.list()? {
            usage.used_bytes += size;
            usage.inodes_used += 1;
        }
        Ok(usage)
    }
}

/// Hands memory freed by a pull (stream and unpack buffers, per-thread
/// allocator arenas) back to the OS, so an idle node's RSS stays small.
pub(crate) fn release_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only walks the allocator's own free lists.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Seconds since the Unix epoch.
pub(crate) fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}
