//! A work queue as client-go's: an item is queued at most once, never
//! handed to two workers at once (added while in work, it comes back when
//! done), and failed items come back after a per-item exponential back-off
//! (5 ms doubling to 1000 s).

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tokio::sync::Notify;

/// The first retry delay.
const BASE_DELAY: Duration = Duration::from_millis(5);
/// The longest retry delay.
const MAX_DELAY: Duration = Duration::from_secs(1000);

#[derive(Debug, Default)]
struct State {
    ready: VecDeque<String>,
    dirty: HashSet<String>,
    processing: HashSet<String>,
    failures: HashMap<String, u32>,
}

/// Items (object UIDs) waiting for a worker.
#[derive(Debug, Default)]
pub struct WorkQueue {
    state: Mutex<State>,
    notify: Notify,
}

/// The delay before the `failures`-th retry.
pub fn backoff(failures: u32) -> Duration {
    BASE_DELAY
        .saturating_mul(1u32.checked_shl(failures).unwrap_or(u32::MAX))
        .min(MAX_DELAY)
}

impl WorkQueue {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Queues `item` unless it already waits.
    pub fn add(&self, item: String) {
        let mut state = self.lock();
        if !state.dirty.insert(item.clone()) {
            return;
        }
        if !state.processing.contains(&item) {
            state.ready.push_back(item);
            drop(state);
            self.notify.notify_one();
        }
    }

    /// Queues `item` again after its back-off.
    pub fn add_rate_limited(self: &Arc<Self>, item: String) {
        let delay = {
            let mut state = self.lock();
            let failures = state.failures.entry(item.clone()).or_insert(0);
            let delay = backoff(*failures);
            *failures = failures.saturating_add(1);
            delay
        };
        let queue = Arc::clone(self);
        tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            queue.add(item);
        });
    }

    /// Forgets the failures of `item`.
    pub fn forget(&self, item: &str) {
        self.lock().failures.remove(item);
    }

    /// The next item; the caller calls [`WorkQueue::done`] when finished.
    pub async fn next(&self) -> String {
        loop {
            let notified = self.notify.notified();
            {
                let mut state = self.lock();
                if let Some(item) = state.ready.pop_front() {
                    state.dirty.remove(&item);
                    state.processing.insert(item.clone());
                    if !state.ready.is_empty() {
                        self.notify.notify_one();
                    }
                    return item;
                }
            }
            notified.await;
        }
    }

    /// The worker finished `item`; queued again meanwhile, it comes back.
    pub fn done(&self, item: &str) {
        let mut state = self.lock();
        state.processing.remove(item);
        if state.dirty.contains(item) {
            state.ready.push_back(item.to_owned());
            drop(state);
            self.notify.notify_one();
        }
    }

    /// How many items wait.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.lock().ready.len()
    }

    /// Whether nothing waits.
    #[cfg(test)]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn an_item_is_queued_once_and_never_worked_twice_at_once() {
        let queue = WorkQueue::default();
        queue.add("a".into());
        queue.add("a".into());
        queue.add("b".into());
        assert_eq!(queue.len(), 2);
        let a = queue.next().await;
        assert_eq!(a, "a");
        queue.add("a".into());
        assert_eq!(queue.next().await, "b");
        assert!(queue.is_empty(), "a waits until its worker is done");
        queue.done("a");
        assert_eq!(queue.next().await, "a");
    }

    #[test]
    fn backoff_doubles_from_five_milliseconds_to_a_cap() {
        assert_eq!(backoff(0), Duration::from_millis(5));
        assert_eq!(backoff(3), Duration::from_millis(40));
        assert_eq!(backoff(40), MAX_DELAY);
    }

    #[tokio::test]
    async fn failed_items_come_back_after_their_backoff() {
        let queue = Arc::new(WorkQueue::default());
        queue.add_rate_limited("a".into());
        queue.add_rate_limited("a".into());
        let item = tokio::time::timeout(Duration::from_secs(1), queue.next())
            .await
            .unwrap();
        assert_eq!(item, "a");
        queue.forget("a");
    }
}
