//! Whether a node's kubelet is still alive, as upstream's
//! `tryUpdateNodeHealth` decides: the controller notes *when it observed*
//! the node's Ready heartbeat or its Lease's renewTime change (its own
//! clock, so node clock skew does not matter), and once nothing changed for
//! the grace period (40 s; 60 s for a node that never posted a status) it
//! sets the node's Ready, MemoryPressure, DiskPressure and PIDPressure
//! conditions to Unknown.
//!
//! Pure: the caller passes the time in.

use std::time::Duration;

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Node, NodeCondition};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;

/// The conditions set Unknown when the kubelet goes silent (not
/// NetworkUnavailable: the network plugin owns that one).
const WATCHED_CONDITIONS: [&str; 4] = ["Ready", "MemoryPressure", "DiskPressure", "PIDPressure"];

/// How long a node may stay silent.
#[derive(Debug, Clone, Copy)]
pub(super) struct Grace {
    /// With a Ready condition (`--node-monitor-grace-period`).
    pub monitor: Duration,
    /// Before the kubelet first posts its status (`--node-startup-grace-period`).
    pub startup: Duration,
}

/// What the controller remembers of a node between passes.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct NodeHealth {
    /// The Ready condition last seen.
    ready: Option<NodeCondition>,
    /// When the controller last saw the node alive.
    pub probe: Timestamp,
    /// The Lease renewTime last seen.
    lease_renew: Option<Timestamp>,
}

/// One look at a node.
#[derive(Debug, Clone)]
pub(super) struct Observation {
    /// What to remember.
    pub health: NodeHealth,
    /// The node's Ready condition as stored (a stand-in Unknown one when it
    /// has none).
    pub observed_ready: NodeCondition,
    /// The Ready condition after this look (None if the node has none).
    pub current_ready: Option<NodeCondition>,
    /// The node's new `status.conditions` when the look made them Unknown.
    pub new_conditions: Option<Vec<NodeCondition>>,
}

