//! End-to-end tests: the real `skiff` binary, driven as users drive it —
//! `skiff runtime` serving the CRI socket, `skiff crictl` talking to it —
//! against real registries on 127.0.0.1. They need root.

// CRI messages are large; boxing every future in tests buys nothing.
#![allow(clippy::large_futures)]

mod apiserver;
mod cli;
mod cluster;
mod node;
mod runtime_errors;
mod runtime_images;
mod runtime_more;
mod runtime_pods;
mod wasm;

use std::process::Output;

/// stdout of a command that must have succeeded.
fn ok(output: Output) -> String {
    assert!(
        output.status.success(),
        "command failed ({}):\nstdout: {}\nstderr: {}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// stderr of a command that must have failed.
fn failed(output: Output) -> String {
    assert!(
        !output.status.success(),
        "command unexpectedly succeeded:\nstdout: {}",
        String::from_utf8_lossy(&output.stdout)
    );
    String::from_utf8_lossy(&output.stderr).into_owned()
}
