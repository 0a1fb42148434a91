//! The node lifecycle controller (kube-controller-manager's
//! `node-lifecycle-controller`, with `taint-eviction-controller`):
//!
//! - every 5 s it looks at each node and its Lease in `kube-node-lease`; a
//!   node silent for the grace period (40 s) gets its Ready, MemoryPressure,
//!   DiskPressure and PIDPressure conditions set Unknown ("Kubelet stopped
//!   posting node status."), a `NodeNotReady` event, and its pods' Ready
//!   condition set False (`MarkPodsNotReady`);
//! - a node whose Ready is Unknown or False gets the NoExecute taint
//!   `node.kubernetes.io/unreachable` or `not-ready` (rate-limited per zone,
//!   none while every zone is down), removed when Ready turns True;
//! - node conditions and cordons are mirrored as NoSchedule taints
//!   (`unreachable`, `not-ready`, `memory-pressure`, ..., `unschedulable`)
//!   as soon as a node changes;
//! - pods on nodes with NoExecute taints they do not tolerate are evicted,
//!   at once or after their `tolerationSeconds`.
//!
//! # Layout
//! - this file: informers, the monitor pass, the condition-taint loop.
//! - `health`: when a node counts as silent (pure).
//! - `zones`: zone states, disruption mode, taint rate limits.
//! - `taints`: which taints, and changing them safely.
//! - `eviction`: taint-based eviction of pods.

#[path = "node_lifecycle/eviction.rs"]
mod eviction;
#[path = "node_lifecycle/health.rs"]
mod health;
#[path = "node_lifecycle/taints.rs"]
mod taints;
#[path = "node_lifecycle/zones.rs"]
mod zones;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::{StreamExt, stream};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Node, NodeCondition, ObjectReference, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::applier;
use kube::runtime::controller::{
    Action, Config as ControllerConfig, ReconcileRequest, trigger_with,
};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::watcher::{self, Event};
use serde_json::json;
use tokio::sync::mpsc;
use tokio_stream::wrappers::UnboundedReceiverStream;
use tokio_util::sync::CancellationToken;

use super::common::Events;
use super::queue::{ErrorBackoff, informer};
use health::{Grace, NodeHealth};
use taints::{NOT_READY, UNREACHABLE, has_taint, swap_taints, taint};
pub use zones::EvictionRates;
use zones::{Disruption, Zones};

/// The namespace of node heartbeat Leases.
const NODE_LEASE_NAMESPACE: &str = "kube-node-lease";

/// The controller's timings, kube-controller-manager's flags.
#[derive(Debug, Clone, Copy)]
pub struct NodeLifecycleConfig {
    /// How long a node may be silent before it is Unknown
    /// (`--node-monitor-grace-period`, 40 s).
    pub node_monitor_grace_period: Duration,
    /// How long a new node may go without posting its status
    /// (`--node-startup-grace-period`, 60 s).
    pub node_startup_grace_period: Duration,
    /// How often nodes are looked at (`--node-monitor-period`, 5 s).
    pub node_monitor_period: Duration,
    /// How fast unreachable nodes are tainted NoExecute.
    pub eviction: EvictionRates,
}

impl Default for NodeLifecycleConfig {
    fn default() -> Self {
        Self {
            node_monitor_grace_period: Duration::from_secs(40),
            node_startup_grace_period: Duration::from_secs(60),
            node_monitor_period: Duration::from_secs(5),
            eviction: EvictionRates::default(),
        }
    }
}

/// The informer caches and helpers the loops share.
struct Context {
    client: kube::Client,
    nodes: Store<Node>,
    leases: Store<Lease>,
    pods: Store<Pod>,
    events: Events,
    backoff: ErrorBackoff,
}

/// Runs the node lifecycle controller with upstream's timings until
/// `shutdown` is cancelled.
pub async fn run(client: kube::Client, shutdown: CancellationToken) {
    run_with(client, NodeLifecycleConfig::default(), shutdown).await;
}

