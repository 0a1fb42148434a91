//! Skiff's per-pod shim: the process that owns a pod's container processes,
//! their stdio and CRI log files, and their exit status, and that survives
//! restarts of the agent.
//!
//! Not built yet: arrives with the node runtime. `skiff shim` exits with an
//! error saying so.
//!
//! # Layout
//!
//! Empty until the node runtime lands.
