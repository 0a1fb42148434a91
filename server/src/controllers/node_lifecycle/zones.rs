//! Zones and disruption, as upstream's node lifecycle controller keeps
//! them: nodes are grouped by region and zone; each zone's health decides
//! how fast its unreachable nodes get the NoExecute taint (one node per
//! 10 s normally, none when a small zone is mostly down) and when every
//! zone is down at once the controller assumes it is the one cut off and
//! taints nothing ("master disruption mode").

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::time::Instant;

use k8s_openapi::api::core::v1::Node;

/// The label excluding a node from the disruption count.
const EXCLUDE_DISRUPTION_LABEL: &str = "node.kubernetes.io/exclude-disruption";

/// How fast NoExecute taints are put on unreachable nodes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EvictionRates {
    /// Nodes per second in healthy zones (`--node-eviction-rate`, 0.1).
    pub normal: f64,
    /// Nodes per second in large, partly disrupted zones
    /// (`--secondary-node-eviction-rate`, 0.01).
    pub secondary: f64,
    /// Zones with more nodes than this are large (`--large-cluster-size-threshold`, 50).
    pub large_cluster_threshold: usize,
    /// The share of not-ready nodes making a zone partly disrupted
    /// (`--unhealthy-zone-threshold`, 0.55).
    pub unhealthy_zone_threshold: f32,
}

impl Default for EvictionRates {
    fn default() -> Self {
        Self {
            normal: 0.1,
            secondary: 0.01,
            large_cluster_threshold: 50,
            unhealthy_zone_threshold: 0.55,
        }
    }
}

/// A zone's health.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum ZoneState {
    /// Not assessed yet.
    Initial,
    /// Few nodes not ready.
    Normal,
    /// Many nodes not ready (at least the threshold share, more than two).
    PartialDisruption,
    /// No node ready.
    FullDisruption,
}

/// What a disruption pass changed for every zone at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Disruption {
    /// Nothing cluster-wide.
    Unchanged,
    /// Every zone went down: take the NoExecute taints off every node.
    Entered,
    /// Some zone came back: give every node a fresh grace period.
    Exited,
}

/// The zone key of a node: region and zone labels, "" without them.
pub(super) fn zone_key(node: &Node) -> String {
    let labels = node.metadata.labels.as_ref();
    let get = |keys: [&str; 2]| -> String {
        keys.iter()
            .find_map(|k| labels.and_then(|l| l.get(*k)).filter(|v| !v.is_empty()))
            .cloned()
            .unwrap_or_default()
    };
    let region = get([
        "topology.kubernetes.io/region",
        "failure-domain.beta.kubernetes.io/region",
    ]);
    let zone = get([
        "topology.kubernetes.io/zone",
        "failure-domain.beta.kubernetes.io/zone",
    ]);
    if region.is_empty() && zone.is_empty() {
        String::new()
    } else {
        format!("{region}:\x00:{zone}")
    }
}

/// Whether the node is left out of disruption counting.
pub(super) fn excluded_from_disruption(node: &Node) -> bool {
    node.metadata
        .labels
        .as_ref()
        .is_some_and(|l| l.contains_key(EXCLUDE_DISRUPTION_LABEL))
}

/// A zone's state from its nodes' readiness (upstream's `ComputeZoneState`).
pub(super) fn zone_state(ready: &[bool], unhealthy_threshold: f32) -> ZoneState {
    let ready_count = ready.iter().filter(|r| **r).count();
    let not_ready = ready.len() - ready_count;
    if ready_count == 0 && not_ready > 0 {
        ZoneState::FullDisruption
    } else if not_ready > 2 && (not_ready as f32) / (ready.len() as f32) >= unhealthy_threshold {
        ZoneState::PartialDisruption
    } else {
        ZoneState::Normal
    }
}

/// A token bucket of burst 1 (client-go's, as the taint queues use it);
/// a rate of 0 never lets anything through.
#[derive(Debug, Clone)]
pub(super) struct RateLimiter {
    qps: f64,
    tokens: f64,
    last: Option<Instant>,
}

impl RateLimiter {
    /// A full bucket refilled at `qps`.
    pub(super) fn new(qps: f64) -> Self {
        Self {
            qps,
            tokens: 1.0,
            last: None,
        }
    }

    /// Takes a token if one is there at `now`.
    pub(super) fn try_accept(&mut self, now: Instant) -> bool {
        if self.qps <= 0.0 {
            return false;
        }
        if let Some(last) = self.last {
            let refill = now.saturating_duration_since(last).as_secs_f64() * self.qps;
            self.tokens = (self.tokens + refill).min(1.0);
        }
        self.last = Some(now);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }

    fn qps(&self) -> f64 {
        self.qps
    }
}