/// Runs the node lifecycle controller with `config` until `shutdown` is
/// cancelled.
pub async fn run_with(
    client: kube::Client,
    config: NodeLifecycleConfig,
    shutdown: CancellationToken,
) {
    let (nodes, node_events) =
        informer(Api::<Node>::all(client.clone()), watcher::Config::default());
    let (leases, lease_events) = informer(
        Api::<Lease>::namespaced(client.clone(), NODE_LEASE_NAMESPACE),
        watcher::Config::default(),
    );
    let (pods, pod_events) = informer(Api::<Pod>::all(client.clone()), watcher::Config::default());
    let ctx = Arc::new(Context {
        client: client.clone(),
        nodes: nodes.clone(),
        leases,
        pods: pods.clone(),
        events: Events::new(client.clone(), "node-controller"),
        backoff: ErrorBackoff::default(),
    });
    let eviction_ctx = Arc::new(eviction::Context::new(client, nodes.clone()));

    // Node changes: the node's own condition taints, and the pods on it
    // when its NoExecute taints change.
    let (pods_on_node_tx, pods_on_node_rx) = mpsc::unbounded_channel::<ObjectRef<Pod>>();
    let no_execute: Mutex<taints::NoExecuteTaints> = Mutex::default();
    let node_triggers = {
        let pods = pods.clone();
        trigger_with(node_events, move |event| -> Vec<ReconcileRequest<Node>> {
            let (node, gone) = match event {
                Event::Apply(node) | Event::InitApply(node) => (node, false),
                Event::Delete(node) => (node, true),
                Event::Init | Event::InitDone => return Vec::new(),
            };
            let name = node.metadata.name.clone().unwrap_or_default();
            let taints = if gone {
                Vec::new()
            } else {
                taints::no_execute_of(&node)
            };
            let changed = {
                let mut known = no_execute
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                let before = if gone {
                    known.remove(&name)
                } else {
                    known.insert(name.clone(), taints.clone())
                };
                before.unwrap_or_default() != taints
            };
            if changed {
                for pod in pods.state_filter(|p| {
                    p.spec.as_ref().and_then(|s| s.node_name.as_deref()) == Some(name.as_str())
                }) {
                    let _ = pods_on_node_tx.send(ObjectRef::from_obj(pod.as_ref()));
                }
            }
            if gone {
                Vec::new()
            } else {
                vec![ObjectRef::from_obj(&node).into()]
            }
        })
    };
    let pod_triggers = {
        let eviction_ctx = eviction_ctx.clone();
        trigger_with(pod_events, move |event| -> Option<ReconcileRequest<Pod>> {
            match event {
                Event::Apply(pod) | Event::InitApply(pod) => {
                    let bound = pod
                        .spec
                        .as_ref()
                        .and_then(|s| s.node_name.as_deref())
                        .is_some_and(|n| !n.is_empty());
                    bound.then(|| ObjectRef::from_obj(&pod).into())
                }
                Event::Delete(pod) => {
                    eviction_ctx.forget(&pod);
                    None
                }
                Event::Init | Event::InitDone => None,
            }
        })
    };
    let eviction_requests = stream::select(
        pod_triggers.boxed(),
        UnboundedReceiverStream::new(pods_on_node_rx)
            .map(|pod| Ok(ReconcileRequest::from(pod)))
            .boxed(),
    )
    .take_until(shutdown.clone().cancelled_owned());
    let condition_taints = applier(
        |node, ctx| Box::pin(reconcile_condition_taints(node, ctx)),
        condition_taints_error_policy,
        ctx.clone(),
        nodes,
        node_triggers.take_until(shutdown.clone().cancelled_owned()),
        ControllerConfig::default(),
    )
    .for_each(|result| async move {
        match result {
            Ok(_) | Err(kube::runtime::controller::Error::ObjectNotFound(_)) => {}
            Err(err) => tracing::debug!(%err, "node condition taints"),
        }
    });
    let leases_filled = lease_events
        .take_until(shutdown.clone().cancelled_owned())
        .for_each(|_| async {});
    tokio::join!(
        condition_taints,
        eviction::run(eviction_ctx, pods, eviction_requests),
        leases_filled,
        monitor(ctx, config, shutdown),
    );
}

fn condition_taints_error_policy(node: Arc<Node>, err: &kube::Error, ctx: Arc<Context>) -> Action {
    let name = node.metadata.name.clone().unwrap_or_default();
    tracing::warn!(node = %name, %err, "updating the node's condition taints");
    Action::requeue(ctx.backoff.next_delay(&name))
}

