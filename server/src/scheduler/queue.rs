//! The scheduling queue, upstream's `PriorityQueue` reduced to what this
//! scheduler needs: pods to try now (highest priority first, then first
//! come), pods backing off after a failed attempt, pods waiting for a
//! cluster change that may let them fit, and pods whose outcome is being
//! written to the apiserver.
//!
//! Pure bookkeeping: the caller passes the time, so tests need no clock.

use std::cmp::Reverse;
use std::collections::{BTreeSet, HashMap};
use std::fmt;
use std::time::Duration;

use tokio::time::Instant;

/// Back-off after a pod's first failed attempt (upstream's
/// `podInitialBackoffSeconds`); it doubles with each further attempt.
pub(super) const INITIAL_BACKOFF: Duration = Duration::from_secs(1);
/// Longest back-off (upstream's `podMaxBackoffSeconds`).
pub(super) const MAX_BACKOFF: Duration = Duration::from_secs(10);
/// How long an unschedulable pod waits for a cluster change before it is
/// tried again anyway (upstream's `podMaxInUnschedulablePodsDuration`).
pub(super) const MAX_UNSCHEDULABLE: Duration = Duration::from_secs(5 * 60);

/// A pod the queue tracks: its uid tells a pod from a later one of the
/// same name.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(super) struct PodKey {
    pub namespace: String,
    pub name: String,
    pub uid: String,
}

impl fmt::Display for PodKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

/// Where a pod is in the queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Waiting its turn.
    Active,
    /// Tried and failed; waits until then.
    Backoff { until: Instant },
    /// Fits nowhere; waits for a cluster change or `MAX_UNSCHEDULABLE`.
    Unschedulable { since: Instant },
    /// Being bound, or its failure being recorded. `moved` says a cluster
    /// change came meanwhile, so a failure must not wait for another one.
    InFlight { moved: bool },
}

#[derive(Debug)]
struct Entry {
    state: State,
    priority: i64,
    /// Arrival order among active pods of the same priority.
    seq: u64,
    attempts: u32,
    last_attempt: Option<Instant>,
}

/// The pending pods and what each waits for.
#[derive(Debug, Default)]
pub(super) struct SchedulingQueue {
    entries: HashMap<PodKey, Entry>,
    active: BTreeSet<(Reverse<i64>, u64, PodKey)>,
    next_seq: u64,
}

impl SchedulingQueue {
    /// Takes in a pending pod. A new pod becomes active; a known one keeps
    /// its place, except that an unschedulable pod whose object `changed`
    /// (spec or metadata) gets another try, after its back-off.
    pub fn add(&mut self, key: PodKey, priority: i64, changed: bool, now: Instant) {
        match self.entries.get_mut(&key) {
            None => {
                self.entries.insert(
                    key.clone(),
                    Entry {
                        state: State::Active,
                        priority,
                        seq: 0,
                        attempts: 0,
                        last_attempt: None,
                    },
                );
                self.activate(&key);
            }
            // Priority is immutable once a pod exists, so a known pod keeps
            // the one it came with (and its place in the active set).
            Some(entry) => {
                if changed && matches!(entry.state, State::Unschedulable { .. }) {
                    self.retry(&key, now);
                }
            }
        }
    }

    /// Forgets a pod (bound, deleted, or no longer this scheduler's).
    pub fn remove(&mut self, key: &PodKey) {
        if let Some(entry) = self.entries.remove(key) {
            self.active
                .remove(&(Reverse(entry.priority), entry.seq, key.clone()));
        }
    }

    /// Moves back-offs that ended and unschedulable pods that waited
    /// `MAX_UNSCHEDULABLE` to the active queue.
    pub fn flush(&mut self, now: Instant) {
        let mut due: Vec<(u64, PodKey)> = self
            .entries
            .iter()
            .filter(|(_, entry)| match entry.state {
                State::Backoff { until } => until <= now,
                State::Unschedulable { since } => since + MAX_UNSCHEDULABLE <= now,
                State::Active | State::InFlight { .. } => false,
            })
            .map(|(key, entry)| (entry.seq, key.clone()))
            .collect();
        // In their earlier order, so pods due together keep first come first.
        due.sort_unstable();
        for (_, key) in due {
            self.retry(&key, now);
        }
    }

    /// The next pod to try, which is then in flight until `unschedulable`,
    /// `failed` or `remove`.
    pub fn pop(&mut self, now: Instant) -> Option<PodKey> {
        let (_, _, key) = self.active.pop_first()?;
        if let Some(entry) = self.entries.get_mut(&key) {
            entry.state = State::InFlight { moved: false };
            entry.attempts = entry.attempts.saturating_add(1);
            entry.last_attempt = Some(now);
        }
        Some(key)
    }

