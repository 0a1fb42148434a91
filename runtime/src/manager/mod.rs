//! [`Runtime`]: the node runtime manager behind CRI's RuntimeService.
//!
//! It keeps a durable record of every sandbox and container (so a
//! restarted runtime reports exactly what it reported before), drives one
//! shim per pod, and turns shim events into record updates and CRI events.
//! Reads (List*, *Status) come from memory; every change is written to disk
//! before it is visible.

mod container;
mod events;
mod exec;
mod recover;
mod sandbox;
mod stats;

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use k8s_cri::v1 as cri;
use skiff_images::ImageStore;
use skiff_shims::client::ShimClient;
use tokio::sync::{Notify, broadcast};
use tokio_util::sync::CancellationToken;

use crate::cgroups::CgroupReader;
use crate::config::RuntimeConfig;
use crate::error::RuntimeError;
use crate::ids::{Lookup, find_by_prefix};
use crate::records::{ContainerRecord, SandboxRecord};
use crate::store::RecordStore;

pub use exec::{ExecOutput, ExecSession};

/// Handlers a sandbox may be created with (`""` is the default runtime).
pub const DEFAULT_HANDLERS: [&str; 3] = ["", "runc", "skiff"];

/// The RuntimeClass handler of Wasm pods. Which engine runs a container is
/// decided per container from its image (see [`crate::wasm`]), so this
/// handler behaves as the default one: Wasm images run in wasmtime and
/// Linux images as ordinary OCI containers.
pub const WASM_HANDLER: &str = "wasmtime";

/// The node runtime. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Runtime {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    config: RuntimeConfig,
    images: ImageStore,
    sandbox_store: RecordStore<SandboxRecord>,
    container_store: RecordStore<ContainerRecord>,
    state: Mutex<State>,
    /// Serializes lifecycle operations per sandbox or container ID.
    locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    /// One client and event pump per pod with a live shim.
    shims: Mutex<HashMap<String, ShimHandle>>,
    /// Woken whenever a container exits.
    exits: Notify,
    events: broadcast::Sender<cri::ContainerEventResponse>,
    /// Held from a container's state change to its event, so that
    /// subscribers see events in the order of the changes (Started before
    /// Stopped when an exit races StartContainer).
    event_order: Mutex<()>,
    cgroups: CgroupReader,
    /// The pod CIDR last set through UpdateRuntimeConfig.
    shutdown: CancellationToken,
}

/// Whether a record change waits for the disk.
#[derive(Debug, Clone, Copy)]
enum Durability {
    Synced,
    Unsynced,
}

#[derive(Debug, Default)]
struct State {
    sandboxes: BTreeMap<String, SandboxRecord>,
    containers: BTreeMap<String, ContainerRecord>,
    /// Reserved sandbox names → ID.
    sandbox_names: HashMap<String, String>,
    /// Reserved container names → ID.
    container_names: HashMap<String, String>,
}

#[derive(Debug)]
struct ShimHandle {
    client: ShimClient,
    stop: CancellationToken,
}

impl Runtime {
    /// Opens the runtime: loads records, finds the shims of pods that were
    /// running (they survive runtime restarts) and reconciles what happened
    /// while it was away.
    pub async fn open(config: RuntimeConfig, images: ImageStore) -> Result<Self, RuntimeError> {
        let records = config.records_dir();
        let sandbox_store = RecordStore::open(&records.join("sandboxes"))?;
        let container_store = RecordStore::open(&records.join("containers"))?;
        let (events, _) = broadcast::channel(256);
        let runtime = Self {
            inner: Arc::new(Inner {
                config,
                images,
                sandbox_store,
                container_store,
                state: Mutex::new(State::default()),
                locks: Mutex::default(),
                shims: Mutex::default(),
                event_order: Mutex::default(),
                exits: Notify::new(),
                events,
                cgroups: CgroupReader::new(),
                shutdown: CancellationToken::new(),
            }),
        };
        runtime.recover().await?;
        Ok(runtime)
    }

    /// The image store containers are created from.
    pub fn images(&self) -> &ImageStore {
        &self.inner.images
    }

    /// The runtime's configuration.
    pub fn config(&self) -> &RuntimeConfig {
        &self.inner.config
    }

    /// Stops background work (event pumps). Shims and containers keep running.
    pub fn close(&self) {
        self.inner.shutdown.cancel();
    }

