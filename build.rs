//! Links the `skiff` binary as a position-dependent executable.
//!
//! A position-independent executable is relocated by the dynamic loader at
//! every start: each pointer in its read-only-after-relocation data (vtables,
//! string tables: about 0.9 MiB in this binary) is written once, which turns
//! those pages into private anonymous memory in every process. Skiff runs
//! one shim per pod and one process per Wasm guest from this binary, so on a
//! node with 100 pods that is some 180 MiB of copies of the same constants.
//! Linked at a fixed address, those pages stay clean, shared file pages.
//! The cost is that the binary's own code and data are not randomized
//! (ASLR still places the heap, stacks, libraries and mappings at random),
//! as with Go binaries such as k3s's.
fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    if std::env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("linux") {
        println!("cargo:rustc-link-arg-bins=-no-pie");
    }
}
