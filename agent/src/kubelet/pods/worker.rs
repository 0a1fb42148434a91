//! A pod's worker: a task that owns everything kubelet keeps about one pod
//! (its volumes, probes, restart back-off, waiting reasons, the status it
//! wrote) and syncs it whenever the pod changes, the runtime reports one
//! of its containers, a probe result flips, a back-off ends, or every
//! [`RESYNC`] anyway. It ends when the pod is terminated and deleted.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Pod;
use tokio::sync::{Notify, mpsc};
use tokio_util::sync::CancellationToken;

use super::backoff::Backoff;
use super::context::NodeContext;
use super::probes::Probes;
use super::status::Waiting;
use super::status_writer::StatusWriter;
use super::volumes::PodVolumes;

/// How often a pod is synced when nothing happens.
pub const RESYNC: Duration = Duration::from_secs(10);

/// What the manager tells a worker.
#[derive(Debug)]
pub enum PodUpdate {
    /// The pod as the API has it now.
    Updated(Box<Pod>),
    /// The pod is gone from the API.
    Deleted,
}

/// When a sync wants to run again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// At this instant (or sooner, when something happens).
    At(Instant),
    /// Never: the pod is finished and its worker ends.
    Done,
}

impl Next {
    /// In `after`.
    pub fn after(after: Duration) -> Next {
        Next::At(Instant::now() + after)
    }

    /// The earlier of two.
    pub fn min(self, other: Next) -> Next {
        match (self, other) {
            (Next::Done, x) | (x, Next::Done) => x,
            (Next::At(a), Next::At(b)) => Next::At(a.min(b)),
        }
    }
}

/// One pod's state in the kubelet.
#[derive(Debug)]
pub struct PodWorker {
    /// The node-wide context.
    pub ctx: Arc<NodeContext>,
    /// The pod as last seen.
    pub pod: Pod,
    /// Deleted from the API.
    pub gone: bool,
    /// Its volumes.
    pub volumes: PodVolumes,
    /// Its probes.
    pub probes: Probes,
    /// Container restart back-off.
    pub backoff: Backoff,
    /// Why containers wait, from the last sync.
    pub waiting: HashMap<String, Waiting>,
    /// The highest restart count seen per container.
    pub restart_counts: HashMap<String, i32>,
    /// The status written.
    pub status: StatusWriter,
    /// When termination started, and until when it may take.
    pub kill_deadline: Option<Instant>,
    /// Wakes the worker (runtime events, probes).
    pub notify: Arc<Notify>,
}

impl PodWorker {
    /// A worker for `pod`.
    pub fn new(ctx: Arc<NodeContext>, pod: Pod, notify: Arc<Notify>) -> Self {
        let uid = pod.metadata.uid.clone().unwrap_or_default();
        Self {
            volumes: PodVolumes::new(ctx.root_dir(), &uid),
            probes: Probes::new(notify.clone()),
            status: StatusWriter::new(&pod),
            ctx,
            pod,
            gone: false,
            backoff: Backoff::default(),
            waiting: HashMap::new(),
            restart_counts: HashMap::new(),
            kill_deadline: None,
            notify,
        }
    }

    /// The pod's UID.
    pub fn uid(&self) -> String {
        self.pod.metadata.uid.clone().unwrap_or_default()
    }

    /// The pod's `namespace/name`.
    pub fn key(&self) -> String {
        format!(
            "{}/{}",
            self.pod.metadata.namespace.as_deref().unwrap_or_default(),
            self.pod.metadata.name.as_deref().unwrap_or_default()
        )
    }

    /// Whether the pod is being deleted (or is gone).
    pub fn terminating(&self) -> bool {
        self.gone || self.pod.metadata.deletion_timestamp.is_some()
    }

    /// Takes an update in; whether it calls for a sync. The pod's status
    /// changing (our own writes coming back through the watch) does not,
    /// as kubelet's pod config ignores status-only updates.
    fn apply(&mut self, update: PodUpdate) -> bool {
        match update {
            PodUpdate::Updated(pod) => {
                let (old, new) = (&self.pod.metadata, &pod.metadata);
                let relevant = self.pod.spec != pod.spec
                    || old.labels != new.labels
                    || old.annotations != new.annotations
                    || old.deletion_timestamp != new.deletion_timestamp
                    || old.deletion_grace_period_seconds != new.deletion_grace_period_seconds;
                self.pod = *pod;
                relevant
            }
            PodUpdate::Deleted => {
                self.gone = true;
                true
            }
        }
    }

    /// Syncs the pod until it is finished or `shutdown` (after which its
    /// containers keep running).
    pub async fn run(
        mut self,
        mut updates: mpsc::UnboundedReceiver<PodUpdate>,
        shutdown: CancellationToken,
    ) {
        loop {
            let next = if self.terminating() {
                self.terminate().await
            } else {
                self.sync().await
            };
            let deadline = match next {
                Next::Done => break,
                Next::At(at) => at,
            };
            let sleep = tokio::time::sleep_until(deadline.into());
            tokio::pin!(sleep);
            loop {
                tokio::select! {
                    () = shutdown.cancelled() => {
                        self.probes.stop_all();
                        return;
                    }
                    update = updates.recv() => {
                        let Some(update) = update else {
                            self.probes.stop_all();
                            return;
                        };
                        let mut relevant = self.apply(update);
                        while let Ok(more) = updates.try_recv() {
                            relevant |= self.apply(more);
                        }
                        if relevant {
                            break;
                        }
                    }
                    () = self.notify.notified() => break,
                    () = &mut sleep => break,
                }
            }
        }
        self.probes.stop_all();
        tracing::debug!(pod = %self.key(), "pod worker stopped");
    }
}
