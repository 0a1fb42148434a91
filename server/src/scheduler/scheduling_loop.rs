//! The scheduler's loop: watches pods and nodes, feeds the events to the
//! state machine, and carries its decisions out in tasks of their own, so
//! the next pod is decided while the last one is being bound.

use std::collections::HashMap;
use std::pin::Pin;

use futures::{Stream, StreamExt};
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::Api;
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event};
use serde::Serialize;
use serde_json::Value;
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::binder::Binder;
use super::queue::PodKey;
use super::state::{Decision, Outcome, SchedulerState};

/// The pods kube-scheduler's informer watches: finished ones hold no room.
const UNFINISHED_PODS: &str = "status.phase!=Succeeded,status.phase!=Failed";

type Events<K> = Pin<Box<dyn Stream<Item = Result<Event<K>, watcher::Error>> + Send>>;

/// Binds pending pods until `shutdown` is cancelled.
pub async fn run(client: kube::Client, shutdown: CancellationToken) {
    let pods: Events<Pod> = Box::pin(
        watcher::watcher(
            Api::all(client.clone()),
            watcher::Config::default().fields(UNFINISHED_PODS),
        )
        .default_backoff(),
    );
    let nodes: Events<Node> = Box::pin(
        watcher::watcher(Api::all(client.clone()), watcher::Config::default()).default_backoff(),
    );
    Box::pin(SchedulingLoop::new(Binder::new(client)).run(pods, nodes, shutdown)).await;
}

/// The state machine and the decisions being carried out.
#[derive(Debug)]
struct SchedulingLoop {
    state: SchedulerState,
    binder: Binder,
    tasks: JoinSet<Outcome>,
    /// The pod each task is about, for a task that dies without an outcome.
    task_pods: HashMap<tokio::task::Id, PodKey>,
}

impl SchedulingLoop {
    fn new(binder: Binder) -> Self {
        Self {
            state: SchedulerState::default(),
            binder,
            tasks: JoinSet::new(),
            task_pods: HashMap::new(),
        }
    }

    async fn run(
        mut self,
        mut pods: Events<Pod>,
        mut nodes: Events<Node>,
        shutdown: CancellationToken,
    ) {
        loop {
            for decision in self.state.decide(Instant::now()) {
                self.spawn(decision);
            }
            let wakeup = self.state.next_wakeup();
            tokio::select! {
                () = shutdown.cancelled() => break,
                event = pods.next() => match event {
                    Some(Ok(event)) => {
                        if let Some(event) = as_values(event) {
                            self.state.pod_event(event, Instant::now());
                        }
                    }
                    Some(Err(err)) => tracing::warn!(%err, "watching pods"),
                    None => break,
                },
                event = nodes.next() => match event {
                    Some(Ok(event)) => {
                        if let Some(event) = as_values(event) {
                            self.state.node_event(event, Instant::now());
                        }
                    }
                    Some(Err(err)) => tracing::warn!(%err, "watching nodes"),
                    None => break,
                },
                Some(done) = self.tasks.join_next_with_id() => self.finished(done),
                () = sleep_until(wakeup) => {}
            }
        }
        self.tasks.abort_all();
    }

    fn spawn(&mut self, decision: Decision) {
        let key = match &decision {
            Decision::Bind { key, .. } | Decision::Unschedulable { key, .. } => key.clone(),
        };
        let handle = self.tasks.spawn(self.binder.clone().carry_out(decision));
        self.task_pods.insert(handle.id(), key);
    }

    fn finished(&mut self, done: Result<(tokio::task::Id, Outcome), tokio::task::JoinError>) {
        match done {
            Ok((id, outcome)) => {
                self.task_pods.remove(&id);
                self.state.outcome(outcome, Instant::now());
            }
            Err(err) => {
                tracing::warn!(%err, "a scheduling task ended without an outcome");
                if let Some(key) = self.task_pods.remove(&err.id()) {
                    self.state.abandoned(&key, Instant::now());
                }
            }
        }
    }
}

/// Sleeps until `deadline`, or forever without one.
async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

/// A typed watch event as the JSON the decision logic reads.
fn as_values<K: Serialize>(event: Event<K>) -> Option<Event<Value>> {
    let value = |object: K| match serde_json::to_value(object) {
        Ok(value) => Some(value),
        Err(err) => {
            tracing::warn!(%err, "encoding a watched object");
            None
        }
    };
    Some(match event {
        Event::Apply(object) => Event::Apply(value(object)?),
        Event::Delete(object) => Event::Delete(value(object)?),
        Event::Init => Event::Init,
        Event::InitApply(object) => Event::InitApply(value(object)?),
        Event::InitDone => Event::InitDone,
    })
}
