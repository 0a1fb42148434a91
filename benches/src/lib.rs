//! Skiff's benchmarks and the small statistics they share.
//!
//! Benchmarks live in `benches/benches/*.rs` (run with `./scripts/bench.sh`
//! or `cargo bench -p skiff-benches`); they print medians, p95s and memory
//! figures for closing notes. Nothing here is asserted in tests.
//!
//! # Layout
//!
//! - [`Samples`]: durations collected by a benchmark, with median and p95.
//! - [`cpu_time`]: CPU used by this process, to tell CPU-bound from disk-bound.
//! - [`rss_kib`], [`rss_anon_kib`], [`pss_kib`]: memory of a process, from `/proc`;
//!   [`usage`] all three at once as a [`Usage`].
//! - [`cri`]: CRI calls the node benchmarks share.
//! - [`cleanup`]: the lock, sweep and signal handling of node benchmarks,
//!   which leave shims and containers behind when they are killed.

pub mod cleanup;
pub mod cri;

use std::time::Duration;

/// Durations of repeated runs of one operation.
#[derive(Debug, Default, Clone)]
pub struct Samples {
    durations: Vec<Duration>,
}

impl Samples {
    /// Records one run.
    pub fn push(&mut self, duration: Duration) {
        self.durations.push(duration);
    }

    /// The value at quantile `q` (0..=1), nearest rank.
    pub fn quantile(&self, q: f64) -> Duration {
        let mut sorted = self.durations.clone();
        sorted.sort();
        if sorted.is_empty() {
            return Duration::ZERO;
        }
        let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
        sorted[rank - 1]
    }

    /// Every run recorded.
    pub fn durations(&self) -> &[Duration] {
        &self.durations
    }

    /// The median.
    pub fn median(&self) -> Duration {
        self.quantile(0.5)
    }

    /// The 95th percentile.
    pub fn p95(&self) -> Duration {
        self.quantile(0.95)
    }

    /// One line: `name: median X, p95 Y (n runs)`.
    pub fn report(&self, name: &str) -> String {
        format!(
            "{name}: median {}, p95 {} ({} runs)",
            fmt(self.median()),
            fmt(self.p95()),
            self.durations.len()
        )
    }
}

/// A duration as a benchmark prints it (µs, ms or s).
pub fn fmt(d: Duration) -> String {
    if d < Duration::from_millis(1) {
        format!("{:.1} µs", d.as_secs_f64() * 1e6)
    } else {
        format!("{:.2} ms", d.as_secs_f64() * 1e3)
    }
}

fn status_field(pid: u32, file: &str, field: &str) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/{file}")).ok()?;
    text.lines()
        .find(|l| l.starts_with(field))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// CPU time this process has used so far: (user, system).
pub fn cpu_time() -> (Duration, Duration) {
    // SAFETY: getrusage only writes the struct we pass.
    let usage = unsafe {
        let mut usage: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_SELF, &mut usage);
        usage
    };
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    (tv(usage.ru_utime), tv(usage.ru_stime))
}

/// Resident set size of process `pid`, in KiB.
pub fn rss_kib(pid: u32) -> Option<u64> {
    status_field(pid, "status", "VmRSS:")
}

/// The anonymous part of process `pid`'s resident set (heap, stacks), in
/// KiB; the rest is clean pages of the binary and libraries.
pub fn rss_anon_kib(pid: u32) -> Option<u64> {
    status_field(pid, "status", "RssAnon:")
}

/// Proportional set size of process `pid`, in KiB.
pub fn pss_kib(pid: u32) -> Option<u64> {
    status_field(pid, "smaps_rollup", "Pss:")
}

/// Memory of one process, in KiB (zero when it is gone).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Usage {
    /// Resident set size.
    pub rss: u64,
    /// Proportional set size.
    pub pss: u64,
    /// Anonymous resident memory.
    pub anon: u64,
}

impl std::ops::Add for Usage {
    type Output = Usage;

    fn add(self, other: Usage) -> Usage {
        Usage {
            rss: self.rss + other.rss,
            pss: self.pss + other.pss,
            anon: self.anon + other.anon,
        }
    }
}

impl std::iter::Sum for Usage {
    fn sum<I: Iterator<Item = Usage>>(iter: I) -> Usage {
        iter.fold(Usage::default(), |a, b| a + b)
    }
}

/// RSS, PSS and anonymous RSS of process `pid`.
pub fn usage(pid: u32) -> Usage {
    Usage {
        rss: rss_kib(pid).unwrap_or(0),
        pss: pss_kib(pid).unwrap_or(0),
        anon: rss_anon_kib(pid).unwrap_or(0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_use_the_nearest_rank() {
        let mut samples = Samples::default();
        for ms in 1..=100 {
            samples.push(Duration::from_millis(ms));
        }
        assert_eq!(samples.median(), Duration::from_millis(50));
        assert_eq!(samples.p95(), Duration::from_millis(95));
        assert!(rss_kib(std::process::id()).unwrap() > 0);
    }
}
