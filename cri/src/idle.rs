//! Keeping an idle runtime small: after a burst of CRI calls, once the
//! socket has been quiet for [`QUIET`], the process sheds the clean code
//! and constant pages the burst touched and returns free heap to the kernel
//! (`skiff_shims::memory::trim`, as the shims do). Those pages stay in the
//! page cache; whatever runs next maps them back with a minor fault.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio_util::sync::CancellationToken;

/// How long the socket must be quiet before the process trims.
pub const QUIET: Duration = Duration::from_secs(1);

/// Counts CRI calls and trims after a quiet spell.
#[derive(Debug, Clone, Default)]
pub struct IdleTrim {
    calls: Arc<AtomicU64>,
}

impl IdleTrim {
    /// Notes one call.
    pub fn touch(&self) {
        self.calls.fetch_add(1, Ordering::Relaxed);
    }

    /// Calls noted so far.
    pub fn calls(&self) -> u64 {
        self.calls.load(Ordering::Relaxed)
    }

    /// Trims after start-up and after each burst of calls, once a whole
    /// [`QUIET`] period saw no call; until `stop` is cancelled.
    pub async fn run(self, stop: CancellationToken) {
        self.run_with(stop, skiff_shims::memory::trim).await
    }

    /// [`IdleTrim::run`] with `trim` as the trimming.
    async fn run_with(self, stop: CancellationToken, trim: fn()) {
        let mut last = self.calls();
        // Start-up touched plenty.
        let mut pending = true;
        loop {
            tokio::select! {
                () = stop.cancelled() => return,
                () = tokio::time::sleep(QUIET) => {}
            }
            let calls = self.calls();
            if calls != last {
                // Busy: wait for a quiet period.
                last = calls;
                pending = true;
                continue;
            }
            if pending {
                pending = false;
                let _ = tokio::task::spawn_blocking(trim).await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    static TRIMS: AtomicU64 = AtomicU64::new(0);

    fn count() {
        TRIMS.fetch_add(1, Ordering::SeqCst);
    }

    async fn periods(n: u32) {
        for _ in 0..n {
            tokio::time::sleep(QUIET).await;
            // Let the trimmer's spawn_blocking finish.
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }

    #[tokio::test(start_paused = true)]
    async fn trims_after_start_up_and_after_each_burst_once_quiet() {
        let idle = IdleTrim::default();
        let stop = CancellationToken::new();
        let task = tokio::spawn(idle.clone().run_with(stop.clone(), count));
        periods(1).await;
        assert_eq!(TRIMS.load(Ordering::SeqCst), 1, "after start-up");
        periods(3).await;
        assert_eq!(TRIMS.load(Ordering::SeqCst), 1, "quiet: no more trims");
        // A burst spanning two periods: one trim, after the first quiet one.
        idle.touch();
        periods(1).await;
        idle.touch();
        periods(1).await;
        assert_eq!(TRIMS.load(Ordering::SeqCst), 1, "still busy");
        periods(1).await;
        assert_eq!(TRIMS.load(Ordering::SeqCst), 2, "quiet after the burst");
        periods(2).await;
        assert_eq!(TRIMS.load(Ordering::SeqCst), 2);
        stop.cancel();
        task.await.unwrap();
    }
}
