//! Which pods a ReplicaSet deletes first when it has too many, in
//! upstream's order (`ActivePodsWithRanks`, with the PodDeletionCost and
//! LogarithmicScaleDown features on, as in 1.32):
//!
//! 1. not scheduled before scheduled;
//! 2. Pending before Unknown before Running;
//! 3. not ready before ready;
//! 4. lower `controller.kubernetes.io/pod-deletion-cost` first;
//! 5. more related pods on the same node first;
//! 6. ready for a shorter time first (in powers of two of the time since);
//! 7. more container restarts first;
//! 8. newer first (in powers of two of the age); ties broken by uid.

use std::cmp::Ordering;
use std::collections::HashMap;

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::jiff::Timestamp;

use crate::controllers::common::{pod_is_active, pod_is_ready, pod_ready_since};

/// The annotation that orders deletions among otherwise equal pods.
pub(crate) const POD_DELETION_COST: &str = "controller.kubernetes.io/pod-deletion-cost";

/// The `count` pods of `candidates` to delete first. `related` are the
/// active pods of every ReplicaSet under the same controller (a
/// Deployment's ReplicaSets): a pod sharing its node with more of them
/// goes first.
pub(crate) fn pods_to_delete<'a>(
    candidates: &[&'a Pod],
    related: &[&Pod],
    count: usize,
    now: Timestamp,
) -> Vec<&'a Pod> {
    if count >= candidates.len() {
        return candidates.to_vec();
    }
    let mut on_node: HashMap<&str, usize> = HashMap::new();
    for pod in related.iter().filter(|pod| pod_is_active(pod)) {
        *on_node.entry(node_name(pod)).or_default() += 1;
    }
    let mut ranked: Vec<(&Pod, usize)> = candidates
        .iter()
        .map(|pod| (*pod, on_node.get(node_name(pod)).copied().unwrap_or(0)))
        .collect();
    ranked.sort_by(|a, b| compare(a, b, now));
    ranked.into_iter().take(count).map(|(pod, _)| pod).collect()
}

/// `Less` if `a` should be deleted before `b`.
fn compare(a: &(&Pod, usize), b: &(&Pod, usize), now: Timestamp) -> Ordering {
    if delete_first(a, b, now) {
        Ordering::Less
    } else if delete_first(b, a, now) {
        Ordering::Greater
    } else {
        Ordering::Equal
    }
}

fn delete_first(
    &(a, rank_a): &(&Pod, usize),
    &(b, rank_b): &(&Pod, usize),
    now: Timestamp,
) -> bool {
    let (node_a, node_b) = (node_name(a), node_name(b));
    if node_a != node_b && (node_a.is_empty() || node_b.is_empty()) {
        return node_a.is_empty();
    }
    if phase_ordinal(a) != phase_ordinal(b) {
        return phase_ordinal(a) < phase_ordinal(b);
    }
    if pod_is_ready(a) != pod_is_ready(b) {
        return !pod_is_ready(a);
    }
    if deletion_cost(a) != deletion_cost(b) {
        return deletion_cost(a) < deletion_cost(b);
    }
    if rank_a != rank_b {
        return rank_a > rank_b;
    }
    if pod_is_ready(a) && pod_is_ready(b) {
        let (ready_a, ready_b) = (pod_ready_since(a), pod_ready_since(b));
        if ready_a != ready_b {
            return later_by_log_scale(a, b, ready_a, ready_b, now);
        }
    }
    if max_restarts(a) != max_restarts(b) {
        return max_restarts(a) > max_restarts(b);
    }
    let (created_a, created_b) = (created(a), created(b));
    if created_a != created_b {
        return later_by_log_scale(a, b, created_a, created_b, now);
    }
    false
}

