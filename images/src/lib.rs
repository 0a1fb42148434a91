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
//! - [`reference`]: image references, normalized as docker and containerd do.
//! - [`platform`]: node platforms and picking a manifest from an image index.
//! - [`registries`]: `registries.yaml` mirrors, rewrites, auth and TLS, as k3s reads it.
//! - [`distribution`]: the OCI distribution client: resolve, auth, mirror fallback, blob streams.
//! - [`overlay`]: mounting container root filesystems (overlayfs) behind the [`overlay::Mounter`] seam.
//! - [`unpack`]: layer tars into overlayfs-format snapshot directories, safely;
//!   raw Wasm layers as one module file.
//! - [`wasm`]: Wasm layer media types and platforms, and where a Wasm layer's module lands.
//! - [`config`]: image configs, read leniently for Wasm artifacts (no `rootfs`).
//! - [`snapshots`]: layer and container snapshot directories, crash-safe.
//! - [`pull`]: resolve, then stream missing layers into snapshots, verified.
//! - [`progress`]: pull progress for watchers (the crictl progress bar).
//! - [`import`]: air-gap import of OCI-layout and docker-archive tarballs.
//! - [`gc`]: kubelet-style image garbage collection between disk thresholds.
//! - [`store`]: [`ImageStore`], the entry point tying it all together.
//! - [`error`]: [`ImageError`] and its [`ErrorKind`] for status codes.
#![deny(missing_docs)]

pub mod config;
pub mod content;
pub mod digest;
pub mod distribution;
pub mod error;
pub mod gc;
pub mod import;
mod locks;
pub mod metadata;
pub mod overlay;
pub mod platform;
pub mod progress;
pub mod pull;
pub mod reference;
pub mod registries;
pub mod snapshots;
pub mod store;
pub mod unpack;
pub mod wasm;

pub use error::{ErrorKind, ImageError};
pub use metadata::ImageRecord;
pub use pull::PullOutcome;
pub use store::{FsUsage, ImageStore, StoreConfig};
