//! Skiff's image store: gets OCI images onto a node correctly and fast.
//!
//! Pulls from OCI distribution registries (with `registries.yaml` mirrors,
//! auth and TLS), verifies every blob while it streams, keeps blobs in a
//! content-addressed store, unpacks each layer once into a snapshot directory
//! shared by every image that has it, and prepares container root
//! filesystems as overlayfs mounts of those layers.
//!
//! # Layout
//!
//! - [`digest`]: `sha256:` digests and verifying readers/writers.
//! - [`content`]: manifests, indexes and configs by digest, verified before visible.
//! - [`metadata`]: the SQLite index of images, names, layers and snapshots.
#![deny(missing_docs)]

pub mod content;
pub mod digest;
pub mod metadata;