/// One zone's taint queue: nodes waiting for their NoExecute taint, and
/// every node queued since it was last reachable (so it is queued once).
#[derive(Debug)]
struct TaintQueue {
    limiter: RateLimiter,
    queue: VecDeque<String>,
    marked: HashSet<String>,
}

/// Zone states and taint queues.
#[derive(Debug)]
pub(super) struct Zones {
    rates: EvictionRates,
    states: BTreeMap<String, ZoneState>,
    queues: HashMap<String, TaintQueue>,
}

impl Zones {
    /// No zones yet.
    pub(super) fn new(rates: EvictionRates) -> Self {
        Self {
            rates,
            states: BTreeMap::new(),
            queues: HashMap::new(),
        }
    }

    /// Makes a taint queue for a zone seen for the first time.
    pub(super) fn add_zone(&mut self, zone: &str) {
        let rate = self.rates.normal;
        self.queues
            .entry(zone.to_owned())
            .or_insert_with(|| TaintQueue {
                limiter: RateLimiter::new(rate),
                queue: VecDeque::new(),
                marked: HashSet::new(),
            });
    }

    /// Queues `node` for its NoExecute taint unless it was queued since it
    /// was last reachable. Returns whether it was queued now.
    pub(super) fn mark_for_tainting(&mut self, zone: &str, node: &str) -> bool {
        self.add_zone(zone);
        let Some(queue) = self.queues.get_mut(zone) else {
            return false;
        };
        if !queue.marked.insert(node.to_owned()) {
            return false;
        }
        queue.queue.push_back(node.to_owned());
        true
    }

    /// Puts a node whose tainting failed back in its queue.
    pub(super) fn retry(&mut self, zone: &str, node: &str) {
        if let Some(queue) = self.queues.get_mut(zone)
            && queue.marked.contains(node)
            && !queue.queue.iter().any(|n| n == node)
        {
            queue.queue.push_back(node.to_owned());
        }
    }

    /// Forgets `node` (it is reachable again). Returns whether it was queued.
    pub(super) fn unmark(&mut self, zone: &str, node: &str) -> bool {
        let Some(queue) = self.queues.get_mut(zone) else {
            return false;
        };
        queue.queue.retain(|n| n != node);
        queue.marked.remove(node)
    }

    /// The queued nodes whose zone's rate lets them be tainted at `now`.
    pub(super) fn take_taintable(&mut self, now: Instant) -> Vec<(String, String)> {
        let mut ready = Vec::new();
        for (zone, queue) in &mut self.queues {
            while !queue.queue.is_empty() && queue.limiter.try_accept(now) {
                if let Some(node) = queue.queue.pop_front() {
                    ready.push((zone.clone(), node));
                }
            }
        }
        ready
    }

    /// Upstream's `handleDisruption`: new zone states from each zone's
    /// nodes' readiness, with their taint rates.
    pub(super) fn handle_disruption(
        &mut self,
        ready_by_zone: &BTreeMap<String, Vec<bool>>,
    ) -> Disruption {
        let mut new_states: BTreeMap<String, ZoneState> = BTreeMap::new();
        let mut all_down = true;
        for (zone, ready) in ready_by_zone {
            let state = zone_state(ready, self.rates.unhealthy_zone_threshold);
            all_down &= state == ZoneState::FullDisruption;
            new_states.insert(zone.clone(), state);
            self.states
                .entry(zone.clone())
                .or_insert(ZoneState::Initial);
        }
        self.states
            .retain(|zone, _| ready_by_zone.contains_key(zone));
        let all_were_down = self
            .states
            .values()
            .all(|s| *s == ZoneState::FullDisruption);
        if all_down && all_were_down {
            return Disruption::Unchanged;
        }
        if all_down {
            for zone in self.states.keys() {
                if let Some(queue) = self.queues.get_mut(zone) {
                    swap_limiter(&mut queue.limiter, 0.0);
                }
            }
            for state in self.states.values_mut() {
                *state = ZoneState::FullDisruption;
            }
            return Disruption::Entered;
        }
        let exiting = all_were_down;
        let zones: Vec<String> = self.states.keys().cloned().collect();
        for zone in zones {
            let new_state = new_states.get(&zone).copied().unwrap_or(ZoneState::Normal);
            if !exiting && self.states.get(&zone) == Some(&new_state) {
                continue;
            }
            let size = ready_by_zone.get(&zone).map_or(0, Vec::len);
            let qps = match new_state {
                ZoneState::PartialDisruption if size > self.rates.large_cluster_threshold => {
                    self.rates.secondary
                }
                ZoneState::PartialDisruption => 0.0,
                _ => self.rates.normal,
            };
            self.add_zone(&zone);
            if let Some(queue) = self.queues.get_mut(&zone) {
                swap_limiter(&mut queue.limiter, qps);
            }
            self.states.insert(zone, new_state);
        }
        if exiting {
            Disruption::Exited
        } else {
            Disruption::Unchanged
        }
    }
}

