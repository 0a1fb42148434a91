//! Skiff's node runtime: pod sandboxes and containers on one node.
//!
//! Not built yet: the CRI `RuntimeService` (issue "Node runtime") fills this
//! crate with namespaces, cgroups, rootfs preparation and the two engines
//! behind one trait — OCI containers through libcontainer and Wasm through
//! wasmtime.
//!
//! # Layout
//!
//! Empty until the node runtime lands.
