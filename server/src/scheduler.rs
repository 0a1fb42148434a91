//! kube-scheduler's part of `skiff server`: which node a pending pod goes
//! to, or why none can take it, in kube-scheduler's words; and the loop that
//! binds it there.
//!
//! [`schedule`] is a pure function over Pods and Nodes as the apiserver
//! stores them (`serde_json::Value`); [`run`] is the loop that watches pods
//! and nodes, binds pending pods and records why the others wait, as
//! kube-scheduler does.
//!
//! # Layout
//!
//! - `quantity`: exact resource quantities ("100m", "128Mi").
//! - `resources`: a pod's effective requests, a node's allocatable.
//! - `node_info`: a node with the pods bound to it.
//! - `filters`: the default filter plugins and their reason strings.
//! - `scoring`: the default score plugins and their weights.
//! - `cache`: nodes and pods as the watches show them, plus assumed pods.
//! - `queue`: the scheduling queue (active, back-off, unschedulable).
//! - `state`: cache and queue as a state machine: events in, decisions out.
//! - `binder`: bindings, `Scheduled`/`FailedScheduling` events, the
//!   PodScheduled condition.
//! - `scheduling_loop`: the watches and tasks around the state machine.

use std::collections::BTreeMap;

use serde_json::Value;

mod binder;
mod cache;
mod filters;
mod node_info;
pub mod quantity;
mod queue;
mod resources;
mod scheduling_loop;
mod scoring;
mod state;
#[cfg(test)]
mod tests;

use filters::Rejection;
use node_info::{NodeInfo, str_at};
pub use scheduling_loop::run;

/// Message when the cluster has no nodes at all (upstream's
/// `ErrNoNodesAvailable`).
pub const NO_NODES_MESSAGE: &str = "no nodes available to schedule pods";

/// Where a pod should be bound.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placement {
    /// Name of the chosen node.
    pub node: String,
}

/// Why no node can take a pod.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unschedulable {
    /// kube-scheduler's text for the PodScheduled condition and the
    /// FailedScheduling event, e.g. "0/1 nodes are available: 1 Insufficient
    /// cpu. preemption: 0/1 nodes are available: 1 No preemption victims
    /// found for incoming pod."
    pub message: String,
    /// How many nodes gave each filter reason ("Insufficient cpu" -> 1).
    pub reasons: BTreeMap<String, usize>,
}

/// Picks a node for `pod` among `nodes`, given `bound_pods`, the pods already
/// bound to nodes and not terminated (others among them are ignored).
///
/// Feasible nodes are scored with kube-scheduler's default weights; ties go
/// to the node whose name sorts first, so the result is deterministic.
pub fn schedule<'a>(
    pod: &Value,
    nodes: impl IntoIterator<Item = &'a Value>,
    bound_pods: impl IntoIterator<Item = &'a Value>,
) -> Result<Placement, Unschedulable> {
    let nodes: Vec<&Value> = nodes.into_iter().collect();
    if nodes.is_empty() {
        return Err(Unschedulable {
            message: NO_NODES_MESSAGE.to_string(),
            reasons: BTreeMap::new(),
        });
    }
    let pod_uid = str_at(pod, &["metadata", "uid"]);
    let others: Vec<&Value> = bound_pods
        .into_iter()
        .filter(|p| pod_uid.is_none() || str_at(p, &["metadata", "uid"]) != pod_uid)
        .collect();
    let infos: Vec<NodeInfo<'_>> = nodes.iter().map(|n| NodeInfo::new(n, &others)).collect();
    let mut feasible = Vec::new();
    let mut rejections = Vec::new();
    for info in infos {
        match filters::filter(pod, &info) {
            Ok(()) => feasible.push(info),
            Err(rejection) => rejections.push(rejection),
        }
    }
    if feasible.is_empty() {
        return Err(unschedulable(pod, nodes.len(), &rejections));
    }
    let scores = scoring::score(pod, &feasible);
    let best = feasible
        .iter()
        .zip(scores)
        .max_by(|(a, sa), (b, sb)| sa.cmp(sb).then_with(|| b.name.cmp(a.name)))
        .map(|(info, _)| info.name.to_string())
        .unwrap_or_default();
    Ok(Placement { node: best })
}

/// Builds kube-scheduler's FitError text, with the note DefaultPreemption
/// appends when it finds nothing to preempt (this scheduler never preempts).
fn unschedulable(pod: &Value, node_count: usize, rejections: &[Rejection]) -> Unschedulable {
    let mut reasons = BTreeMap::new();
    for reason in rejections.iter().flat_map(|r| &r.reasons) {
        *reasons.entry(reason.clone()).or_insert(0) += 1;
    }
    let mut message = format!(
        "0/{node_count} nodes are available: {}.",
        histogram(&reasons)
    );
    if str_at(pod, &["spec", "preemptionPolicy"]) == Some("Never") {
        message.push_str(" preemption: not eligible due to preemptionPolicy=Never.");
    } else {
        let mut preemption = BTreeMap::new();
        for rejection in rejections {
            let reason = if rejection.resolvable {
                "No preemption victims found for incoming pod"
            } else {
                "Preemption is not helpful for scheduling"
            };
            *preemption.entry(reason.to_string()).or_insert(0) += 1;
        }
        message.push_str(&format!(
            " preemption: 0/{node_count} nodes are available: {}.",
            histogram(&preemption)
        ));
    }
    Unschedulable { message, reasons }
}

/// "<count> <reason>" entries sorted as strings (so "10 x" before "2 y"),
/// joined by ", ", as upstream's sortReasonsHistogram does.
fn histogram(counts: &BTreeMap<String, usize>) -> String {
    let mut entries: Vec<String> = counts
        .iter()
        .map(|(reason, count)| format!("{count} {reason}"))
        .collect();
    entries.sort();
    entries.join(", ")
}
