//! Integration tests of the shim with real processes (as root): a real
//! `skiff-test-shim` process per pod, real libcontainer containers on a
//! busybox rootfs, real cgroups and namespaces.

mod attach;
mod exec;
mod harness;
mod lifecycle;
mod memory;
mod namespaces;
mod oom;
mod survival;
mod wasm;
mod wasm_http;
