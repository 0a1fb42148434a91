//! The guest's memory limit and how running out of it is reported.
//!
//! The limit is the container's memory limit, applied to each linear memory
//! through wasmtime's store limits: growing past it traps (it would only
//! make `memory.grow` return -1 otherwise, and guests rarely survive that
//! with a useful message), and the trap means OOMKilled. The child leaves an
//! `oom` marker in its state directory, which the shim checks besides the
//! cgroup's OOM-kill counter.

use std::fs;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use nix::fcntl::{OFlag, openat};
use nix::sys::stat::Mode;
use wasmtime::{ResourceLimiter, StoreLimits, StoreLimitsBuilder};

/// The marker's file name in a container's state directory.
pub const OOM_MARKER: &str = "oom";

/// Store limits that remember whether the memory limit was hit.
pub struct GuestLimiter {
    inner: StoreLimits,
    memory_limit: Option<usize>,
    exceeded: bool,
}

impl GuestLimiter {
    /// Limits each linear memory to `memory_limit` bytes (unlimited: `None`).
    pub fn new(memory_limit: Option<u64>) -> Self {
        let memory_limit = memory_limit.map(|limit| usize::try_from(limit).unwrap_or(usize::MAX));
        let mut builder = StoreLimitsBuilder::new();
        if let Some(limit) = memory_limit {
            builder = builder.memory_size(limit);
        }
        GuestLimiter {
            // Growth past a module's own maximum keeps failing the standard
            // way (-1); only the container's limit traps, below.
            inner: builder.trap_on_grow_failure(false).build(),
            memory_limit,
            exceeded: false,
        }
    }

    /// Whether the guest tried to grow a memory past the limit.
    pub fn exceeded(&self) -> bool {
        self.exceeded
    }
}

impl ResourceLimiter for GuestLimiter {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if let Some(limit) = self.memory_limit
            && desired > limit
        {
            self.exceeded = true;
            return Err(wasmtime::Error::msg(format!(
                "memory limit exceeded: growing a linear memory to {desired} bytes, \
                 past the container's limit of {limit} bytes"
            )));
        }
        self.inner.memory_growing(current, desired, maximum)
    }

    fn table_growing(
        &mut self,
        current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        self.inner.table_growing(current, desired, maximum)
    }

    fn instances(&self) -> usize {
        self.inner.instances()
    }

    fn tables(&self) -> usize {
        self.inner.tables()
    }

    fn memories(&self) -> usize {
        self.inner.memories()
    }
}

/// Where the child leaves its `oom` marker: its state directory, opened
/// before the child drops privileges (the directory belongs to the guest's
/// user; the way to it may not be searchable by that user).
#[derive(Debug)]
pub struct OomMarker {
    dir: OwnedFd,
}

impl OomMarker {
    /// Opens the state directory `dir`.
    pub fn open(dir: &Path) -> std::io::Result<Self> {
        let dir = fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_PATH | libc::O_DIRECTORY)
            .open(dir)?;
        Ok(OomMarker { dir: dir.into() })
    }

    /// Leaves the marker.
    pub fn record(&self) -> nix::Result<()> {
        let file = openat(
            Some(self.dir.as_raw_fd()),
            OOM_MARKER,
            OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_CLOEXEC,
            Mode::from_bits_truncate(0o600),
        )?;
        nix::unistd::close(file)
    }
}

/// Whether a container's state directory holds the marker.
pub fn oom_recorded(state_dir: &Path) -> bool {
    fs::symlink_metadata(state_dir.join(OOM_MARKER)).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_container_limit_counts_as_exceeded() {
        let mut limiter = GuestLimiter::new(Some(2 << 16));
        assert!(limiter.memory_growing(0, 1 << 16, None).unwrap());
        assert!(limiter.memory_growing(1 << 16, 2 << 16, None).unwrap());
        // The module's own maximum: a plain failure.
        assert!(
            !limiter
                .memory_growing(1 << 16, 2 << 16, Some(1 << 16))
                .unwrap()
        );
        assert!(!limiter.exceeded());
        assert!(limiter.memory_growing(2 << 16, 3 << 16, None).is_err());
        assert!(limiter.exceeded());

        let mut unlimited = GuestLimiter::new(None);
        assert!(unlimited.memory_growing(0, 1 << 40, None).unwrap());
        assert!(!unlimited.exceeded());
    }

    #[test]
    fn the_marker_is_a_file_in_the_state_directory() {
        let dir = tempfile::tempdir().unwrap();
        assert!(!oom_recorded(dir.path()));
        let marker = OomMarker::open(dir.path()).unwrap();
        marker.record().unwrap();
        assert!(oom_recorded(dir.path()));
    }
}
