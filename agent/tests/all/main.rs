//! The agent's integration tests: a real apiserver in this process, the
//! agent's node runtime with real shims and pod networks, and the kubelet
//! API called over TLS (run as root; build `skiff` first for the shims:
//! `cargo build --bin skiff`).

mod kubelet_api;
mod node;
mod pods;
mod support;
