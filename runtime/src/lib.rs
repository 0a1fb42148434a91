//! Skiff's node runtime: pod sandboxes and containers on one node.
//!
//! The [`Runtime`] manager behind CRI's RuntimeService: it keeps durable
//! records of sandboxes and containers, prepares root filesystems from the
//! image store, writes OCI bundles, attaches pods to the network and drives
//! one shim process per pod (crate `skiff-shims`), which runs the containers
//! through youki's libcontainer, or wasmtime for Wasm containers.
//!
//! # Layout
//!
//! - [`ids`]: random IDs and lookup by unique prefix.
//! - [`store`]: durable JSON records, replaced atomically.
//! - [`pod_files`]: a pod's `/etc/hostname`, `/etc/hosts`, `/etc/resolv.conf`.
//! - [`cgroups`]: cgroup statistics as CRI usage (v1 and v2).
//! - [`records`]: sandbox and container records and their CRI views.
//! - [`network`]: the pod network (bridge, veth pairs, IPAM, nftables), behind
//!   the `PodNetwork` trait.
//! - [`spec`]: CRI container config + pod sandbox + image config → OCI runtime
//!   spec, with containerd's rules.
//! - [`wasm`]: which containers are Wasm, and the bundle annotations that
//!   tell the shim's Wasm engine what to run.
//! - [`manager`]: [`Runtime`], the verbs of CRI's RuntimeService (one file per
//!   group of verbs), shim event pumps and recovery after a restart.
//! - [`config`], [`error`]: [`RuntimeConfig`] and [`RuntimeError`].

pub mod cgroups;
pub mod config;
pub mod error;
pub mod ids;
pub mod manager;
pub mod network;
pub mod pod_files;
pub mod records;
pub mod spec;
pub mod store;
pub mod wasm;

pub use config::RuntimeConfig;
pub use error::{ErrorKind, RuntimeError};
pub use manager::{ExecOutput, ExecSession, Runtime};
