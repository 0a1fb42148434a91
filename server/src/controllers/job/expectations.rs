//! What the controller did that its pod cache may not show yet: pods it
//! created, deleted, or whose tracking finalizer it removed. A Job is not
//! managed again until the cache shows its creations and deletions, so a
//! lagging cache never makes it create or delete twice (upstream's
//! `ControllerExpectations` and `uidTrackingExpectations`).

use std::collections::{HashMap, HashSet};
use std::sync::{Mutex, MutexGuard, PoisonError};

use k8s_openapi::api::core::v1::Pod;

use super::pods;

#[derive(Debug, Default)]
struct Pending {
    /// Names of created pods.
    creates: HashSet<String>,
    /// UIDs of deleted pods.
    deletes: HashSet<String>,
    /// UIDs of pods whose finalizer was removed.
    finalizer_removals: HashSet<String>,
}

impl Pending {
    fn is_empty(&self) -> bool {
        self.creates.is_empty() && self.deletes.is_empty() && self.finalizer_removals.is_empty()
    }
}

/// What the cache does not show yet, for one Job.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Settled {
    /// Created pods the cache does not hold yet.
    pub missing_creates: Vec<String>,
    /// Whether every deletion shows in the cache.
    pub deletes_done: bool,
    /// Pods whose finalizer removal the cache does not show yet.
    pub finalizer_removals: HashSet<String>,
}

/// Expectations of every Job, by Job UID.
#[derive(Debug, Default)]
pub struct Expectations {
    jobs: Mutex<HashMap<String, Pending>>,
}

impl Expectations {
    fn lock(&self) -> MutexGuard<'_, HashMap<String, Pending>> {
        self.jobs.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The Job created the pod `name`.
    pub fn created(&self, job: &str, name: &str) {
        self.lock()
            .entry(job.to_owned())
            .or_default()
            .creates
            .insert(name.to_owned());
    }

    /// The Job deleted the pod with `uid`.
    pub fn deleted(&self, job: &str, uid: &str) {
        self.lock()
            .entry(job.to_owned())
            .or_default()
            .deletes
            .insert(uid.to_owned());
    }

    /// The Job removed the finalizer of the pod with `uid`.
    pub fn finalizer_removed(&self, job: &str, uid: &str) {
        self.lock()
            .entry(job.to_owned())
            .or_default()
            .finalizer_removals
            .insert(uid.to_owned());
    }

    /// A created pod is known to be gone already.
    pub fn forget_created(&self, job: &str, name: &str) {
        if let Some(pending) = self.lock().get_mut(job) {
            pending.creates.remove(name);
        }
    }

    /// Drops what `pods` (the Job's pods in the cache) show done and
    /// returns the rest.
    pub fn settle(&self, job: &str, pods: &[&Pod]) -> Settled {
        let mut jobs = self.lock();
        let Some(pending) = jobs.get_mut(job) else {
            return Settled {
                deletes_done: true,
                ..Settled::default()
            };
        };
        let by_uid = |uid: &str| {
            pods.iter()
                .find(|p| p.metadata.uid.as_deref() == Some(uid))
                .copied()
        };
        pending.creates.retain(|name| {
            !pods
                .iter()
                .any(|p| p.metadata.name.as_deref() == Some(name))
        });
        pending
            .deletes
            .retain(|uid| by_uid(uid).is_some_and(|p| p.metadata.deletion_timestamp.is_none()));
        pending
            .finalizer_removals
            .retain(|uid| by_uid(uid).is_some_and(pods::has_tracking_finalizer));
        let settled = Settled {
            missing_creates: pending.creates.iter().cloned().collect(),
            deletes_done: pending.deletes.is_empty(),
            finalizer_removals: pending.finalizer_removals.clone(),
        };
        if pending.is_empty() {
            jobs.remove(job);
        }
        settled
    }

    /// Forgets a deleted Job.
    pub fn remove(&self, job: &str) {
        self.lock().remove(job);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
    use k8s_openapi::jiff::Timestamp;

    fn pod(name: &str, uid: &str, finalizer: bool) -> Pod {
        Pod {
            metadata: ObjectMeta {
                name: Some(name.into()),
                uid: Some(uid.into()),
                finalizers: finalizer.then(|| vec![pods::TRACKING_FINALIZER.into()]),
                ..Default::default()
            },
            ..Default::default()
        }
    }

    #[test]
    fn creations_settle_when_the_cache_holds_the_pods() {
        let e = Expectations::default();
        e.created("job", "a");
        let s = e.settle("job", &[]);
        assert_eq!(s.missing_creates, ["a"]);
        let a = pod("a", "1", true);
        let s = e.settle("job", &[&a]);
        assert!(s.missing_creates.is_empty());
        assert!(s.deletes_done);
    }

    #[test]
    fn deletions_settle_when_marked_or_gone() {
        let e = Expectations::default();
        let mut a = pod("a", "1", true);
        e.deleted("job", "1");
        assert!(!e.settle("job", &[&a]).deletes_done);
        a.metadata.deletion_timestamp = Some(Time(Timestamp::UNIX_EPOCH));
        assert!(e.settle("job", &[&a]).deletes_done);
        e.deleted("job", "2");
        assert!(e.settle("job", &[]).deletes_done);
    }

    #[test]
    fn finalizer_removals_stay_until_the_cache_shows_them() {
        let e = Expectations::default();
        e.finalizer_removed("job", "1");
        let with = pod("a", "1", true);
        assert!(e.settle("job", &[&with]).finalizer_removals.contains("1"));
        let without = pod("a", "1", false);
        assert!(e.settle("job", &[&without]).finalizer_removals.is_empty());
    }
}
