//! kubelet's exponential back-off (client-go's `flowcontrol.Backoff`): a
//! delay per key that starts at 10 s, doubles to 5 min, and starts over
//! when nothing happened to the key for twice the maximum (10 min: a
//! container that ran that long is not crash-looping any more).

use std::collections::HashMap;
use std::time::{Duration, SystemTime};

/// The first delay for container restarts and image pulls.
pub const INITIAL: Duration = Duration::from_secs(10);
/// The longest delay.
pub const MAX: Duration = Duration::from_secs(300);

#[derive(Debug, Clone, Copy)]
struct Entry {
    backoff: Duration,
    last_update: SystemTime,
}

/// Back-off delays by key.
#[derive(Debug, Clone)]
pub struct Backoff {
    initial: Duration,
    max: Duration,
    entries: HashMap<String, Entry>,
}

impl Default for Backoff {
    fn default() -> Self {
        Self::new(INITIAL, MAX)
    }
}

impl Backoff {
    /// Delays from `initial` doubling up to `max`.
    pub fn new(initial: Duration, max: Duration) -> Self {
        Self {
            initial,
            max,
            entries: HashMap::new(),
        }
    }

    fn expired(&self, event_time: SystemTime, last_update: SystemTime) -> bool {
        event_time
            .duration_since(last_update)
            .is_ok_and(|since| since > self.max * 2)
    }

    /// Records another failure of `key` at `now`: the delay starts at the
    /// initial one, or doubles.
    pub fn next(&mut self, key: &str, now: SystemTime) {
        let initial = self.initial;
        let max = self.max;
        let fresh = match self.entries.get(key) {
            None => true,
            Some(entry) => self.expired(now, entry.last_update),
        };
        let entry = self.entries.entry(key.to_owned()).or_insert(Entry {
            backoff: initial,
            last_update: now,
        });
        entry.backoff = if fresh {
            initial
        } else {
            (entry.backoff * 2).min(max)
        };
        entry.last_update = now;
    }

    /// The current delay of `key`, if it has one.
    pub fn get(&self, key: &str) -> Option<Duration> {
        self.entries.get(key).map(|e| e.backoff)
    }

    /// Whether `now` is still within the delay of `key` counted from
    /// `event_time` (when the container exited, when the pull failed).
    pub fn is_in_backoff_since(&self, key: &str, event_time: SystemTime, now: SystemTime) -> bool {
        let Some(entry) = self.entries.get(key) else {
            return false;
        };
        if self.expired(event_time, entry.last_update) {
            return false;
        }
        now.duration_since(event_time)
            .map(|since| since < entry.backoff)
            .unwrap_or(true)
    }

    /// When the delay of `key` counted from `event_time` ends.
    pub fn ends_at(&self, key: &str, event_time: SystemTime) -> Option<SystemTime> {
        self.entries.get(key).map(|e| event_time + e.backoff)
    }

    /// Whether `now` is within the delay counted from the last update
    /// (client-go's `IsInBackOffSinceUpdate`, used for image pulls).
    pub fn is_in_backoff_since_update(&self, key: &str, now: SystemTime) -> bool {
        let Some(entry) = self.entries.get(key) else {
            return false;
        };
        if self.expired(now, entry.last_update) {
            return false;
        }
        now.duration_since(entry.last_update)
            .map(|since| since < entry.backoff)
            .unwrap_or(true)
    }

    /// Forgets keys nothing happened to for twice the maximum.
    pub fn collect_garbage(&mut self, now: SystemTime) {
        let max = self.max;
        self.entries.retain(|_, e| {
            now.duration_since(e.last_update)
                .map(|since| since <= max * 2)
                .unwrap_or(true)
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000 + secs)
    }

    #[test]
    fn delays_double_up_to_the_maximum() {
        let mut b = Backoff::default();
        let mut seen = Vec::new();
        for i in 0..8 {
            b.next("c", at(i));
            seen.push(b.get("c").unwrap().as_secs());
        }
        assert_eq!(seen, [10, 20, 40, 80, 160, 300, 300, 300]);
    }

    #[test]
    fn the_first_failure_is_not_in_back_off() {
        let b = Backoff::default();
        assert!(!b.is_in_backoff_since("c", at(0), at(0)));
    }

    #[test]
    fn back_off_counts_from_the_event() {
        let mut b = Backoff::default();
        b.next("c", at(0));
        // The container exited again at 5 s: in back-off until 15 s.
        assert!(b.is_in_backoff_since("c", at(5), at(14)));
        assert!(!b.is_in_backoff_since("c", at(5), at(15)));
        assert_eq!(b.ends_at("c", at(5)), Some(at(15)));
    }

    #[test]
    fn ten_quiet_minutes_start_over() {
        let mut b = Backoff::default();
        for i in 0..5 {
            b.next("c", at(i));
        }
        assert_eq!(b.get("c"), Some(Duration::from_secs(160)));
        // It ran for more than 10 minutes after its last restart.
        assert!(!b.is_in_backoff_since("c", at(4 + 601), at(4 + 602)));
        b.next("c", at(4 + 602));
        assert_eq!(b.get("c"), Some(INITIAL));
    }

    #[test]
    fn pull_back_off_counts_from_the_update() {
        let mut b = Backoff::default();
        b.next("img", at(0));
        assert!(b.is_in_backoff_since_update("img", at(9)));
        assert!(!b.is_in_backoff_since_update("img", at(10)));
    }

    #[test]
    fn garbage_is_collected_after_twice_the_maximum() {
        let mut b = Backoff::default();
        b.next("a", at(0));
        b.next("b", at(500));
        b.collect_garbage(at(601));
        assert!(b.get("a").is_none());
        assert!(b.get("b").is_some());
    }
}
