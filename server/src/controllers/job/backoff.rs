//! The pod failure back-off: after failures a Job waits 10 s, doubling per
//! failure since its last success and capped at 6 minutes, before it makes
//! new pods (upstream's `backoffRecord`).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::jiff::Timestamp;

use super::pods;

/// The first delay after a failure.
pub const DEFAULT_BACKOFF: Duration = Duration::from_secs(10);
/// The longest delay.
pub const MAX_BACKOFF: Duration = Duration::from_secs(360);

/// Failures since the last success, and when the last one happened.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Record {
    /// Failed pods counted since the last succeeded one.
    pub failures_after_last_success: u32,
    /// When the latest of them finished.
    pub last_failure: Option<Timestamp>,
}

impl Record {
    /// This record updated with newly finished pods.
    pub fn with_finished(self, succeeded: &[&Pod], failed: &[&Pod]) -> Record {
        if failed.is_empty() {
            if succeeded.is_empty() {
                return self;
            }
            return Record::default();
        }
        let mut failed_at: Vec<Timestamp> = failed.iter().map(|p| pods::finished_at(p)).collect();
        failed_at.sort_unstable();
        let last_success = succeeded.iter().map(|p| pods::finished_at(p)).max();
        match last_success {
            None => Record {
                failures_after_last_success: self.failures_after_last_success
                    + failed_at.len() as u32,
                last_failure: failed_at.last().copied(),
            },
            Some(success) => {
                let after: Vec<_> = failed_at.iter().filter(|t| **t > success).collect();
                Record {
                    failures_after_last_success: after.len() as u32,
                    last_failure: after.last().map(|t| **t),
                }
            }
        }
    }

    /// How long to wait before making pods again, at `now`.
    pub fn remaining(&self, now: Timestamp) -> Duration {
        let Some(last) = self.last_failure else {
            return Duration::ZERO;
        };
        if self.failures_after_last_success == 0 {
            return Duration::ZERO;
        }
        let mut delay = DEFAULT_BACKOFF;
        for _ in 1..self.failures_after_last_success {
            delay = delay.saturating_mul(2);
            if delay >= MAX_BACKOFF {
                delay = MAX_BACKOFF;
                break;
            }
        }
        let elapsed = now
            .duration_since(last)
            .try_into()
            .unwrap_or(Duration::ZERO);
        delay.saturating_sub(elapsed)
    }
}

/// The records of every Job, by `namespace/name`.
#[derive(Debug, Default)]
pub struct Store {
    records: Mutex<HashMap<String, Record>>,
}

impl Store {
    /// The Job's record (empty when it has none).
    pub fn get(&self, key: &str) -> Record {
        self.lock().get(key).copied().unwrap_or_default()
    }

    /// Saves the Job's record.
    pub fn set(&self, key: &str, record: Record) {
        let mut records = self.lock();
        if record == Record::default() {
            records.remove(key);
        } else {
            records.insert(key.to_owned(), record);
        }
    }

    /// Forgets the Job.
    pub fn remove(&self, key: &str) {
        self.lock().remove(key);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Record>> {
        self.records
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::PodStatus;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};

    fn finished(phase: &str, at: i64) -> Pod {
        Pod {
            metadata: ObjectMeta {
                creation_timestamp: Some(Time(Timestamp::from_second(at).unwrap())),
                ..Default::default()
            },
            spec: None,
            status: Some(PodStatus {
                phase: Some(phase.into()),
                ..Default::default()
            }),
        }
    }

    fn ts(secs: i64) -> Timestamp {
        Timestamp::from_second(secs).unwrap()
    }

    #[test]
    fn delay_doubles_from_ten_seconds_and_caps_at_six_minutes() {
        let record = |n| Record {
            failures_after_last_success: n,
            last_failure: Some(ts(1000)),
        };
        assert_eq!(record(1).remaining(ts(1000)), Duration::from_secs(10));
        assert_eq!(record(2).remaining(ts(1000)), Duration::from_secs(20));
        assert_eq!(record(3).remaining(ts(1005)), Duration::from_secs(35));
        assert_eq!(record(10).remaining(ts(1000)), MAX_BACKOFF);
        assert_eq!(record(1).remaining(ts(1011)), Duration::ZERO);
        assert_eq!(Record::default().remaining(ts(0)), Duration::ZERO);
    }

    #[test]
    fn a_success_resets_the_count_to_the_failures_after_it() {
        let (f1, f2, s) = (
            finished("Failed", 10),
            finished("Failed", 30),
            finished("Succeeded", 20),
        );
        let r = Record::default().with_finished(&[], &[&f1]);
        assert_eq!(r.failures_after_last_success, 1);
        let r = r.with_finished(&[&s], &[&f1, &f2]);
        assert_eq!(r.failures_after_last_success, 1);
        assert_eq!(r.last_failure, Some(ts(30)));
        assert_eq!(r.with_finished(&[&s], &[]), Record::default());
    }
}