/// Mirrors the node's conditions and cordon as NoSchedule taints.
async fn reconcile_condition_taints(
    node: Arc<Node>,
    ctx: Arc<Context>,
) -> Result<Action, kube::Error> {
    let (add, remove) = taints::condition_taint_changes(&node);
    if !add.is_empty() || !remove.is_empty() {
        swap_taints(&ctx.client, &node, &add, &remove).await?;
    }
    ctx.backoff
        .reset(node.metadata.name.as_deref().unwrap_or_default());
    Ok(Action::await_change())
}

/// What the monitor remembers between passes.
struct Monitor {
    grace: Grace,
    health: HashMap<String, NodeHealth>,
    /// Known nodes by name, with their zone.
    known: HashMap<String, String>,
    zones: Zones,
    /// Nodes whose pods still need marking not ready.
    retry: HashSet<String>,
}

/// Looks at every node each `node_monitor_period` (upstream's
/// `monitorNodeHealth` and its NoExecute tainting pass).
async fn monitor(ctx: Arc<Context>, config: NodeLifecycleConfig, shutdown: CancellationToken) {
    for ready in [
        ctx.nodes.wait_until_ready().await.is_ok(),
        ctx.leases.wait_until_ready().await.is_ok(),
        ctx.pods.wait_until_ready().await.is_ok(),
    ] {
        if !ready {
            return;
        }
    }
    let mut state = Monitor {
        grace: Grace {
            monitor: config.node_monitor_grace_period,
            startup: config.node_startup_grace_period,
        },
        health: HashMap::new(),
        known: HashMap::new(),
        zones: Zones::new(config.eviction),
        retry: HashSet::new(),
    };
    let mut ticks = tokio::time::interval(config.node_monitor_period);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            _ = ticks.tick() => {}
        }
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = monitor_pass(&ctx, &mut state) => {}
        }
    }
}

