//! The score plugins of kube-scheduler's default profile that matter on a
//! cluster without volumes or inter-pod affinity, with upstream's weights:
//! TaintToleration (3), NodeAffinity (2), PodTopologySpread (2),
//! NodeResourcesFit LeastAllocated (1), NodeResourcesBalancedAllocation (1).

use serde_json::Value;

use super::filters::{term_matches, tolerates};
use super::node_info::{NodeInfo, array_at, str_at};
use super::resources::pod_requests;

/// The highest score a plugin gives a node.
const MAX_SCORE: i64 = 100;
/// maxSkew of the system-default hostname spread constraint.
const DEFAULT_MAX_SKEW: f64 = 3.0;

/// Total weighted score of each node, in the order given.
pub(super) fn score(pod: &Value, nodes: &[NodeInfo<'_>]) -> Vec<i64> {
    let plugins: [(i64, Vec<i64>); 5] = [
        (3, taint_toleration(pod, nodes)),
        (2, node_affinity(pod, nodes)),
        (2, spread(pod, nodes)),
        (1, nodes.iter().map(|n| least_allocated(pod, n)).collect()),
        (
            1,
            nodes.iter().map(|n| balanced_allocation(pod, n)).collect(),
        ),
    ];
    (0..nodes.len())
        .map(|i| {
            plugins
                .iter()
                .map(|(weight, scores)| weight * scores[i])
                .sum()
        })
        .collect()
}

/// Scales raw scores to 0..=100 by the largest one; `reverse` makes the
/// lowest raw score the best (upstream's `DefaultNormalizeScore`).
fn normalize(mut scores: Vec<i64>, reverse: bool) -> Vec<i64> {
    let max = scores.iter().copied().max().unwrap_or(0);
    for score in &mut scores {
        *score = match (max, reverse) {
            (0, true) => MAX_SCORE,
            (0, false) => *score,
            (max, false) => MAX_SCORE * *score / max,
            (max, true) => MAX_SCORE - MAX_SCORE * *score / max,
        };
    }
    scores
}

/// Fewer untolerated PreferNoSchedule taints is better.
fn taint_toleration(pod: &Value, nodes: &[NodeInfo<'_>]) -> Vec<i64> {
    let tolerations: Vec<&Value> = array_at(pod, &["spec", "tolerations"])
        .iter()
        .filter(|t| {
            matches!(
                str_at(t, &["effect"]),
                None | Some("") | Some("PreferNoSchedule")
            )
        })
        .collect();
    let raw = nodes
        .iter()
        .map(|n| {
            n.taints
                .iter()
                .filter(|t| t.effect == "PreferNoSchedule")
                .filter(|t| !tolerations.iter().any(|tol| tolerates(tol, t)))
                .count() as i64
        })
        .collect();
    normalize(raw, true)
}

/// Sum of the weights of the preferred node-affinity terms a node matches.
fn node_affinity(pod: &Value, nodes: &[NodeInfo<'_>]) -> Vec<i64> {
    let preferred = array_at(
        pod,
        &[
            "spec",
            "affinity",
            "nodeAffinity",
            "preferredDuringSchedulingIgnoredDuringExecution",
        ],
    );
    let raw = nodes
        .iter()
        .map(|n| {
            preferred
                .iter()
                .filter(|p| p.get("preference").is_some_and(|t| term_matches(t, n)))
                .filter_map(|p| p.get("weight").and_then(Value::as_i64))
                .sum()
        })
        .collect();
    normalize(raw, false)
}

/// Spreads a workload's pods over nodes, like PodTopologySpread with the
/// system-default hostname constraint (maxSkew 3, ScheduleAnyway). Pods
/// count as the same workload when they share a controller, or, for a pod
/// without one, when they carry all of its labels; both in its namespace.
fn spread(pod: &Value, nodes: &[NodeInfo<'_>]) -> Vec<i64> {
    let namespace = str_at(pod, &["metadata", "namespace"]).unwrap_or("default");
    let controller = controller_uid(pod);
    let labels = pod
        .get("metadata")
        .and_then(|m| m.get("labels"))
        .and_then(Value::as_object)
        .filter(|l| !l.is_empty());
    if controller.is_none() && labels.is_none() {
        return vec![MAX_SCORE; nodes.len()];
    }
    let same_workload = |other: &Value| {
        if str_at(other, &["metadata", "namespace"]).unwrap_or("default") != namespace
            || other
                .get("metadata")
                .and_then(|m| m.get("deletionTimestamp"))
                .is_some()
        {
            return false;
        }
        match (controller, labels) {
            (Some(uid), _) => controller_uid(other) == Some(uid),
            (None, Some(labels)) => labels.iter().all(|(k, v)| {
                other
                    .get("metadata")
                    .and_then(|m| m.get("labels"))
                    .and_then(|l| l.get(k))
                    == Some(v)
            }),
            (None, None) => false,
        }
    };
    // Upstream weighs each topology by log(number of domains + 2) and adds
    // maxSkew - 1, which softens the preference on small clusters.
    let weight = ((nodes.len() + 2) as f64).ln();
    let raw: Vec<i64> = nodes
        .iter()
        .map(|n| {
            let count = n.pods.iter().filter(|p| same_workload(p)).count() as f64;
            (count * weight + DEFAULT_MAX_SKEW - 1.0).round() as i64
        })
        .collect();
    let max = raw.iter().copied().max().unwrap_or(0);
    let min = raw.iter().copied().min().unwrap_or(0);
    raw.iter()
        .map(|s| {
            if max == 0 {
                MAX_SCORE
            } else {
                MAX_SCORE * (max + min - s) / max
            }
        })
        .collect()
}

/// The uid of the object's controlling owner.
fn controller_uid(object: &Value) -> Option<&str> {
    array_at(object, &["metadata", "ownerReferences"])
        .iter()
        .find(|r| r.get("controller").and_then(Value::as_bool) == Some(true))
        .and_then(|r| str_at(r, &["uid"]))
}

/// More free CPU and memory after placing the pod is better.
fn least_allocated(pod: &Value, node: &NodeInfo<'_>) -> i64 {
    let want = pod_requests(pod, true);
    let used = node.non_zero_requested.plus(want);
    let have = node.allocatable.resources;
    let free_share = |capacity: i64, requested: i64| {
        if capacity <= 0 || requested > capacity {
            0
        } else {
            // i128: capacities in bytes times 100 can pass i64 on huge nodes.
            (i128::from(capacity - requested) * i128::from(MAX_SCORE) / i128::from(capacity)) as i64
        }
    };
    (free_share(have.milli_cpu, used.milli_cpu) + free_share(have.memory, used.memory)) / 2
}

/// CPU and memory used in similar proportions is better.
fn balanced_allocation(pod: &Value, node: &NodeInfo<'_>) -> i64 {
    let used = node.requested.plus(pod_requests(pod, false));
    let have = node.allocatable.resources;
    let fraction = |requested: i64, capacity: i64| {
        (capacity > 0).then(|| (requested as f64 / capacity as f64).min(1.0))
    };
    match (
        fraction(used.milli_cpu, have.milli_cpu),
        fraction(used.memory, have.memory),
    ) {
        (Some(cpu), Some(memory)) => ((1.0 - (cpu - memory).abs() / 2.0) * MAX_SCORE as f64) as i64,
        _ => MAX_SCORE,
    }
}