    /// Subscribes to container events (GetContainerEvents).
    pub fn subscribe(&self) -> broadcast::Receiver<cri::ContainerEventResponse> {
        self.inner.events.subscribe()
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.inner.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Takes the lifecycle lock of `id`.
    async fn lock(&self, id: &str) -> tokio::sync::OwnedMutexGuard<()> {
        let mutex = {
            let mut locks = self.inner.locks.lock().unwrap_or_else(|p| p.into_inner());
            locks.entry(id.to_string()).or_default().clone()
        };
        mutex.lock_owned().await
    }

    fn forget_lock(&self, id: &str) {
        let mut locks = self.inner.locks.lock().unwrap_or_else(|p| p.into_inner());
        if locks.get(id).is_some_and(|m| Arc::strong_count(m) == 1) {
            locks.remove(id);
        }
    }

    /// The full sandbox ID that `id` (or a unique prefix of it) names.
    pub fn resolve_sandbox(&self, id: &str) -> Result<String, RuntimeError> {
        let state = self.state();
        match find_by_prefix(state.sandboxes.keys().map(String::as_str), id) {
            Lookup::Found(found) => Ok(found.to_string()),
            Lookup::Missing => Err(RuntimeError::sandbox_not_found(id)),
            Lookup::Ambiguous => Err(RuntimeError::InvalidArgument(format!(
                "pod sandbox ID prefix {id:?} is ambiguous"
            ))),
        }
    }

    /// The full container ID that `id` (or a unique prefix of it) names.
    pub fn resolve_container(&self, id: &str) -> Result<String, RuntimeError> {
        let state = self.state();
        match find_by_prefix(state.containers.keys().map(String::as_str), id) {
            Lookup::Found(found) => Ok(found.to_string()),
            Lookup::Missing => Err(RuntimeError::container_not_found(id)),
            Lookup::Ambiguous => Err(RuntimeError::InvalidArgument(format!(
                "container ID prefix {id:?} is ambiguous"
            ))),
        }
    }

    fn sandbox(&self, id: &str) -> Result<SandboxRecord, RuntimeError> {
        self.state()
            .sandboxes
            .get(id)
            .cloned()
            .ok_or_else(|| RuntimeError::sandbox_not_found(id))
    }

    fn container(&self, id: &str) -> Result<ContainerRecord, RuntimeError> {
        self.state()
            .containers
            .get(id)
            .cloned()
            .ok_or_else(|| RuntimeError::container_not_found(id))
    }

    /// Writes a sandbox record to disk, then to memory.
    fn save_sandbox(&self, record: SandboxRecord) -> Result<(), RuntimeError> {
        self.inner.sandbox_store.put(&record)?;
        self.state().sandboxes.insert(record.id.clone(), record);
        Ok(())
    }

    /// Writes a container record to disk, then to memory.
    fn save_container(&self, record: ContainerRecord) -> Result<(), RuntimeError> {
        self.inner.container_store.put(&record)?;
        self.state().containers.insert(record.id.clone(), record);
        Ok(())
    }

    /// Applies `change` to container `id`'s record and saves it.
    ///
    /// Read, change and write happen under the state lock, so a concurrent
    /// change (an exit event racing StartContainer) is never overwritten
    /// with a stale copy.
    fn update_container(
        &self,
        id: &str,
        change: impl FnOnce(&mut ContainerRecord),
    ) -> Result<ContainerRecord, RuntimeError> {
        self.change_container(id, |record| {
            change(record);
            Some(())
        })?
        .ok_or_else(|| RuntimeError::container_not_found(id))
    }

    /// [`Runtime::update_container`] for a change the shim can tell a
    /// restarted runtime again (the start): saved without waiting for the
    /// disk, so the state lock is not held across an fsync on the start path.
    fn update_container_unsynced(
        &self,
        id: &str,
        change: impl FnOnce(&mut ContainerRecord),
    ) -> Result<ContainerRecord, RuntimeError> {
        self.change_container_as(id, Durability::Unsynced, |record| {
            change(record);
            Some(())
        })?
        .ok_or_else(|| RuntimeError::container_not_found(id))
    }

    /// Applies `change` to container `id`'s record under the state lock and
    /// saves it when `change` says so (`Some`); `Ok(None)` when it did not.
    fn change_container(
        &self,
        id: &str,
        change: impl FnOnce(&mut ContainerRecord) -> Option<()>,
    ) -> Result<Option<ContainerRecord>, RuntimeError> {
        self.change_container_as(id, Durability::Synced, change)
    }

    fn change_container_as(
        &self,
        id: &str,
        durability: Durability,
        change: impl FnOnce(&mut ContainerRecord) -> Option<()>,
    ) -> Result<Option<ContainerRecord>, RuntimeError> {
        let mut state = self.state();
        let mut record = state
            .containers
            .get(id)
            .cloned()
            .ok_or_else(|| RuntimeError::container_not_found(id))?;
        if change(&mut record).is_none() {
            return Ok(None);
        }
        match durability {
            Durability::Synced => self.inner.container_store.put(&record)?,
            Durability::Unsynced => self.inner.container_store.put_unsynced(&record)?,
        }
        state.containers.insert(record.id.clone(), record.clone());
        Ok(Some(record))
    }

    fn shim(&self, sandbox_id: &str) -> Result<ShimClient, RuntimeError> {
        let shims = self.inner.shims.lock().unwrap_or_else(|p| p.into_inner());
        shims
            .get(sandbox_id)
            .map(|h| h.client.clone())
            .ok_or_else(|| {
                RuntimeError::FailedPrecondition(format!(
                    "the shim of pod sandbox {sandbox_id} is not running"
                ))
            })
    }

    fn pod_dir(&self, sandbox_id: &str) -> PathBuf {
        self.inner.config.pod_dir(sandbox_id)
    }

    fn bundle_dir(&self, sandbox_id: &str, container_id: &str) -> PathBuf {
        self.pod_dir(sandbox_id)
            .join("containers")
            .join(container_id)
    }

    /// Containers of sandbox `sandbox_id`.
    fn containers_of(&self, sandbox_id: &str) -> Vec<ContainerRecord> {
        self.state()
            .containers
            .values()
            .filter(|c| c.sandbox_id == sandbox_id)
            .cloned()
            .collect()
    }
}

/// Nanoseconds since the epoch.
pub(crate) fn now_ns() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as i64)
        .unwrap_or(0)
}
