//! How a [`crate::Runtime`] is set up: where it keeps things and which
//! network and shim it uses.

use std::path::PathBuf;
use std::sync::Arc;

use crate::network::PodNetwork;

/// The node runtime's configuration.
#[derive(Debug, Clone)]
pub struct RuntimeConfig {
    /// Skiff's data directory: records live under `<data-dir>/agent/runtime`.
    pub data_dir: PathBuf,
    /// Volatile state (`/run/skiff`): pod directories, bundles, shim sockets.
    pub run_dir: PathBuf,
    /// The binary re-executed as `<binary> shim ...` (the running skiff).
    pub shim_binary: PathBuf,
    /// Where Localhost seccomp profiles with relative names are found.
    pub seccomp_profile_root: PathBuf,
    /// The pod network.
    pub network: Arc<dyn PodNetwork>,
}

impl RuntimeConfig {
    /// `<data-dir>/agent/runtime`.
    pub fn records_dir(&self) -> PathBuf {
        self.data_dir.join("agent").join("runtime")
    }

    /// `<data-dir>/agent/wasm-cache`: compiled Wasm code, shared by every pod.
    pub fn wasm_cache_dir(&self) -> PathBuf {
        self.data_dir.join("agent").join("wasm-cache")
    }

    /// `<run-dir>/pods/<sandbox-id>`.
    pub fn pod_dir(&self, sandbox_id: &str) -> PathBuf {
        self.run_dir.join("pods").join(sandbox_id)
    }
}
