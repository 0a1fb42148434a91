//! The node runtime role, `skiff runtime`: opens the image store, imports
//! air-gap images, collects unused images in the background, and serves the
//! CRI socket until shutdown. `skiff agent` embeds the same pieces.

use std::collections::HashSet;
use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use skiff_images::gc::GcPolicy;
use skiff_images::registries::{RegistriesConfig, RegistriesError};
use skiff_images::{ImageError, ImageStore, StoreConfig};
use tokio_util::sync::CancellationToken;

use skiff_runtime::network::{BridgeConfig, BridgeNetwork, NetworkError};
use skiff_runtime::{Runtime, RuntimeConfig, RuntimeError};

use crate::streaming::{StreamingConfig, StreamingServer};
use crate::streaming_backend::RuntimeStreams;
use crate::{CriService, ServeError};

/// How often unused images are considered for collection (kubelet's period).
pub const IMAGE_GC_PERIOD: Duration = Duration::from_secs(300);

/// Where the node runtime keeps things and how it behaves.
#[derive(Debug, Clone)]
pub struct NodeConfig {
    /// Skiff's data directory (`/var/lib/skiff`).
    pub data_dir: PathBuf,
    /// The CRI socket (`/run/skiff/cri.sock`).
    pub cri_socket: PathBuf,
    /// `registries.yaml` (`/etc/skiff/registries.yaml`); missing is fine.
    pub registries: PathBuf,
    /// Image garbage-collection thresholds.
    pub gc: GcPolicy,
    /// Volatile state: pod directories, bundles, shim sockets (`/run/skiff`).
    pub run_dir: PathBuf,
    /// The pod bridge (`skiff0`).
    pub bridge: String,
    /// The node's pod CIDR, if known at start (UpdateRuntimeConfig may set it).
    pub pod_cidr: Option<ipnet::IpNet>,
    /// Where the exec/attach/port-forward streaming server listens.
    pub streaming_address: SocketAddr,
    /// The binary re-executed as the per-pod shim (this skiff).
    pub shim_binary: PathBuf,
}

impl NodeConfig {
    /// The image store's directory: `<data-dir>/agent/image-store`.
    pub fn image_store_dir(&self) -> PathBuf {
        self.data_dir.join("agent").join("image-store")
    }

    /// The air-gap image directory: `<data-dir>/agent/images`.
    pub fn airgap_dir(&self) -> PathBuf {
        self.data_dir.join("agent").join("images")
    }
}

/// Why the node runtime stopped.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    /// `registries.yaml` is unusable.
    #[error(transparent)]
    Registries(#[from] RegistriesError),
    /// The image store could not be opened.
    #[error(transparent)]
    Images(#[from] ImageError),
    /// The CRI socket could not be served.
    #[error(transparent)]
    Serve(#[from] ServeError),
    /// The pod network could not be set up.
    #[error(transparent)]
    Network(#[from] NetworkError),
    /// The node runtime could not start.
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
    /// The streaming server could not start.
    #[error(transparent)]
    Streaming(#[from] crate::streaming::ServeError),
}

/// Opens the image store as the node runtime configures it.
pub async fn open_image_store(config: &NodeConfig) -> Result<ImageStore, NodeError> {
    let mut store = StoreConfig::new(config.image_store_dir());
    store.registries = RegistriesConfig::load(&config.registries)?;
    store.gc = config.gc.clone();
    Ok(ImageStore::open(store).await?)
}

/// Opens the node runtime over `images`: the pod network and the records
/// of sandboxes and containers (finding the shims that kept running).
pub async fn open_runtime(config: &NodeConfig, images: ImageStore) -> Result<Runtime, NodeError> {
    let network = Arc::new(bridge_network(config)?);
    let runtime = RuntimeConfig {
        data_dir: config.data_dir.clone(),
        run_dir: config.run_dir.clone(),
        shim_binary: config.shim_binary.clone(),
        seccomp_profile_root: config.data_dir.join("agent/seccomp"),
        network,
    };
    Ok(Runtime::open(runtime, images).await?)
}

/// The node's pod network: its bridge, address bookkeeping and nftables
/// table.
pub fn bridge_network(config: &NodeConfig) -> Result<BridgeNetwork, NetworkError> {
    let mut bridge = BridgeConfig::new(
        config
            .data_dir
            .join("agent/runtime/ipam")
            .join(&config.bridge),
    );
    bridge.bridge = config.bridge.clone();
    bridge.pod_cidr = config.pod_cidr;
    // One nftables table per bridge, so several runtimes (tests, or nodes
    // simulated on one machine) never touch each other's rules.
    if config.bridge != "skiff0" {
        bridge.nft_table = format!("skiff_{}", config.bridge.replace(['-', '.'], "_"));
    }
    BridgeNetwork::new(bridge)
}

/// Runs the node runtime until `shutdown` completes. Containers and their
/// shims keep running after it stops.
pub async fn run(config: NodeConfig, shutdown: impl Future<Output = ()>) -> Result<(), NodeError> {
    let store = open_image_store(&config).await?;
    import_airgap_images(&store, &config.airgap_dir()).await;
    let runtime = open_runtime(&config, store.clone()).await?;
    let streaming = StreamingServer::bind(
        StreamingConfig {
            address: config.streaming_address,
            ..StreamingConfig::default()
        },
        Arc::new(RuntimeStreams::new(runtime.clone())),
    )
    .await?;
    tracing::info!(address = %streaming.local_addr(), "streaming server listening");
    let service = CriService::with_runtime(runtime.clone(), streaming.urls());
    let stop = CancellationToken::new();
    let gc = tokio::spawn(collect_images_periodically(store.clone(), stop.clone()));
    let streams = tokio::spawn(streaming.serve(stop.clone()));
    let served = crate::server::serve(&config.cri_socket, service, shutdown).await;
    stop.cancel();
    runtime.close();
    let _ = tokio::join!(gc, streams);
    Ok(served?)
}

/// Imports the air-gap image archives in `dir` (k3s's
/// `agent/images/`), logging what came in and each archive skipped.
pub async fn import_airgap_images(store: &ImageStore, dir: &Path) {
    let report = store.import_dir(dir).await;
    let images: usize = report.imported.iter().map(|(_, images)| images.len()).sum();
    if images > 0 || !report.failed.is_empty() {
        tracing::info!(
            dir = %dir.display(),
            archives = report.imported.len(),
            images,
            failed = report.failed.len(),
            "imported air-gap images"
        );
    }
    for (archive, err) in &report.failed {
        tracing::warn!(archive = %archive.display(), %err, "air-gap image archive skipped");
    }
}

/// kubelet's image garbage collection, every [`IMAGE_GC_PERIOD`] until
/// `stop`.
pub async fn collect_images_periodically(store: ImageStore, stop: CancellationToken) {
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(IMAGE_GC_PERIOD) => {}
        }
        match store.garbage_collect(&HashSet::new()).await {
            Ok(report) if !report.images_removed.is_empty() || report.layers_removed > 0 => {
                tracing::info!(
                    used_percent = report.used_percent_before,
                    images = report.images_removed.len(),
                    layers = report.layers_removed,
                    "image garbage collection"
                );
            }
            Ok(_) => {}
            Err(err) => tracing::warn!(error = %err, "image garbage collection failed"),
        }
    }
}
