//! Skiff's end-to-end test harness: deterministic test images built from
//! Debian's `busybox-static`, real registries (Debian's `docker-registry`)
//! on 127.0.0.1, and child processes that never outlive a test. It never
//! touches the network beyond loopback.
//!
//! ```no_run
//! use skiff_tests::{Fixture, TestRegistries};
//! # fn main() -> skiff_tests::Result<()> {
//! let regs = TestRegistries::start()?;                 // open, basic, tls, token
//! let image = Fixture::Busybox.reference(&regs.basic); // 127.0.0.1:PORT/skiff-test/busybox:latest
//! let (user, password) = regs.basic.credentials().unwrap_or_default();
//! # let _ = (image, user, password);
//! # Ok(()) }
//! ```
//!
//! Fixture images and the seeded registry storage are built once into a
//! cache shared by all test processes (`<target>/skiff-test-cache`, or
//! `$SKIFF_TEST_CACHE`); each test then gets its own copy of the storage.
//!
//! # Layout
//!
//! - [`oci`]: deterministic building blocks — tar entries, layers, images,
//!   indexes, OCI layouts, OCI and `docker save` archives, schema 1.
//! - [`fixtures`]: the named test images ([`Fixture`]) and their cache.
//! - [`registry`]: [`TestRegistries`] / [`TestRegistry`] (docker-registry
//!   processes), the token server, a small push client, `registries.yaml`.
//! - [`skiff`]: the real `skiff` binary: [`SkiffRuntime`] and `skiff` commands.
//! - [`server`]: `skiff server --disable-agent` with the real kubectl: [`server::SkiffServer`].
//! - [`wasm`]: Wasm fixtures (WAT, C with wasi-libc, components) and their images.
//! - [`cri`]: a CRI v1 gRPC client over the runtime's socket.
//! - [`child`]: [`GuardedChild`], processes killed on drop and on parent death.
//! - [`cache`]: the shared, lock-protected cache directory.
//! - [`error`]: the harness's error type, [`HarnessError`].

#![deny(missing_docs)]

pub mod cache;
pub mod child;
pub mod cri;
pub mod error;
pub mod fixtures;
pub mod oci;
pub mod registry;
pub mod server;
pub mod skiff;
pub mod wasm;
pub mod wasm_http;

pub use child::GuardedChild;
pub use error::{HarnessError, Result};
pub use fixtures::{Fixture, FixtureImage};
pub use registry::{RegistryKind, TestRegistries, TestRegistry};
pub use server::{AgentSetup, SkiffServer};
pub use skiff::{NetworkLease, RuntimeOptions, SkiffRuntime, clean_node};
