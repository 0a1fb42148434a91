//! Integration tests of the image store against real registries (Debian's
//! docker-registry on 127.0.0.1, started by `skiff-tests`), real overlayfs
//! mounts and real SQLite files. They need root, as the store does.

mod bad_input;
mod gc;
mod import;
mod pull;
mod rootfs;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use skiff_images::registries::RegistriesConfig;
use skiff_images::{ImageStore, StoreConfig};
use skiff_tests::TestRegistries;
use tempfile::TempDir;

/// Registries, a scratch directory, and a store configured for them.
struct Env {
    regs: TestRegistries,
    dir: TempDir,
    store: ImageStore,
}

impl Env {
    async fn start() -> Env {
        let regs = TestRegistries::start().expect("start test registries");
        let dir = tempfile::tempdir().expect("tempdir");
        let store = open_store(&regs, &store_root(dir.path()), |_| {}).await;
        Env { regs, dir, store }
    }

    /// Drops the store and opens it again on the same directory.
    async fn reopen(self) -> Env {
        let Env { regs, dir, store } = self;
        drop(store);
        let store = open_store(&regs, &store_root(dir.path()), |_| {}).await;
        Env { regs, dir, store }
    }
}

fn store_root(dir: &Path) -> PathBuf {
    dir.join("image-store")
}

async fn open_store(
    regs: &TestRegistries,
    root: &Path,
    edit: impl FnOnce(&mut StoreConfig),
) -> ImageStore {
    let yaml = root.with_file_name("registries.yaml");
    regs.write_registries_yaml(&yaml)
        .expect("write registries.yaml");
    let mut config = StoreConfig::new(root);
    config.registries = RegistriesConfig::load(&yaml).expect("load registries.yaml");
    edit(&mut config);
    ImageStore::open(config).await.expect("open image store")
}

/// Snapshot directories currently on disk.
fn snapshot_dirs(store: &ImageStore) -> Vec<String> {
    let mut dirs: Vec<String> = std::fs::read_dir(store.root().join("snapshots"))
        .map(|entries| {
            entries
                .filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into())
                .collect()
        })
        .unwrap_or_default();
    dirs.sort();
    dirs
}

/// Digests as the harness names them, from the store's type.
fn harness_digest(digest: &skiff_images::digest::Digest) -> skiff_tests::oci::Digest {
    skiff_tests::oci::Digest::parse(&digest.to_string()).expect("digest")
}

/// Asserts the registry served each layer's blob exactly once.
fn assert_each_fetched_once<'a>(
    registry: &skiff_tests::TestRegistry,
    layers: impl IntoIterator<Item = &'a skiff_images::metadata::LayerRef>,
) {
    for layer in layers {
        let gets = registry
            .blob_get_count(&harness_digest(&layer.blob_digest))
            .unwrap();
        assert_eq!(gets, 1, "blob {} fetched {gets} times", layer.blob_digest);
    }
}

/// Shared between modules: a mounted rootfs that unmounts on drop.
struct Mounted {
    store: ImageStore,
    target: PathBuf,
}

impl Mounted {
    fn path(&self, inside: &str) -> PathBuf {
        self.target.join(inside.trim_start_matches('/'))
    }
}

impl Drop for Mounted {
    fn drop(&mut self) {
        let _ = self.store.unmount_rootfs(&self.target);
    }
}

/// Prepares and mounts a rootfs over `image` under `dir`.
async fn mount(store: &ImageStore, dir: &Path, key: &str, image: &str) -> Mounted {
    let rootfs = store
        .prepare_rootfs(key, image)
        .await
        .expect("prepare rootfs");
    let target = dir.join(format!("mnt-{key}"));
    std::fs::create_dir_all(&target).unwrap();
    store.mount_rootfs(&rootfs, &target).expect("mount rootfs");
    Mounted {
        store: store.clone(),
        target,
    }
}

#[allow(dead_code)]
fn _assert_send(store: Arc<ImageStore>) -> impl Send {
    store
}
