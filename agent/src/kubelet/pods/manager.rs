//! The pods of this node: a watch with `fieldSelector
//! spec.nodeName=<node>`, one worker per pod UID, runtime container events
//! routed to the pod they concern, and, after each full list, the removal
//! of sandboxes and directories of pods that no longer exist.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event};
use tokio::sync::{Notify, mpsc};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::PodOptions;
use super::context::NodeContext;
use super::cri::EventStream;
use super::orphans;
use super::worker::{PodUpdate, PodWorker};
use crate::kubelet::Kubelet;

/// How often finished workers are forgotten (and a lost runtime event
/// stream is opened again).
const HOUSEKEEPING: Duration = Duration::from_secs(10);

struct Handle {
    updates: mpsc::UnboundedSender<PodUpdate>,
    notify: Arc<Notify>,
    task: JoinHandle<()>,
}

struct Manager {
    ctx: Arc<NodeContext>,
    workers: HashMap<String, Handle>,
    stop: CancellationToken,
}

impl Manager {
    fn uid(pod: &Pod) -> Option<String> {
        pod.metadata.uid.clone().filter(|u| !u.is_empty())
    }

    fn applied(&mut self, pod: Pod) {
        let Some(uid) = Self::uid(&pod) else {
            return;
        };
        if let Some(handle) = self.workers.get(&uid) {
            if !handle.task.is_finished() {
                let _ = handle.updates.send(PodUpdate::Updated(Box::new(pod)));
            }
            return;
        }
        tracing::debug!(
            pod = %format!("{}/{}", pod.metadata.namespace.as_deref().unwrap_or_default(), pod.metadata.name.as_deref().unwrap_or_default()),
            "starting a pod worker"
        );
        let notify = Arc::new(Notify::new());
        let (updates, rx) = mpsc::unbounded_channel();
        let worker = PodWorker::new(self.ctx.clone(), pod, notify.clone());
        let task = tokio::spawn(worker.run(rx, self.stop.child_token()));
        self.workers.insert(
            uid,
            Handle {
                updates,
                notify,
                task,
            },
        );
    }

    fn deleted(&mut self, uid: &str) {
        if let Some(handle) = self.workers.get(uid) {
            let _ = handle.updates.send(PodUpdate::Deleted);
        }
    }

    fn wake(&self, uid: &str) {
        if let Some(handle) = self.workers.get(uid) {
            handle.notify.notify_one();
        }
    }

    /// Forgets workers that finished.
    fn reap(&mut self) {
        self.workers.retain(|_, h| !h.task.is_finished());
    }

    /// Removes what pods that are not listed any more left on the node.
    /// Only after a full list: a sandbox made after it belongs to a pod
    /// this kubelet knows (or to someone else, e.g. crictl, left alone).
    async fn clean_up_orphans(&mut self) {
        self.reap();
        let known: HashSet<String> = self.workers.keys().cloned().collect();
        orphans::clean_up(&self.ctx, &known).await;
    }
}

async fn open_events(ctx: &NodeContext) -> Option<EventStream> {
    match ctx.cri.container_events().await {
        Ok(stream) => Some(stream),
        Err(status) => {
            tracing::warn!(error = %status, "opening the runtime's container events");
            None
        }
    }
}

/// Runs until `shutdown`.
pub async fn run(kubelet: Kubelet, options: PodOptions, shutdown: CancellationToken) {
    let node = kubelet.config.node_name.clone();
    let ctx = Arc::new(NodeContext::new(kubelet, options, shutdown.child_token()).await);
    let mut manager = Manager {
        ctx: ctx.clone(),
        workers: HashMap::new(),
        stop: shutdown.child_token(),
    };
    let api: Api<Pod> = Api::all(ctx.client().clone());
    let config = watcher::Config::default().fields(&format!("spec.nodeName={node}"));
    let mut pods = watcher::watcher(api, config).default_backoff().boxed();
    let mut events = open_events(&ctx).await;
    let mut housekeeping = tokio::time::interval(HOUSEKEEPING);
    let mut listing: HashSet<String> = HashSet::new();
    tracing::info!(node = %node, "syncing the pods bound to this node");
    loop {
        tokio::select! {
            () = shutdown.cancelled() => break,
            event = pods.next() => match event {
                Some(Ok(Event::Apply(pod) | Event::InitApply(pod))) => {
                    if let Some(uid) = Manager::uid(&pod) {
                        listing.insert(uid);
                    }
                    manager.applied(pod);
                }
                Some(Ok(Event::Delete(pod))) => {
                    if let Some(uid) = Manager::uid(&pod) {
                        manager.deleted(&uid);
                    }
                }
                Some(Ok(Event::Init)) => listing.clear(),
                Some(Ok(Event::InitDone)) => {
                    // Pods that were not listed again are gone.
                    let gone: Vec<String> = manager
                        .workers
                        .keys()
                        .filter(|uid| !listing.contains(*uid))
                        .cloned()
                        .collect();
                    for uid in gone {
                        manager.deleted(&uid);
                    }
                    manager.clean_up_orphans().await;
                }
                Some(Err(err)) => tracing::warn!(error = %err, "watching this node's pods"),
                None => break,
            },
            event = next_event(&mut events) => match event {
                Some(event) => {
                    let uid = event
                        .pod_sandbox_status
                        .as_ref()
                        .and_then(|s| s.metadata.as_ref())
                        .map(|m| m.uid.clone());
                    if let Some(uid) = uid {
                        manager.wake(&uid);
                    }
                }
                None => {
                    events = open_events(&ctx).await;
                    // Events may have been missed meanwhile.
                    for handle in manager.workers.values() {
                        handle.notify.notify_one();
                    }
                }
            },
            _ = housekeeping.tick() => {
                if events.is_none() {
                    events = open_events(&ctx).await;
                }
                manager.reap();
            }
        }
    }
    manager.stop.cancel();
    for (_, handle) in manager.workers.drain() {
        let _ = handle.task.await;
    }
    tracing::info!("pod sync stopped; containers keep running");
}

/// The next runtime event; `None` when the stream ended or failed (it
/// is dropped then). Without a stream, it waits forever.
async fn next_event(
    events: &mut Option<EventStream>,
) -> Option<k8s_cri::v1::ContainerEventResponse> {
    let Some(stream) = events else {
        return std::future::pending().await;
    };
    match stream.next().await {
        Some(Ok(event)) => Some(event),
        Some(Err(status)) => {
            tracing::warn!(error = %status, "the runtime's container events failed");
            *events = None;
            None
        }
        None => {
            *events = None;
            None
        }
    }
}
