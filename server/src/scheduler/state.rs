//! The scheduler as a state machine without I/O: watch events and the
//! outcomes of API calls go in, decisions (bind this pod there, record why
//! that one fits nowhere) come out. `scheduling_loop` feeds it and carries
//! the decisions out.

use kube::runtime::watcher::Event;
use serde_json::Value;
use tokio::time::Instant;

use super::cache::{
    Change, ClusterCache, is_bound, is_pending, node_changed, node_name, pod_changed, pod_key,
    pod_uid, priority,
};
use super::queue::{PodKey, SchedulingQueue};

/// What to do for a pod.
#[derive(Debug)]
pub(super) enum Decision {
    /// Bind the pod (as last seen, unbound) to `node`; it is assumed there.
    Bind {
        key: PodKey,
        pod: Value,
        node: String,
    },
    /// Record that the pod fits nowhere, with kube-scheduler's message.
    Unschedulable {
        key: PodKey,
        pod: Value,
        message: String,
    },
}

/// How carrying out a decision ended.
#[derive(Debug)]
pub(super) enum Outcome {
    /// The pod is bound.
    Bound(PodKey),
    /// The binding failed; `retry` unless the pod is gone or bound by
    /// someone else.
    BindFailed { key: PodKey, retry: bool },
    /// The unschedulable pod's condition and event were written (or tried).
    Recorded(PodKey),
}

/// The cache and queue together.
#[derive(Debug, Default)]
pub(super) struct SchedulerState {
    cache: ClusterCache,
    queue: SchedulingQueue,
}

impl SchedulerState {
    /// Takes in a pod watch event.
    pub fn pod_event(&mut self, event: Event<Value>, now: Instant) {
        for change in self.cache.pods.apply(event, pod_uid) {
            match change {
                Change::Applied { key, old } => self.pod_applied(&key, old, now),
                Change::Removed { old } => self.pod_removed(&old, now),
            }
        }
    }

    /// Takes in a node watch event.
    pub fn node_event(&mut self, event: Event<Value>, now: Instant) {
        let mut moved = false;
        for change in self.cache.nodes.apply(event, node_name) {
            if let Change::Applied { key, old } = change {
                let new = self.cache.nodes.get(&key);
                let changed = match (old.as_ref(), new) {
                    (Some(old), Some(new)) => node_changed(old, new),
                    _ => true,
                };
                moved |= changed;
            }
        }
        if moved {
            self.queue.move_all(now);
        }
    }

    /// Decides for every pod due now, assuming each pod bound before
    /// deciding the next one.
    pub fn decide(&mut self, now: Instant) -> Vec<Decision> {
        if !self.cache.synced() {
            return Vec::new();
        }
        self.queue.flush(now);
        let mut decisions = Vec::new();
        while let Some(key) = self.queue.pop(now) {
            let Some(pod) = self.cache.pending(&key.uid) else {
                self.queue.remove(&key);
                continue;
            };
            let result = super::schedule(pod, self.cache.nodes.values(), self.cache.bound_pods());
            let pod = pod.clone();
            match result {
                Ok(placement) => {
                    self.cache.assume(&key.uid, &placement.node);
                    tracing::debug!(pod = %key, node = %placement.node, "binding");
                    decisions.push(Decision::Bind {
                        key,
                        pod,
                        node: placement.node,
                    });
                }
                Err(unschedulable) => {
                    tracing::debug!(pod = %key, message = %unschedulable.message, "unschedulable");
                    decisions.push(Decision::Unschedulable {
                        key,
                        pod,
                        message: unschedulable.message,
                    });
                }
            }
        }
        decisions
    }

    /// Takes in how a decision ended.
    pub fn outcome(&mut self, outcome: Outcome, now: Instant) {
        match outcome {
            Outcome::Bound(key) => self.queue.remove(&key),
            Outcome::BindFailed { key, retry } => {
                // The room the pod was assumed to take is free again.
                self.cache.forget(&key.uid);
                if retry {
                    self.queue.failed(&key, now);
                } else {
                    self.queue.remove(&key);
                }
                self.queue.move_all(now);
            }
            Outcome::Recorded(key) => self.queue.unschedulable(&key, now),
        }
    }

    /// A pod decided on but whose outcome will never come (its task died):
    /// it backs off and is tried again.
    pub fn abandoned(&mut self, key: &PodKey, now: Instant) {
        self.cache.forget(&key.uid);
        self.queue.failed(key, now);
    }

    /// When a waiting pod is next due, if any (none before `decide` can
    /// run, so the loop never wakes for nothing).
    pub fn next_wakeup(&self) -> Option<Instant> {
        self.cache
            .synced()
            .then(|| self.queue.next_wakeup())
            .flatten()
    }