/// A fresh bucket at `qps`, unless the rate is the same.
fn swap_limiter(limiter: &mut RateLimiter, qps: f64) {
    if (limiter.qps() - qps).abs() > f64::EPSILON {
        *limiter = RateLimiter::new(qps);
    }
}

/// How long until a bucket of `qps` holds a token again (for tests).
#[cfg(test)]
fn period(qps: f64) -> std::time::Duration {
    std::time::Duration::from_secs_f64(1.0 / qps)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::time::Duration;

    #[test]
    fn zone_keys_join_region_and_zone() {
        let node = |labels: serde_json::Value| -> Node {
            serde_json::from_value(json!({"metadata": {"name": "n", "labels": labels}})).unwrap()
        };
        assert_eq!(zone_key(&node(json!({}))), "");
        assert_eq!(
            zone_key(&node(
                json!({"topology.kubernetes.io/region": "r", "topology.kubernetes.io/zone": "z"})
            )),
            "r:\x00:z"
        );
        assert_eq!(
            zone_key(&node(
                json!({"failure-domain.beta.kubernetes.io/zone": "z"})
            )),
            ":\x00:z"
        );
    }

    #[test]
    fn zone_states_follow_upstream_thresholds() {
        assert_eq!(zone_state(&[false], 0.55), ZoneState::FullDisruption);
        assert_eq!(zone_state(&[true, false], 0.55), ZoneState::Normal);
        assert_eq!(zone_state(&[true, false, false], 0.55), ZoneState::Normal);
        assert_eq!(
            zone_state(&[true, false, false, false], 0.55),
            ZoneState::PartialDisruption
        );
        assert_eq!(zone_state(&[true; 3], 0.55), ZoneState::Normal);
    }

    #[test]
    fn the_limiter_lets_one_through_then_one_per_period() {
        let start = Instant::now();
        let mut limiter = RateLimiter::new(0.1);
        assert!(limiter.try_accept(start));
        assert!(!limiter.try_accept(start + Duration::from_secs(5)));
        assert!(limiter.try_accept(start + period(0.1)));
        assert!(!RateLimiter::new(0.0).try_accept(start));
    }

    #[test]
    fn nodes_are_queued_once_until_reachable() {
        let mut zones = Zones::new(EvictionRates::default());
        let now = Instant::now();
        assert!(zones.mark_for_tainting("", "a"));
        assert!(zones.mark_for_tainting("", "b"));
        assert!(!zones.mark_for_tainting("", "a"));
        // Burst 1: one node now, the other a period later.
        assert_eq!(
            zones.take_taintable(now),
            vec![(String::new(), "a".to_owned())]
        );
        assert!(zones.take_taintable(now).is_empty());
        assert_eq!(
            zones.take_taintable(now + period(0.1)),
            vec![(String::new(), "b".to_owned())]
        );
        assert!(!zones.mark_for_tainting("", "a"));
        assert!(zones.unmark("", "a"));
        assert!(zones.mark_for_tainting("", "a"));
    }

    #[test]
    fn every_zone_down_stops_tainting_until_one_recovers() {
        let mut zones = Zones::new(EvictionRates::default());
        zones.add_zone("");
        let down: BTreeMap<String, Vec<bool>> = [(String::new(), vec![false, false])].into();
        assert_eq!(zones.handle_disruption(&down), Disruption::Entered);
        assert_eq!(zones.handle_disruption(&down), Disruption::Unchanged);
        zones.mark_for_tainting("", "a");
        assert!(zones.take_taintable(Instant::now()).is_empty());
        let back: BTreeMap<String, Vec<bool>> = [(String::new(), vec![true, false])].into();
        assert_eq!(zones.handle_disruption(&back), Disruption::Exited);
        assert_eq!(zones.take_taintable(Instant::now()).len(), 1);
    }

    #[test]
    fn a_small_zone_mostly_down_is_paused_while_others_go_on() {
        let mut zones = Zones::new(EvictionRates::default());
        let states: BTreeMap<String, Vec<bool>> = [
            ("a".to_owned(), vec![true, false, false, false]),
            ("b".to_owned(), vec![true, false]),
        ]
        .into();
        assert_eq!(zones.handle_disruption(&states), Disruption::Unchanged);
        zones.mark_for_tainting("a", "a1");
        zones.mark_for_tainting("b", "b1");
        assert_eq!(
            zones.take_taintable(Instant::now()),
            vec![("b".to_owned(), "b1".to_owned())]
        );
    }
}