/// One look at every node.
async fn monitor_pass(ctx: &Context, state: &mut Monitor) {
    let mut nodes = ctx.nodes.state();
    nodes.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
    let names: HashSet<String> = nodes
        .iter()
        .filter_map(|n| n.metadata.name.clone())
        .collect();
    for node in &nodes {
        let name = node.metadata.name.clone().unwrap_or_default();
        if state.known.contains_key(&name) {
            continue;
        }
        let zone = zones::zone_key(node);
        let note = format!("Node {name} event: Registered Node {name} in Controller");
        ctx.events
            .normal(&node_reference(node, false), "RegisteredNode", note)
            .await;
        state.zones.add_zone(&zone);
        state.known.insert(name, zone);
        mark_reachable(ctx, state, node).await;
    }
    let gone: Vec<String> = state
        .known
        .keys()
        .filter(|n| !names.contains(*n))
        .cloned()
        .collect();
    for name in gone {
        let zone = state.known.remove(&name).unwrap_or_default();
        state.zones.unmark(&zone, &name);
        state.health.remove(&name);
        state.retry.remove(&name);
        let reference = ObjectReference {
            api_version: Some("v1".into()),
            kind: Some("Node".into()),
            name: Some(name.clone()),
            ..Default::default()
        };
        let note = format!("Node {name} event: Removing Node {name} from Controller");
        ctx.events.normal(&reference, "RemovingNode", note).await;
    }

    let mut ready_by_zone: BTreeMap<String, Vec<bool>> = BTreeMap::new();
    let mut ready_now: HashMap<String, String> = HashMap::new();
    for node in &nodes {
        let name = node.metadata.name.clone().unwrap_or_default();
        let zone = zones::zone_key(node);
        let Some((observed, current)) = update_health(ctx, state, node).await else {
            continue;
        };
        if !zones::excluded_from_disruption(node) {
            let ready = current.as_ref().is_some_and(|c| c.status == "True");
            ready_by_zone.entry(zone.clone()).or_default().push(ready);
        }
        let Some(current) = current else {
            state.retry.remove(&name);
            continue;
        };
        ready_now.insert(name.clone(), current.status.clone());
        // Upstream's processTaintBaseEviction.
        match current.status.as_str() {
            "False" => {
                if has_taint(node, UNREACHABLE, "NoExecute") {
                    swap_or_log(
                        ctx,
                        node,
                        taint(NOT_READY, "NoExecute"),
                        taint(UNREACHABLE, "NoExecute"),
                    )
                    .await;
                } else {
                    state.zones.mark_for_tainting(&zone, &name);
                }
            }
            "Unknown" => {
                if has_taint(node, NOT_READY, "NoExecute") {
                    swap_or_log(
                        ctx,
                        node,
                        taint(UNREACHABLE, "NoExecute"),
                        taint(NOT_READY, "NoExecute"),
                    )
                    .await;
                } else {
                    state.zones.mark_for_tainting(&zone, &name);
                }
            }
            _ => mark_reachable(ctx, state, node).await,
        }
        let became_not_ready = current.status != "True" && observed.status == "True";
        let retry = state.retry.contains(&name) && current.status != "True";
        if became_not_ready {
            let note = format!("Node {name} status is now: NodeNotReady");
            ctx.events
                .normal(&node_reference(node, true), "NodeNotReady", note)
                .await;
        }
        if (became_not_ready || retry) && !mark_pods_not_ready(ctx, &name).await {
            state.retry.insert(name);
            continue;
        }
        state.retry.remove(&name);
    }

    match state.zones.handle_disruption(&ready_by_zone) {
        Disruption::Entered => {
            tracing::info!("every node is not ready: no NoExecute taints until one is back");
            for node in &nodes {
                mark_reachable(ctx, state, node).await;
            }
        }
        Disruption::Exited => {
            tracing::info!("some nodes are ready again: tainting resumes");
            let now = Timestamp::now();
            for health in state.health.values_mut() {
                health.probe = now;
            }
        }
        Disruption::Unchanged => {}
    }

    // Upstream's doNoExecuteTaintingPass, at each zone's rate.
    for (zone, name) in state.zones.take_taintable(Instant::now()) {
        let Some(node) = ctx.nodes.get(&ObjectRef::new(&name)) else {
            continue;
        };
        let status = ready_now
            .get(&name)
            .cloned()
            .or_else(|| ready_status(&node));
        let (add, remove) = match status.as_deref() {
            Some("False") => (NOT_READY, UNREACHABLE),
            Some("Unknown") => (UNREACHABLE, NOT_READY),
            // Ready again, or no condition yet.
            Some(_) => continue,
            None => {
                state.zones.retry(&zone, &name);
                continue;
            }
        };
        if let Err(err) = swap_taints(
            &ctx.client,
            &node,
            &[taint(add, "NoExecute")],
            &[taint(remove, "NoExecute")],
        )
        .await
        {
            tracing::warn!(node = %name, %err, "tainting an unreachable node");
            state.zones.retry(&zone, &name);
        }
    }
}

