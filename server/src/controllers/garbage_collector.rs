//! The garbage collector (kube-controller-manager's
//! `garbage-collector-controller`): deletes objects whose owners are gone,
//! by `metadata.ownerReferences`, for every resource the apiserver serves.
//!
//! - **Background** (the default, and `kubectl delete`'s): the owner goes
//!   at once; its dependents, whose owners are then all gone, are deleted.
//! - **Foreground**: the owner carries the `foregroundDeletion` finalizer
//!   and a deletionTimestamp; its dependents are deleted (in the foreground
//!   themselves when they have dependents), and the finalizer comes off
//!   once no dependent with `blockOwnerDeletion` remains.
//! - **Orphan**: the owner carries the `orphan` finalizer; its references
//!   are removed from its dependents, then the finalizer.
//!
//! Owners are verified with the API by UID before anything is deleted: a
//! namespaced dependent's owner is looked up in its own namespace (or at
//! cluster scope), and one with another UID counts as gone.
//!
//! # Layout
//!
//! - `resources`: discovery — what to watch, and the REST mapper.
//! - `monitors`: a metadata-only watch per resource, feeding the graph.
//! - `graph`: the dependency graph and the work each change implies.
//! - `queue`: the work queues (deduplicating, with per-item back-off).
//! - `collector`: the decisions, checked against the API (`Objects`).
//! - `kube_objects`: `Objects` through a kube client.

mod collector;
mod graph;
mod kube_objects;
mod monitors;
mod queue;
mod resources;

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use collector::{Collector, Outcome};
use kube_objects::KubeObjects;
use monitors::{GraphEvent, Monitors};
use queue::WorkQueue;

/// How often discovery runs again to follow CRDs (upstream's resync period).
const RESYNC_PERIOD: Duration = Duration::from_secs(30);
/// Longest wait for the first lists before the workers start anyway.
const SYNC_TIMEOUT: Duration = Duration::from_secs(30);
/// Workers attempting deletions (upstream's `--concurrent-gc-syncs` is 20).
const DELETE_WORKERS: usize = 4;
/// Workers orphaning dependents.
const ORPHAN_WORKERS: usize = 2;
/// Graph events buffered between the monitors and the graph builder.
const EVENT_BUFFER: usize = 1024;

type KubeCollector = Collector<KubeObjects>;

/// Runs the garbage collector until `shutdown` is cancelled.
pub async fn run(client: kube::Client, shutdown: CancellationToken) {
    let collector = Arc::new(Collector::new(KubeObjects::new(client.clone())));
    let (events, event_queue) = mpsc::channel(EVENT_BUFFER);
    let (synced_tx, mut synced) = watch::channel(false);
    let mut tasks = JoinSet::new();
    tasks.spawn(build_graph(collector.clone(), event_queue, synced_tx));
    let mut monitors = Monitors::new(client.clone(), events, shutdown.child_token());

    // Discovery until it first succeeds, then the workers once every
    // monitor listed (or after a timeout, as upstream).
    loop {
        if refresh(&client, &collector, &mut monitors).await {
            break;
        }
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(Duration::from_secs(5)) => {}
        }
    }
    tokio::select! {
        () = shutdown.cancelled() => return,
        _ = tokio::time::timeout(SYNC_TIMEOUT, synced.wait_for(|s| *s)) => {}
    }
    for _ in 0..DELETE_WORKERS {
        tasks.spawn(work(collector.clone(), collector.deletes.clone(), false));
    }
    for _ in 0..ORPHAN_WORKERS {
        tasks.spawn(work(collector.clone(), collector.orphans.clone(), true));
    }
    let mut resync = tokio::time::interval(RESYNC_PERIOD);
    resync.tick().await;
    loop {
        tokio::select! {
            () = shutdown.cancelled() => break,
            _ = resync.tick() => {
                refresh(&client, &collector, &mut monitors).await;
            }
        }
    }
    tasks.shutdown().await;
}

/// Runs discovery and follows it with the monitors; false when it failed.
async fn refresh(
    client: &kube::Client,
    collector: &KubeCollector,
    monitors: &mut Monitors,
) -> bool {
    match resources::discover(client).await {
        Ok(found) => {
            let watched = found.watched().to_vec();
            collector.set_resources(found);
            monitors.sync(&watched).await;
            true
        }
        Err(err) => {
            tracing::warn!(%err, "garbage collector discovery");
            false
        }
    }
}

/// Applies the monitors' events to the graph and queues the work.
async fn build_graph(
    collector: Arc<KubeCollector>,
    mut events: mpsc::Receiver<GraphEvent>,
    synced: watch::Sender<bool>,
) {
    let mut pending = std::collections::HashSet::new();
    while let Some(event) = events.recv().await {
        let work = match event {
            GraphEvent::Expect(resources) => {
                pending.extend(resources.iter().map(|r| r.name()));
                Vec::new()
            }
            GraphEvent::Observed(resource, meta) => collector.graph().observe(&resource, &meta),
            GraphEvent::Deleted(uid) => collector.graph().remove(&uid),
            GraphEvent::Listed(resource, seen) => {
                pending.remove(&resource.name());
                collector.graph().relisted(&resource, &seen)
            }
            GraphEvent::Stopped(resource) => {
                pending.remove(&resource.name());
                collector.graph().forget_resource(&resource)
            }
        };
        collector.enqueue(work);
        if pending.is_empty() && !*synced.borrow() {
            tracing::debug!(
                objects = collector.graph().node_count(),
                "garbage collector synced"
            );
            synced.send_replace(true);
        }
    }
}

/// A worker: takes items off `queue` and attempts them.
async fn work(collector: Arc<KubeCollector>, queue: Arc<WorkQueue>, orphan: bool) {
    loop {
        let uid = queue.next().await;
        let result = if orphan {
            collector.attempt_to_orphan(&uid).await
        } else {
            collector.attempt_to_delete(&uid).await
        };
        match result {
            Ok(Outcome::Done) => queue.forget(&uid),
            Ok(Outcome::Requeue) => queue.add_rate_limited(uid.clone()),
            Err(err) => {
                tracing::debug!(%err, uid, "garbage collector attempt failed");
                queue.add_rate_limited(uid.clone());
            }
        }
        queue.done(&uid);
    }
}