    fn pod_applied(&mut self, uid: &str, old: Option<Value>, now: Instant) {
        let Some(new) = self.cache.pods.get(uid) else {
            return;
        };
        let Some(key) = pod_key(new) else {
            return;
        };
        let bound = is_bound(new);
        let freed = old.as_ref().is_some_and(is_bound) && !bound;
        if is_pending(new) {
            if !self.cache.is_assumed(uid) {
                let changed = old.as_ref().is_none_or(|old| pod_changed(old, new));
                self.queue.add(key, priority(new), changed, now);
            }
        } else {
            self.queue.remove(&key);
        }
        if bound {
            self.cache.forget(uid);
        }
        if freed {
            self.queue.move_all(now);
        }
    }

    fn pod_removed(&mut self, old: &Value, now: Instant) {
        let Some(key) = pod_key(old) else {
            return;
        };
        let assumed = self.cache.forget(&key.uid);
        self.queue.remove(&key);
        if assumed || is_bound(old) {
            self.queue.move_all(now);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use serde_json::json;

    use super::*;

    fn node(name: &str, cpu: &str) -> Value {
        json!({
            "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name}},
            "spec": {},
            "status": {
                "allocatable": {"cpu": cpu, "memory": "4Gi", "pods": "110"},
                "conditions": [{"type": "Ready", "status": "True"}],
            },
        })
    }

    fn pod(name: &str, cpu: &str) -> Value {
        json!({
            "metadata": {"name": name, "namespace": "default", "uid": format!("uid-{name}"),
                         "labels": {"app": "web"}},
            "spec": {
                "schedulerName": "default-scheduler",
                "containers": [{"name": "c", "image": "busybox",
                                "resources": {"requests": {"cpu": cpu}}}],
            },
            "status": {"phase": "Pending"},
        })
    }

    fn bound(mut pod: Value, node: &str) -> Value {
        pod["spec"]["nodeName"] = json!(node);
        pod
    }

    /// A state that has listed `nodes` and `pods`.
    fn listed(nodes: Vec<Value>, pods: Vec<Value>, now: Instant) -> SchedulerState {
        let mut state = SchedulerState::default();
        state.node_event(Event::Init, now);
        for n in nodes {
            state.node_event(Event::InitApply(n), now);
        }
        state.node_event(Event::InitDone, now);
        state.pod_event(Event::Init, now);
        for p in pods {
            state.pod_event(Event::InitApply(p), now);
        }
        state.pod_event(Event::InitDone, now);
        state
    }

    fn summary(decisions: &[Decision]) -> Vec<String> {
        decisions
            .iter()
            .map(|d| match d {
                Decision::Bind { key, node, .. } => format!("{} -> {node}", key.name),
                Decision::Unschedulable { key, message, .. } => {
                    format!("{} unschedulable: {message}", key.name)
                }
            })
            .collect()
    }

    fn key_of(name: &str) -> PodKey {
        PodKey {
            namespace: "default".into(),
            name: name.into(),
            uid: format!("uid-{name}"),
        }
    }

    #[test]
    fn nothing_is_decided_before_both_lists_arrive() {
        let t0 = Instant::now();
        let mut state = SchedulerState::default();
        state.pod_event(Event::Apply(pod("a", "100m")), t0);
        assert!(state.decide(t0).is_empty());
        state.node_event(Event::Init, t0);
        state.node_event(Event::InitApply(node("n1", "1")), t0);
        state.node_event(Event::InitDone, t0);
        assert!(state.decide(t0).is_empty(), "pods not listed yet");
        state.pod_event(Event::Init, t0);
        state.pod_event(Event::InitApply(pod("a", "100m")), t0);
        state.pod_event(Event::InitDone, t0);
        assert_eq!(summary(&state.decide(t0)), ["a -> n1"]);
    }

    #[test]
    fn two_quick_pods_do_not_share_room_for_one() {
        let t0 = Instant::now();
        let mut state = listed(vec![node("n1", "1")], vec![], t0);
        state.pod_event(Event::Apply(pod("a", "600m")), t0);
        state.pod_event(Event::Apply(pod("b", "600m")), t0);
        let decisions = summary(&state.decide(t0));
        assert_eq!(decisions[0], "a -> n1");
        assert_eq!(
            decisions[1],
            "b unschedulable: 0/1 nodes are available: 1 Insufficient cpu. preemption: \
             0/1 nodes are available: 1 No preemption victims found for incoming pod."
        );
    }

    #[test]
    fn an_unschedulable_pod_is_bound_once_a_node_fits() {
        let t0 = Instant::now();
        let mut state = listed(vec![node("small", "100m")], vec![pod("a", "1")], t0);
        let decisions = state.decide(t0);
        assert!(matches!(decisions[0], Decision::Unschedulable { .. }));
        state.outcome(Outcome::Recorded(key_of("a")), t0);
        assert!(state.decide(t0 + Duration::from_secs(60)).is_empty());

        // Our own status patch is not a reason to try again.
        let mut patched = pod("a", "1");
        patched["status"]["conditions"] = json!([{"type": "PodScheduled", "status": "False"}]);
        state.pod_event(Event::Apply(patched), t0 + Duration::from_secs(61));
        assert!(state.decide(t0 + Duration::from_secs(61)).is_empty());

        let later = t0 + Duration::from_secs(62);
        state.node_event(Event::Apply(node("big", "4")), later);
        assert_eq!(summary(&state.decide(later)), ["a -> big"]);
    }

    #[test]
    fn a_deleted_pod_frees_room_for_a_waiting_one() {
        let t0 = Instant::now();
        let holder = bound(pod("holder", "800m"), "n1");
        let mut state = listed(
            vec![node("n1", "1")],
            vec![holder.clone(), pod("a", "800m")],
            t0,
        );
        assert!(matches!(
            state.decide(t0)[0],
            Decision::Unschedulable { .. }
        ));
        state.outcome(Outcome::Recorded(key_of("a")), t0);
        let later = t0 + Duration::from_secs(5);
        state.pod_event(Event::Delete(holder), later);
        assert_eq!(summary(&state.decide(later)), ["a -> n1"]);
    }

    #[test]
    fn a_finished_pod_frees_room_for_a_waiting_one() {
        let t0 = Instant::now();
        let holder = bound(pod("holder", "800m"), "n1");
        let mut state = listed(
            vec![node("n1", "1")],
            vec![holder.clone(), pod("a", "800m")],
            t0,
        );
        state.decide(t0);
        state.outcome(Outcome::Recorded(key_of("a")), t0);
        let mut done = holder;
        done["status"]["phase"] = json!("Succeeded");
        let later = t0 + Duration::from_secs(5);
        state.pod_event(Event::Apply(done), later);
        assert_eq!(summary(&state.decide(later)), ["a -> n1"]);
    }

    #[test]
    fn an_assumed_pod_counts_until_the_watch_shows_it_bound() {
        let t0 = Instant::now();
        let mut state = listed(vec![node("n1", "1")], vec![pod("a", "600m")], t0);
        assert_eq!(summary(&state.decide(t0)), ["a -> n1"]);
        state.outcome(Outcome::Bound(key_of("a")), t0);
        // A stale sighting of the unbound pod does not schedule it again.
        state.pod_event(Event::Apply(pod("a", "600m")), t0);
        assert!(state.decide(t0).is_empty());
        state.pod_event(Event::Apply(bound(pod("a", "600m"), "n1")), t0);
        state.pod_event(Event::Apply(pod("b", "600m")), t0);
        assert!(matches!(
            state.decide(t0)[0],
            Decision::Unschedulable { .. }
        ));
    }

    #[test]
    fn a_failed_binding_frees_the_room_and_backs_off() {
        let t0 = Instant::now();
        let mut state = listed(vec![node("n1", "1")], vec![pod("a", "600m")], t0);
        state.decide(t0);
        state.outcome(
            Outcome::BindFailed {
                key: key_of("a"),
                retry: true,
            },
            t0,
        );
        assert!(state.decide(t0).is_empty(), "backing off");
        assert_eq!(state.next_wakeup(), Some(t0 + Duration::from_secs(1)));
        let later = t0 + Duration::from_secs(1);
        assert_eq!(summary(&state.decide(later)), ["a -> n1"]);
    }

    #[test]
    fn replicas_spread_over_nodes() {
        let t0 = Instant::now();
        let owner = json!([{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web",
                            "uid": "rs-uid", "controller": true}]);
        let mut pods = Vec::new();
        for name in ["w1", "w2", "w3", "w4"] {
            let mut p = pod(name, "100m");
            p["metadata"]["ownerReferences"] = owner.clone();
            pods.push(p);
        }
        let mut state = listed(vec![node("n1", "4"), node("n2", "4")], pods, t0);
        let mut per_node = std::collections::BTreeMap::new();
        for d in state.decide(t0) {
            if let Decision::Bind { node, .. } = d {
                *per_node.entry(node).or_insert(0) += 1;
            }
        }
        assert_eq!(per_node.values().copied().collect::<Vec<_>>(), [2, 2]);
    }

    #[test]
    fn pods_for_other_schedulers_or_bound_ones_are_left_alone() {
        let t0 = Instant::now();
        let mut other = pod("other", "100m");
        other["spec"]["schedulerName"] = json!("my-scheduler");
        let state_pods = vec![other, bound(pod("b", "100m"), "n1")];
        let mut state = listed(vec![node("n1", "1")], state_pods, t0);
        assert!(state.decide(t0).is_empty());
    }

    #[test]
    fn heartbeats_do_not_retry_unschedulable_pods() {
        let t0 = Instant::now();
        let mut state = listed(vec![node("n1", "100m")], vec![pod("a", "1")], t0);
        state.decide(t0);
        state.outcome(Outcome::Recorded(key_of("a")), t0);
        let mut beat = node("n1", "100m");
        beat["status"]["conditions"][0]["lastHeartbeatTime"] = json!("2025-01-01T00:00:10Z");
        let later = t0 + Duration::from_secs(10);
        state.node_event(Event::Apply(beat), later);
        assert!(state.decide(later).is_empty());
    }
}
