//! Per-object requeue back-off after failed reconciles, as client-go's
//! default controller rate limiter: 5 ms doubling per failure up to
//! 1000 s, reset by a success.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

const BASE: Duration = Duration::from_millis(5);
const MAX: Duration = Duration::from_secs(1000);

/// Failure counts by object key.
#[derive(Debug, Default)]
pub(crate) struct Backoff {
    failures: Mutex<HashMap<String, u32>>,
}

impl Backoff {
    /// Counts a failure of `key` and says how long to wait before retrying.
    pub(crate) fn failed(&self, key: &str) -> Duration {
        let mut failures = self.failures.lock().unwrap_or_else(PoisonError::into_inner);
        let count = failures.entry(key.to_owned()).or_default();
        let delay = delay_after(*count);
        *count = count.saturating_add(1);
        delay
    }

    /// `key` reconciled fine: its next failure starts from the base again.
    pub(crate) fn succeeded(&self, key: &str) {
        let mut failures = self.failures.lock().unwrap_or_else(PoisonError::into_inner);
        if !failures.is_empty() {
            failures.remove(key);
        }
    }
}

/// The wait after `previous` earlier failures.
fn delay_after(previous: u32) -> Duration {
    BASE.checked_mul(2u32.saturating_pow(previous))
        .map_or(MAX, |delay| delay.min(MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_to_a_ceiling_and_resets() {
        let backoff = Backoff::default();
        assert_eq!(backoff.failed("a"), Duration::from_millis(5));
        assert_eq!(backoff.failed("a"), Duration::from_millis(10));
        assert_eq!(backoff.failed("a"), Duration::from_millis(20));
        assert_eq!(backoff.failed("b"), Duration::from_millis(5));
        backoff.succeeded("a");
        assert_eq!(backoff.failed("a"), Duration::from_millis(5));
        assert_eq!(delay_after(40), MAX);
    }
}