    /// A pod in flight fits nowhere: it waits for a cluster change, or
    /// backs off if one came while it was in flight.
    pub fn unschedulable(&mut self, key: &PodKey, now: Instant) {
        match self.entries.get(key).map(|e| e.state) {
            Some(State::InFlight { moved: false }) => {
                if let Some(entry) = self.entries.get_mut(key) {
                    entry.state = State::Unschedulable { since: now };
                }
            }
            Some(State::InFlight { moved: true }) => self.retry(key, now),
            _ => {}
        }
    }

    /// A pod in flight failed for another reason (an API error): it backs
    /// off and is tried again.
    pub fn failed(&mut self, key: &PodKey, now: Instant) {
        if matches!(
            self.entries.get(key).map(|e| e.state),
            Some(State::InFlight { .. })
        ) {
            self.retry(key, now);
        }
    }

    /// A cluster change that may let pods fit (a node added or changed, a
    /// pod gone): every unschedulable pod gets another try, after its
    /// back-off.
    pub fn move_all(&mut self, now: Instant) {
        let mut waiting: Vec<(u64, PodKey)> = self
            .entries
            .iter_mut()
            .filter_map(|(key, entry)| match entry.state {
                State::Unschedulable { .. } => Some((entry.seq, key.clone())),
                State::InFlight { .. } => {
                    entry.state = State::InFlight { moved: true };
                    None
                }
                State::Active | State::Backoff { .. } => None,
            })
            .collect();
        waiting.sort_unstable();
        for (_, key) in waiting {
            self.retry(&key, now);
        }
    }

    /// When `flush` next has something to do.
    pub fn next_wakeup(&self) -> Option<Instant> {
        self.entries
            .values()
            .filter_map(|entry| match entry.state {
                State::Backoff { until } => Some(until),
                State::Unschedulable { since } => Some(since + MAX_UNSCHEDULABLE),
                State::Active | State::InFlight { .. } => None,
            })
            .min()
    }

    /// Whether a pod waits in the active queue.
    #[cfg(test)]
    pub fn is_active(&self, key: &PodKey) -> bool {
        self.entries
            .get(key)
            .is_some_and(|e| e.state == State::Active)
    }

    /// Whether the queue tracks the pod at all.
    #[cfg(test)]
    pub fn contains(&self, key: &PodKey) -> bool {
        self.entries.contains_key(key)
    }

    /// The active queue, or the back-off queue until the pod's back-off
    /// since its last attempt has passed.
    fn retry(&mut self, key: &PodKey, now: Instant) {
        let Some(entry) = self.entries.get_mut(key) else {
            return;
        };
        let until = entry
            .last_attempt
            .map(|at| at + backoff(entry.attempts))
            .filter(|until| *until > now);
        match until {
            Some(until) => entry.state = State::Backoff { until },
            None => self.activate(key),
        }
    }

    fn activate(&mut self, key: &PodKey) {
        let seq = self.next_seq;
        let Some(entry) = self.entries.get_mut(key) else {
            return;
        };
        self.next_seq += 1;
        entry.state = State::Active;
        entry.seq = seq;
        self.active
            .insert((Reverse(entry.priority), seq, key.clone()));
    }
}