/// Whether `a`'s time is the later one (a missing time counts as the
/// latest), compared in whole powers of two of the time elapsed since;
/// equal buckets fall back to the uids.
fn later_by_log_scale(
    a: &Pod,
    b: &Pod,
    time_a: Option<Timestamp>,
    time_b: Option<Timestamp>,
    now: Timestamp,
) -> bool {
    let (Some(time_a), Some(time_b)) = (time_a, time_b) else {
        return time_a.is_none();
    };
    let diff = log2_bucket(now, time_a) - log2_bucket(now, time_b);
    if diff == 0 {
        return uid(a) < uid(b);
    }
    diff < 0
}

/// `floor(log2(nanoseconds since t))`, or -1 for a time not in the past.
fn log2_bucket(now: Timestamp, t: Timestamp) -> i64 {
    let nanos = now.as_nanosecond() - t.as_nanosecond();
    if nanos <= 0 {
        return -1;
    }
    // Precision loss is irrelevant: only the exponent is used.
    #[allow(clippy::cast_precision_loss, clippy::cast_possible_truncation)]
    let bucket = (nanos as f64).log2() as i64;
    bucket
}

fn node_name(pod: &Pod) -> &str {
    pod.spec
        .as_ref()
        .and_then(|spec| spec.node_name.as_deref())
        .unwrap_or("")
}

fn phase_ordinal(pod: &Pod) -> u8 {
    match pod.status.as_ref().and_then(|s| s.phase.as_deref()) {
        Some("Unknown") => 1,
        Some("Running") => 2,
        _ => 0,
    }
}

/// The pod's deletion cost; 0 when absent or not an int32, as upstream.
pub(crate) fn deletion_cost(pod: &Pod) -> i32 {
    pod.metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(POD_DELETION_COST))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

fn max_restarts(pod: &Pod) -> i32 {
    pod.status
        .as_ref()
        .and_then(|s| s.container_statuses.as_ref())
        .map(|statuses| statuses.iter().map(|c| c.restart_count).max().unwrap_or(0))
        .unwrap_or(0)
}

fn created(pod: &Pod) -> Option<Timestamp> {
    pod.metadata.creation_timestamp.as_ref().map(|t| t.0)
}

