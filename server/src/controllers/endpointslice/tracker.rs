//! Whether the EndpointSlice cache has caught up with the controller's own
//! writes (upstream's `EndpointSliceTracker`): planning from a cache that
//! misses a slice just created would create it twice.
//!
//! Upstream compares `metadata.generation`; Skiff's apiserver does not keep
//! a generation for EndpointSlices, so the tracker compares the
//! resourceVersion (Skiff's are increasing revisions). An expectation older
//! than [`FORGET_AFTER`] is dropped, so a missed event cannot wedge a
//! Service.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use k8s_openapi::api::discovery::v1::EndpointSlice;

/// How long an unmet expectation is kept.
const FORGET_AFTER: Duration = Duration::from_secs(30);

/// What the controller expects the cache to show of one slice.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expected {
    /// The slice at this resourceVersion or later.
    Written(u64),
    /// No slice.
    Deleted,
}

/// Expectations per Service (`namespace`, `name`), per slice UID.
#[derive(Debug, Default)]
pub(crate) struct SliceTracker {
    services: Mutex<Expectations>,
}

/// Service (namespace, name) → slice UID → what is expected, since when.
type Expectations = HashMap<(String, String), HashMap<String, (Expected, Instant)>>;

impl SliceTracker {
    /// Records a slice the controller just created or updated (as the API
    /// returned it).
    pub(crate) fn written(&self, service: &(String, String), slice: &EndpointSlice) {
        let (Some(uid), Some(version)) = (slice.metadata.uid.clone(), revision(slice)) else {
            return;
        };
        self.expect(service, uid, Expected::Written(version));
    }

    /// Records a slice the controller just deleted.
    pub(crate) fn deleted(&self, service: &(String, String), slice: &EndpointSlice) {
        if let Some(uid) = slice.metadata.uid.clone() {
            self.expect(service, uid, Expected::Deleted);
        }
    }

    /// Forgets a slice the watch saw deleted.
    pub(crate) fn forget_slice(&self, uid: &str) {
        let mut services = self.lock();
        for slices in services.values_mut() {
            slices.remove(uid);
        }
        services.retain(|_, slices| !slices.is_empty());
    }

    /// Forgets a deleted Service.
    pub(crate) fn forget_service(&self, service: &(String, String)) {
        self.lock().remove(service);
    }

    /// Whether `cached` (the Service's slices in the cache) misses one of the
    /// controller's writes; expectations the cache meets are dropped.
    pub(crate) fn stale(&self, service: &(String, String), cached: &[Arc<EndpointSlice>]) -> bool {
        let mut services = self.lock();
        let Some(slices) = services.get_mut(service) else {
            return false;
        };
        let now = Instant::now();
        let mut stale = false;
        slices.retain(|uid, (expected, since)| {
            if now.duration_since(*since) > FORGET_AFTER {
                return false;
            }
            let seen = cached
                .iter()
                .find(|s| s.metadata.uid.as_deref() == Some(uid.as_str()));
            let met = match (*expected, seen) {
                (Expected::Deleted, None) => true,
                (Expected::Deleted, Some(_)) | (Expected::Written(_), None) => false,
                (Expected::Written(version), Some(slice)) => {
                    revision(slice).is_none_or(|v| v >= version)
                }
            };
            stale |= !met;
            !met
        });
        if slices.is_empty() {
            services.remove(service);
        }
        stale
    }

    fn expect(&self, service: &(String, String), uid: String, expected: Expected) {
        self.lock()
            .entry(service.clone())
            .or_default()
            .insert(uid, (expected, Instant::now()));
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Expectations> {
        self.services
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

fn revision(slice: &EndpointSlice) -> Option<u64> {
    slice.metadata.resource_version.as_deref()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn slice(uid: &str, version: &str) -> EndpointSlice {
        let mut s = EndpointSlice::default();
        s.metadata.uid = Some(uid.into());
        s.metadata.resource_version = Some(version.into());
        s
    }

    #[test]
    fn a_cache_missing_a_write_is_stale_until_it_catches_up() {
        let tracker = SliceTracker::default();
        let svc = ("default".to_owned(), "web".to_owned());
        assert!(!tracker.stale(&svc, &[]));
        tracker.written(&svc, &slice("a", "10"));
        assert!(tracker.stale(&svc, &[]));
        assert!(tracker.stale(&svc, &[Arc::new(slice("a", "9"))]));
        assert!(!tracker.stale(&svc, &[Arc::new(slice("a", "10"))]));
        // Met expectations are dropped.
        assert!(!tracker.stale(&svc, &[]));
    }

    #[test]
    fn a_deleted_slice_still_cached_is_stale() {
        let tracker = SliceTracker::default();
        let svc = ("default".to_owned(), "web".to_owned());
        tracker.deleted(&svc, &slice("a", "10"));
        assert!(tracker.stale(&svc, &[Arc::new(slice("a", "10"))]));
        assert!(!tracker.stale(&svc, &[]));
    }

    #[test]
    fn forgetting_a_slice_or_service_clears_expectations() {
        let tracker = SliceTracker::default();
        let svc = ("default".to_owned(), "web".to_owned());
        tracker.written(&svc, &slice("a", "10"));
        tracker.forget_slice("a");
        assert!(!tracker.stale(&svc, &[]));
        tracker.written(&svc, &slice("b", "11"));
        tracker.forget_service(&svc);
        assert!(!tracker.stale(&svc, &[]));
    }
}
