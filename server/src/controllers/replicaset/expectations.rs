//! What a ReplicaSet waits to see in the pod cache before it creates or
//! deletes again (upstream's `UIDTrackingControllerExpectations`): after
//! creating n pods a sync waits for n pod additions; after deleting pods
//! it waits for those very pods to go (or start terminating). Expectations
//! older than five minutes count as met, so a lost watch event cannot
//! stall a ReplicaSet forever.

use std::collections::{HashMap, HashSet};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

/// How long unmet expectations hold back a sync (upstream's `ExpectationsTimeout`).
pub(crate) const EXPECTATIONS_TIMEOUT: Duration = Duration::from_secs(5 * 60);

/// Expectations of every ReplicaSet, by `namespace/name`.
#[derive(Debug, Default)]
pub(crate) struct Expectations {
    entries: Mutex<HashMap<String, Entry>>,
}

#[derive(Debug)]
struct Entry {
    /// The ReplicaSet the record is for: one made again under the same
    /// name starts afresh.
    uid: String,
    adds: i64,
    dels: i64,
    /// Keys (`namespace/name`) of the pods whose deletion is awaited.
    deleting: HashSet<String>,
    set_at: Instant,
}

impl Expectations {
    /// Whether the ReplicaSet `key` (uid `uid`) may create or delete pods.
    /// A record that no longer holds anything back is dropped, so only
    /// ReplicaSets with pending work keep one.
    pub(crate) fn satisfied(&self, key: &str, uid: &str, now: Instant) -> bool {
        let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        let waiting = entries.get(key).is_some_and(|entry| {
            entry.uid == uid
                && (entry.adds > 0 || entry.dels > 0)
                && now.saturating_duration_since(entry.set_at) <= EXPECTATIONS_TIMEOUT
        });
        if !waiting {
            entries.remove(key);
        }
        !waiting
    }

    /// Records that `count` pods are being created for `key`.
    pub(crate) fn expect_creations(&self, key: &str, uid: &str, count: usize, now: Instant) {
        self.set(key, uid, count, HashSet::new(), now);
    }

    /// Records that the pods `pod_keys` are being deleted for `key`.
    pub(crate) fn expect_deletions(
        &self,
        key: &str,
        uid: &str,
        pod_keys: impl IntoIterator<Item = String>,
        now: Instant,
    ) {
        self.set(key, uid, 0, pod_keys.into_iter().collect(), now);
    }

    fn set(&self, key: &str, uid: &str, adds: usize, deleting: HashSet<String>, now: Instant) {
        let entry = Entry {
            uid: uid.to_owned(),
            adds: i64::try_from(adds).unwrap_or(i64::MAX),
            dels: i64::try_from(deleting.len()).unwrap_or(i64::MAX),
            deleting,
            set_at: now,
        };
        self.entries
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(key.to_owned(), entry);
    }

    /// One awaited (or abandoned) creation for `key` happened.
    pub(crate) fn creation_observed(&self, key: &str) {
        self.lower(key, 1);
    }

    /// `count` creations for `key` will never be observed (they failed or
    /// were skipped).
    pub(crate) fn creations_abandoned(&self, key: &str, count: usize) {
        self.lower(key, i64::try_from(count).unwrap_or(i64::MAX));
    }

    fn lower(&self, key: &str, count: i64) {
        let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(entry) = entries.get_mut(key) {
            entry.adds -= count;
        }
    }

    /// The pod `pod_key` of `key` is gone or terminating; counts only for a
    /// pod whose deletion was awaited.
    pub(crate) fn deletion_observed(&self, key: &str, pod_key: &str) {
        let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(entry) = entries.get_mut(key)
            && entry.deleting.remove(pod_key)
        {
            entry.dels -= 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn creations_hold_back_until_all_are_seen() {
        let exp = Expectations::default();
        let now = Instant::now();
        assert!(exp.satisfied("ns/web", "u1", now));
        exp.expect_creations("ns/web", "u1", 2, now);
        assert!(!exp.satisfied("ns/web", "u1", now));
        exp.creation_observed("ns/web");
        assert!(!exp.satisfied("ns/web", "u1", now));
        exp.creation_observed("ns/web");
        assert!(exp.satisfied("ns/web", "u1", now));
    }

    #[test]
    fn abandoned_creations_count_as_seen() {
        let exp = Expectations::default();
        let now = Instant::now();
        exp.expect_creations("ns/web", "u1", 4, now);
        exp.creation_observed("ns/web");
        exp.creations_abandoned("ns/web", 3);
        assert!(exp.satisfied("ns/web", "u1", now));
    }

    #[test]
    fn deletions_count_only_the_awaited_pods_once() {
        let exp = Expectations::default();
        let now = Instant::now();
        exp.expect_deletions("ns/web", "u1", ["ns/a".to_owned(), "ns/b".to_owned()], now);
        exp.deletion_observed("ns/web", "ns/a");
        exp.deletion_observed("ns/web", "ns/a");
        exp.deletion_observed("ns/web", "ns/c");
        assert!(!exp.satisfied("ns/web", "u1", now));
        exp.deletion_observed("ns/web", "ns/b");
        assert!(exp.satisfied("ns/web", "u1", now));
    }

    #[test]
    fn expectations_expire_and_belong_to_one_uid() {
        let exp = Expectations::default();
        let now = Instant::now();
        exp.expect_creations("ns/web", "u1", 1, now);
        assert!(exp.satisfied("ns/web", "u2", now));
        exp.expect_creations("ns/web", "u1", 1, now);
        assert!(exp.satisfied(
            "ns/web",
            "u1",
            now + EXPECTATIONS_TIMEOUT + Duration::from_secs(1)
        ));
        assert!(exp.satisfied("ns/web", "u1", now));
    }
}