/// Upstream's `tryUpdateNodeHealth` with its write: returns the Ready
/// condition observed and the current one, or None when the node could not
/// be updated.
async fn update_health(
    ctx: &Context,
    state: &mut Monitor,
    node: &Node,
) -> Option<(NodeCondition, Option<NodeCondition>)> {
    let name = node.metadata.name.clone().unwrap_or_default();
    let lease = ctx
        .leases
        .get(&ObjectRef::new(&name).within(NODE_LEASE_NAMESPACE));
    let mut node = node.clone();
    for attempt in 0..2 {
        let observation = health::observe(
            state.health.get(&name),
            &node,
            lease.as_deref(),
            Timestamp::now(),
            state.grace,
        );
        state
            .health
            .insert(name.clone(), observation.health.clone());
        let Some(conditions) = observation.new_conditions else {
            return Some((observation.observed_ready, observation.current_ready));
        };
        tracing::info!(node = %name, "node stopped posting status: conditions set Unknown");
        let api: Api<Node> = Api::all(ctx.client.clone());
        let patch = json!({
            "metadata": {"resourceVersion": node.metadata.resource_version},
            "status": {"conditions": conditions},
        });
        match api
            .patch_status(&name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
        {
            Ok(_) => return Some((observation.observed_ready, observation.current_ready)),
            Err(err) if attempt == 0 => {
                tracing::debug!(node = %name, %err, "updating node status; reading it again");
                match api.get(&name).await {
                    Ok(fresh) => node = fresh,
                    Err(err) => {
                        tracing::warn!(node = %name, %err, "reading a node to update its health");
                        return None;
                    }
                }
            }
            Err(err) => {
                tracing::warn!(node = %name, %err, "updating node health; no pods evicted this pass");
                return None;
            }
        }
    }
    None
}

/// Takes the NoExecute taints off a reachable node and out of its queue.
async fn mark_reachable(ctx: &Context, state: &mut Monitor, node: &Node) {
    let name = node.metadata.name.clone().unwrap_or_default();
    state.zones.unmark(&zones::zone_key(node), &name);
    let remove: Vec<_> = [UNREACHABLE, NOT_READY]
        .into_iter()
        .filter(|key| has_taint(node, key, "NoExecute"))
        .map(|key| taint(key, "NoExecute"))
        .collect();
    if remove.is_empty() {
        return;
    }
    if let Err(err) = swap_taints(&ctx.client, node, &[], &remove).await {
        tracing::warn!(node = %name, %err, "removing NoExecute taints");
    }
}

async fn swap_or_log(
    ctx: &Context,
    node: &Node,
    add: k8s_openapi::api::core::v1::Taint,
    remove: k8s_openapi::api::core::v1::Taint,
) {
    if let Err(err) = swap_taints(&ctx.client, node, &[add], &[remove]).await {
        tracing::warn!(node = ?node.metadata.name, %err, "swapping NoExecute taints");
    }
}

/// Upstream's `MarkPodsNotReady`: the Ready condition of every pod on the
/// node becomes False, each with a `NodeNotReady` event. Returns whether
/// every pod was updated.
async fn mark_pods_not_ready(ctx: &Context, node_name: &str) -> bool {
    let pods = ctx
        .pods
        .state_filter(|p| p.spec.as_ref().and_then(|s| s.node_name.as_deref()) == Some(node_name));
    let mut all = true;
    for pod in pods {
        let ready = pod
            .status
            .as_ref()
            .and_then(|s| s.conditions.as_deref())
            .unwrap_or_default()
            .iter()
            .find(|c| c.type_ == "Ready");
        if ready.is_none_or(|c| c.status == "False") {
            continue;
        }
        let namespace = pod.metadata.namespace.clone().unwrap_or_default();
        let name = pod.metadata.name.clone().unwrap_or_default();
        let api: Api<Pod> = Api::namespaced(ctx.client.clone(), &namespace);
        let patch = json!({"status": {"conditions": [
            {"type": "Ready", "status": "False", "lastTransitionTime": Time(Timestamp::now())},
        ]}});
        match api
            .patch_status(&name, &PatchParams::default(), &Patch::Strategic(&patch))
            .await
        {
            Ok(_) => {}
            Err(kube::Error::Api(status)) if status.code == 404 => continue,
            Err(err) => {
                tracing::warn!(pod = %format!("{namespace}/{name}"), %err, "marking a pod not ready");
                all = false;
                continue;
            }
        }
        let reference = ObjectReference {
            api_version: Some("v1".into()),
            kind: Some("Pod".into()),
            namespace: Some(namespace),
            name: Some(name),
            uid: pod.metadata.uid.clone(),
            ..Default::default()
        };
        ctx.events
            .warning(&reference, "NodeNotReady", "Node is not ready".into())
            .await;
    }
    all
}

fn ready_status(node: &Node) -> Option<String> {
    node.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == "Ready")
        .map(|c| c.status.clone())
}

/// A reference to the node for its events; status-change events carry the
/// node's name as UID, as upstream's `RecordNodeStatusChange` does (kubectl
/// describe looks for both).
fn node_reference(node: &Node, name_as_uid: bool) -> ObjectReference {
    let uid = if name_as_uid {
        node.metadata.name.clone()
    } else {
        node.metadata.uid.clone()
    };
    ObjectReference {
        api_version: Some("v1".into()),
        kind: Some("Node".into()),
        name: node.metadata.name.clone(),
        uid,
        ..Default::default()
    }
}
