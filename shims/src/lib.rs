//! Skiff's per-pod shim: the process that owns a pod's containers (created
//! through youki's libcontainer, or Wasm guests run by wasmtime), their
//! stdio and CRI log files, and their exit status, and that outlives
//! restarts and crashes of the runtime. Also the protocol and the client the
//! runtime talks to it with.
//!
//! The runtime starts a shim with [`spawn_shim`] (`skiff shim <ShimArgs>`),
//! then drives it with [`ShimClient`]. A shim is single-threaded and
//! poll-based, because libcontainer forks from it.
//!
//! # Layout
//!
//! - [`args`]: [`ShimArgs`], the `skiff shim` command line.
//! - [`protocol`]: requests, responses, events and states (JSON lines).
//! - [`client`]: [`ShimClient`] (tokio) and [`spawn_shim`].
//! - [`crilog`]: the CRI log format (`<time> <stream> <P|F> <text>`).
//! - [`namespaces`]: pod namespaces pinned by bind mounts, the pod's PID 1, [`unpin_namespaces`].
//! - [`cgroups`]: OOM kills and leftover processes of a container's cgroup.
//! - [`engine`]: the [`engine::Engine`] seam, its libcontainer and Wasm
//!   (wasmtime) engines, and the dispatch between them.
//! - `daemon`: [`run`], the shim process: daemonizing, startup, shutdown.
//! - `server`: the poll loop, container stdio, exits, one file per request verb.
//! - [`logger`]: the shim's own plain-text log, `shim.log`.
//! - `memory`: dropping code pages an idle shim does not need from its resident set.
#![deny(missing_docs)]

pub mod args;
pub mod cgroups;
pub mod client;
pub mod crilog;
mod daemon;
pub mod engine;
pub mod fdpass;
pub mod logger;
pub mod memory;
pub mod namespaces;
pub mod protocol;
mod server;
mod signals;
mod unix;

pub use args::{PodNamespace, ShimArgs};
pub use client::{ShimClient, spawn_shim};
pub use daemon::run;
pub use namespaces::unpin_namespaces;
