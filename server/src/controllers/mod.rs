//! kube-controller-manager's part of `skiff server`: reconcile loops over
//! informer caches (kube-rs's controller runtime), each with requeue and
//! back-off, each talking to the apiserver as
//! `system:kube-controller-manager`.
//!
//! # Layout
//!
//! One module per controller, named as upstream names it; each exposes
//! `run(client, shutdown)`.

pub mod common;

use tokio_util::sync::CancellationToken;

/// Runs every controller until `shutdown` is cancelled.
pub async fn run(client: kube::Client, shutdown: CancellationToken) {
    let _ = client;
    shutdown.cancelled().await;
}