/// Looks at `node` (and its `lease`) at `now`, given what was remembered.
pub(super) fn observe(
    saved: Option<&NodeHealth>,
    node: &Node,
    lease: Option<&Lease>,
    now: Timestamp,
    grace: Grace,
) -> Observation {
    let created = node
        .metadata
        .creation_timestamp
        .as_ref()
        .map_or(now, |t| t.0);
    let conditions: Vec<NodeCondition> = node
        .status
        .as_ref()
        .and_then(|s| s.conditions.clone())
        .unwrap_or_default();
    let current = conditions.iter().find(|c| c.type_ == "Ready").cloned();
    let (observed_ready, grace_period) = match &current {
        None => (
            NodeCondition {
                type_: "Ready".into(),
                status: "Unknown".into(),
                last_heartbeat_time: Some(Time(created)),
                last_transition_time: Some(Time(created)),
                ..Default::default()
            },
            grace.startup,
        ),
        Some(ready) => (ready.clone(), grace.monitor),
    };
    let fresh = |ready: &NodeCondition, lease_renew| NodeHealth {
        ready: Some(ready.clone()),
        probe: now,
        lease_renew,
    };
    let mut health = match (saved, &current) {
        // Never posted: the grace period runs from the node's creation.
        (None, None) => NodeHealth {
            ready: None,
            probe: created,
            lease_renew: None,
        },
        (Some(saved), None) => NodeHealth {
            ready: None,
            ..saved.clone()
        },
        (None, Some(ready)) => fresh(ready, None),
        (Some(saved), Some(ready)) => match &saved.ready {
            Some(last) if last.last_heartbeat_time == ready.last_heartbeat_time => NodeHealth {
                ready: Some(ready.clone()),
                ..saved.clone()
            },
            _ => fresh(ready, saved.lease_renew),
        },
    };
    let renewed = lease
        .and_then(|l| l.spec.as_ref())
        .and_then(|s| s.renew_time.as_ref())
        .map(|t| t.0);
    if let Some(renewed) = renewed
        && health.lease_renew.is_none_or(|last| last < renewed)
    {
        health.lease_renew = Some(renewed);
        health.probe = now;
    }
    let deadline = health.probe.checked_add(grace_period).ok();
    let expired = deadline.is_some_and(|deadline| now > deadline);
    let mut observation = Observation {
        observed_ready: observed_ready.clone(),
        current_ready: current,
        new_conditions: None,
        health,
    };
    if !expired {
        return observation;
    }
    let mut updated = conditions;
    for type_ in WATCHED_CONDITIONS {
        match updated.iter_mut().find(|c| c.type_ == type_) {
            None => updated.push(NodeCondition {
                type_: type_.into(),
                status: "Unknown".into(),
                reason: Some("NodeStatusNeverUpdated".into()),
                message: Some("Kubelet never posted node status.".into()),
                last_heartbeat_time: Some(Time(created)),
                last_transition_time: Some(Time(now)),
            }),
            Some(condition) if condition.status != "Unknown" => {
                condition.status = "Unknown".into();
                condition.reason = Some("NodeStatusUnknown".into());
                condition.message = Some("Kubelet stopped posting node status.".into());
                condition.last_transition_time = Some(Time(now));
            }
            Some(_) => {}
        }
    }
    let ready = updated.iter().find(|c| c.type_ == "Ready").cloned();
    if ready.as_ref() != Some(&observed_ready) {
        observation.health.ready = ready.clone();
        observation.current_ready = ready;
        observation.new_conditions = Some(updated);
    }
    observation
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const GRACE: Grace = Grace {
        monitor: Duration::from_secs(40),
        startup: Duration::from_secs(60),
    };

    fn at(seconds: i64) -> Timestamp {
        Timestamp::from_second(1_700_000_000 + seconds).unwrap()
    }

    fn rfc(seconds: i64) -> String {
        at(seconds).to_string()
    }

    fn node(ready: Option<(&str, i64)>) -> Node {
        let conditions = match ready {
            None => json!([]),
            Some((status, heartbeat)) => json!([
                {"type": "Ready", "status": status, "reason": "KubeletReady",
                 "lastHeartbeatTime": rfc(heartbeat), "lastTransitionTime": rfc(0)},
                {"type": "MemoryPressure", "status": "False",
                 "lastHeartbeatTime": rfc(heartbeat), "lastTransitionTime": rfc(0)},
            ]),
        };
        serde_json::from_value(json!({
            "metadata": {"name": "n", "creationTimestamp": rfc(0)},
            "status": {"conditions": conditions},
        }))
        .unwrap()
    }

    fn lease(renewed: i64) -> Lease {
        serde_json::from_value(json!({
            "metadata": {"name": "n", "namespace": "kube-node-lease"},
            "spec": {"renewTime": rfc(renewed)},
        }))
        .unwrap()
    }

    /// Observes `node` at each time in turn, carrying the health along.
    fn run(steps: &[(i64, &Node, Option<&Lease>)]) -> Observation {
        let mut saved: Option<NodeHealth> = None;
        let mut last = None;
        for (now, node, lease) in steps {
            let o = observe(saved.as_ref(), node, *lease, at(*now), GRACE);
            saved = Some(o.health.clone());
            last = Some(o);
        }
        last.unwrap()
    }

    #[test]
    fn a_renewed_lease_keeps_the_node_alive() {
        let n = node(Some(("True", 0)));
        let o = run(&[
            (1, &n, Some(&lease(1))),
            (30, &n, Some(&lease(30))),
            (65, &n, Some(&lease(60))),
        ]);
        assert!(o.new_conditions.is_none());
        assert_eq!(o.current_ready.unwrap().status, "True");
    }

    #[test]
    fn a_lease_not_renewed_for_the_grace_period_makes_the_node_unknown() {
        let n = node(Some(("True", 0)));
        let l = lease(1);
        let not_yet = run(&[(1, &n, Some(&l)), (41, &n, Some(&l))]);
        assert!(not_yet.new_conditions.is_none());
        let o = run(&[(1, &n, Some(&l)), (42, &n, Some(&l))]);
        let conditions = o.new_conditions.unwrap();
        let ready = conditions.iter().find(|c| c.type_ == "Ready").unwrap();
        assert_eq!(ready.status, "Unknown");
        assert_eq!(ready.reason.as_deref(), Some("NodeStatusUnknown"));
        assert_eq!(
            ready.message.as_deref(),
            Some("Kubelet stopped posting node status.")
        );
        assert_eq!(ready.last_transition_time, Some(Time(at(42))));
        assert_eq!(ready.last_heartbeat_time, Some(Time(at(0))));
        let memory = conditions
            .iter()
            .find(|c| c.type_ == "MemoryPressure")
            .unwrap();
        assert_eq!(memory.status, "Unknown");
        for missing in ["DiskPressure", "PIDPressure"] {
            let c = conditions.iter().find(|c| c.type_ == missing).unwrap();
            assert_eq!(
                (c.status.as_str(), c.reason.as_deref()),
                ("Unknown", Some("NodeStatusNeverUpdated"))
            );
            assert_eq!(
                c.message.as_deref(),
                Some("Kubelet never posted node status.")
            );
        }
        assert_eq!(o.observed_ready.status, "True");
        assert_eq!(o.current_ready.unwrap().status, "Unknown");
    }

    #[test]
    fn the_controllers_own_clock_counts_not_the_lease_time() {
        // A lease renewed "in the past" by a skewed node still counts as
        // alive when the controller sees it change.
        let n = node(Some(("True", 0)));
        let o = run(&[
            (1, &n, Some(&lease(-500))),
            (30, &n, Some(&lease(-470))),
            (65, &n, Some(&lease(-440))),
        ]);
        assert!(o.new_conditions.is_none());
    }

    #[test]
    fn status_heartbeats_alone_keep_the_node_alive() {
        let o = run(&[
            (1, &node(Some(("True", 1))), None),
            (30, &node(Some(("True", 30))), None),
            (65, &node(Some(("True", 60))), None),
        ]);
        assert!(o.new_conditions.is_none());
        let stale = run(&[
            (1, &node(Some(("True", 1))), None),
            (45, &node(Some(("True", 1))), None),
        ]);
        assert!(stale.new_conditions.is_some());
    }

    #[test]
    fn a_node_that_never_posted_gets_the_startup_grace_from_creation() {
        let n = node(None);
        assert!(run(&[(59, &n, None)]).new_conditions.is_none());
        let o = run(&[(61, &n, None)]);
        let conditions = o.new_conditions.unwrap();
        assert_eq!(conditions.len(), 4);
        assert!(conditions.iter().all(|c| c.status == "Unknown"));
        // Once written, looking again changes nothing more.
        let mut written = n.clone();
        written.status.as_mut().unwrap().conditions = Some(conditions);
        let again = observe(Some(&o.health), &written, None, at(70), GRACE);
        assert!(again.new_conditions.is_none());
    }

    #[test]
    fn an_unknown_node_stays_unknown_without_rewrites() {
        let n = node(Some(("Unknown", 0)));
        let o = run(&[(1, &n, None), (100, &n, None)]);
        assert!(o.new_conditions.is_none());
    }
}
