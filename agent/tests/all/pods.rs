//! The kubelet's pod sync against a real apiserver and a real node runtime
//! (in this process, with real shims on a leased pod network): pods bound
//! by `spec.nodeName` run, turn Ready and answer on their IP, get their
//! ConfigMaps and Secrets as files and env, complete, crash-loop, restart
//! on failed liveness probes, run init containers in order, pull images
//! with their policy, terminate gracefully, and survive a kubelet restart.
//! Run as root; build `skiff` first (`cargo build --bin skiff`): it is
//! the shim.

mod config;
mod harness;
mod images;
mod lifecycle;
mod readoption;
mod restarts;