/// Upstream's back-off: 1 s after the first attempt, doubling, at most 10 s.
pub(super) fn backoff(attempts: u32) -> Duration {
    let doublings = attempts.saturating_sub(1).min(16);
    INITIAL_BACKOFF
        .saturating_mul(1 << doublings)
        .min(MAX_BACKOFF)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(name: &str) -> PodKey {
        PodKey {
            namespace: "default".into(),
            name: name.into(),
            uid: format!("uid-{name}"),
        }
    }

    fn secs(n: u64) -> Duration {
        Duration::from_secs(n)
    }

    #[test]
    fn pops_by_priority_then_arrival() {
        let t0 = Instant::now();
        let mut q = SchedulingQueue::default();
        q.add(key("a"), 0, false, t0);
        q.add(key("b"), 100, false, t0);
        q.add(key("c"), 0, false, t0);
        assert_eq!(q.pop(t0), Some(key("b")));
        assert_eq!(q.pop(t0), Some(key("a")));
        assert_eq!(q.pop(t0), Some(key("c")));
        assert_eq!(q.pop(t0), None);
    }

    #[test]
    fn adding_a_known_pod_keeps_one_entry() {
        let t0 = Instant::now();
        let mut q = SchedulingQueue::default();
        q.add(key("a"), 0, false, t0);
        q.add(key("a"), 0, true, t0);
        assert_eq!(q.pop(t0), Some(key("a")));
        assert_eq!(q.pop(t0), None);
        // In flight: another sighting does not queue it twice.
        q.add(key("a"), 0, true, t0);
        assert_eq!(q.pop(t0), None);
    }

    #[test]
    fn unschedulable_pods_wait_for_a_cluster_change_and_back_off() {
        let t0 = Instant::now();
        let mut q = SchedulingQueue::default();
        q.add(key("a"), 0, false, t0);
        assert_eq!(q.pop(t0), Some(key("a")));
        q.unschedulable(&key("a"), t0);
        q.flush(t0 + secs(60));
        assert_eq!(q.pop(t0 + secs(60)), None, "no change, no retry");

        // A change 2 s after the first attempt: 1 s back-off is over.
        q.move_all(t0 + secs(2));
        assert!(q.is_active(&key("a")));
        assert_eq!(q.pop(t0 + secs(2)), Some(key("a")));
        q.unschedulable(&key("a"), t0 + secs(2));

        // Second attempt: 2 s back-off; a change at once waits for it.
        q.move_all(t0 + secs(2));
        assert!(!q.is_active(&key("a")));
        assert_eq!(q.next_wakeup(), Some(t0 + secs(4)));
        q.flush(t0 + secs(3));
        assert_eq!(q.pop(t0 + secs(3)), None);
        q.flush(t0 + secs(4));
        assert_eq!(q.pop(t0 + secs(4)), Some(key("a")));
    }

    #[test]
    fn unschedulable_pods_are_retried_after_five_minutes_anyway() {
        let t0 = Instant::now();
        let mut q = SchedulingQueue::default();
        q.add(key("a"), 0, false, t0);
        q.pop(t0);
        q.unschedulable(&key("a"), t0);
        assert_eq!(q.next_wakeup(), Some(t0 + MAX_UNSCHEDULABLE));
        q.flush(t0 + MAX_UNSCHEDULABLE - secs(1));
        assert!(!q.is_active(&key("a")));
        q.flush(t0 + MAX_UNSCHEDULABLE);
        assert!(q.is_active(&key("a")));
    }

    #[test]
    fn pods_due_together_keep_their_order() {
        let t0 = Instant::now();
        let mut q = SchedulingQueue::default();
        for name in ["a", "b", "c"] {
            q.add(key(name), 0, false, t0);
        }
        while let Some(k) = q.pop(t0) {
            q.unschedulable(&k, t0);
        }
        q.move_all(t0 + secs(2));
        let order: Vec<_> = std::iter::from_fn(|| q.pop(t0 + secs(2)))
            .map(|k| k.name)
            .collect();
        assert_eq!(order, ["a", "b", "c"]);
    }

    #[test]
    fn a_change_while_in_flight_is_not_lost() {
        let t0 = Instant::now();
        let mut q = SchedulingQueue::default();
        q.add(key("a"), 0, false, t0);
        q.pop(t0);
        q.move_all(t0 + secs(5));
        q.unschedulable(&key("a"), t0 + secs(5));
        assert!(q.is_active(&key("a")), "retried, not parked");
    }

    #[test]
    fn an_updated_unschedulable_pod_is_retried() {
        let t0 = Instant::now();
        let mut q = SchedulingQueue::default();
        q.add(key("a"), 0, false, t0);
        q.pop(t0);
        q.unschedulable(&key("a"), t0);
        q.add(key("a"), 0, false, t0 + secs(5));
        assert!(!q.is_active(&key("a")), "an unchanged pod keeps waiting");
        q.add(key("a"), 0, true, t0 + secs(5));
        assert!(q.is_active(&key("a")));
    }

    #[test]
    fn failures_back_off_exponentially_up_to_ten_seconds() {
        assert_eq!(backoff(1), secs(1));
        assert_eq!(backoff(2), secs(2));
        assert_eq!(backoff(4), secs(8));
        assert_eq!(backoff(5), MAX_BACKOFF);
        assert_eq!(backoff(1000), MAX_BACKOFF);

        let t0 = Instant::now();
        let mut q = SchedulingQueue::default();
        q.add(key("a"), 0, false, t0);
        q.pop(t0);
        q.failed(&key("a"), t0);
        assert_eq!(q.next_wakeup(), Some(t0 + secs(1)));
        q.flush(t0 + secs(1));
        assert_eq!(q.pop(t0 + secs(1)), Some(key("a")));
    }

    #[test]
    fn outcomes_for_removed_pods_are_ignored() {
        let t0 = Instant::now();
        let mut q = SchedulingQueue::default();
        q.add(key("a"), 0, false, t0);
        q.pop(t0);
        q.remove(&key("a"));
        q.unschedulable(&key("a"), t0);
        q.failed(&key("a"), t0);
        assert!(!q.contains(&key("a")));
        // A removed active pod leaves the active queue too.
        q.add(key("b"), 0, false, t0);
        q.remove(&key("b"));
        assert_eq!(q.pop(t0), None);
    }
}
