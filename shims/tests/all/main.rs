//! Integration tests of the shim with real processes (as root): a real
//! `skiff-test-shim` process per pod, real libcontainer containers on a
//! busybox rootfs, real cgroups and namespaces.

mod harness;
mod lifecycle;