fn uid(pod: &Pod) -> &str {
    pod.metadata.uid.as_deref().unwrap_or("")
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{ContainerStatus, PodCondition, PodSpec, PodStatus};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    const NOW: i64 = 1_700_000_000;

    fn at(secs_ago: i64) -> Timestamp {
        Timestamp::from_second(NOW - secs_ago).unwrap()
    }

    struct P {
        name: &'static str,
        node: &'static str,
        phase: &'static str,
        ready_secs_ago: Option<i64>,
        created_secs_ago: i64,
        restarts: i32,
        cost: Option<&'static str>,
    }

    impl Default for P {
        fn default() -> Self {
            P {
                name: "p",
                node: "n1",
                phase: "Running",
                ready_secs_ago: Some(100),
                created_secs_ago: 200,
                restarts: 0,
                cost: None,
            }
        }
    }

    fn pod(p: P) -> Pod {
        let mut pod = Pod::default();
        pod.metadata.name = Some(p.name.into());
        pod.metadata.uid = Some(format!("uid-{}", p.name));
        pod.metadata.creation_timestamp = Some(Time(at(p.created_secs_ago)));
        if let Some(cost) = p.cost {
            pod.metadata.annotations =
                Some([(POD_DELETION_COST.to_owned(), cost.to_owned())].into());
        }
        pod.spec = Some(PodSpec {
            node_name: (!p.node.is_empty()).then(|| p.node.to_owned()),
            ..Default::default()
        });
        pod.status = Some(PodStatus {
            phase: Some(p.phase.into()),
            conditions: p.ready_secs_ago.map(|ago| {
                vec![PodCondition {
                    type_: "Ready".into(),
                    status: "True".into(),
                    last_transition_time: Some(Time(at(ago))),
                    ..Default::default()
                }]
            }),
            container_statuses: Some(vec![ContainerStatus {
                restart_count: p.restarts,
                ..Default::default()
            }]),
            ..Default::default()
        });
        pod
    }

    fn first(pods: &[Pod], count: usize) -> Vec<String> {
        let refs: Vec<&Pod> = pods.iter().collect();
        pods_to_delete(&refs, &refs, count, at(0))
            .into_iter()
            .map(|p| p.metadata.name.clone().unwrap())
            .collect()
    }

    #[test]
    fn unscheduled_then_pending_then_not_ready_go_first() {
        let pods = vec![
            pod(P {
                name: "ready",
                ..P::default()
            }),
            pod(P {
                name: "not-ready",
                ready_secs_ago: None,
                ..P::default()
            }),
            pod(P {
                name: "pending",
                phase: "Pending",
                ready_secs_ago: None,
                ..P::default()
            }),
            pod(P {
                name: "unscheduled",
                node: "",
                phase: "Pending",
                ready_secs_ago: None,
                ..P::default()
            }),
        ];
        assert_eq!(first(&pods, 3), ["unscheduled", "pending", "not-ready"]);
    }

    #[test]
    fn deletion_cost_beats_colocation_and_age() {
        let pods = vec![
            pod(P {
                name: "cheap",
                cost: Some("-5"),
                created_secs_ago: 100_000,
                ..P::default()
            }),
            pod(P {
                name: "default",
                node: "n2",
                ..P::default()
            }),
            pod(P {
                name: "invalid-cost",
                node: "n2",
                cost: Some("x"),
                ..P::default()
            }),
        ];
        assert_eq!(first(&pods, 1), ["cheap"]);
    }

    #[test]
    fn pods_doubled_up_on_a_node_go_first() {
        let pods = vec![
            pod(P {
                name: "alone",
                node: "n1",
                ..P::default()
            }),
            pod(P {
                name: "shared-a",
                node: "n2",
                ..P::default()
            }),
            pod(P {
                name: "shared-b",
                node: "n2",
                ..P::default()
            }),
        ];
        let chosen = first(&pods, 1);
        assert!(chosen[0].starts_with("shared"), "{chosen:?}");
    }

    #[test]
    fn recently_ready_then_restarting_then_newer_go_first() {
        // Ready 10 s vs 1000 s ago: different powers of two.
        let pods = vec![
            pod(P {
                name: "old-ready",
                ready_secs_ago: Some(1000),
                ..P::default()
            }),
            pod(P {
                name: "new-ready",
                ready_secs_ago: Some(10),
                ..P::default()
            }),
        ];
        assert_eq!(first(&pods, 1), ["new-ready"]);
        let pods = vec![
            pod(P {
                name: "steady",
                ..P::default()
            }),
            pod(P {
                name: "restarting",
                restarts: 3,
                ..P::default()
            }),
        ];
        assert_eq!(first(&pods, 1), ["restarting"]);
        let pods = vec![
            pod(P {
                name: "older",
                created_secs_ago: 5000,
                ..P::default()
            }),
            pod(P {
                name: "newer",
                created_secs_ago: 20,
                ..P::default()
            }),
        ];
        assert_eq!(first(&pods, 1), ["newer"]);
    }

    #[test]
    fn times_in_the_same_power_of_two_fall_back_to_uid() {
        // 100 s and 101 s ago share floor(log2(ns)).
        let pods = vec![
            pod(P {
                name: "b",
                created_secs_ago: 100,
                ready_secs_ago: Some(50),
                ..P::default()
            }),
            pod(P {
                name: "a",
                created_secs_ago: 101,
                ready_secs_ago: Some(50),
                ..P::default()
            }),
        ];
        assert_eq!(first(&pods, 1), ["a"]);
    }

    #[test]
    fn asking_for_all_returns_all() {
        let pods = vec![
            pod(P {
                name: "x",
                ..P::default()
            }),
            pod(P {
                name: "y",
                ..P::default()
            }),
        ];
        assert_eq!(first(&pods, 5).len(), 2);
    }
}
