//! What this benchmark leaves on the machine, and how it goes away.
//!
//! containerd's shims daemonize and outlive containerd, and both runtimes'
//! containers outlive their runtime, so `GuardedChild` alone cannot clean
//! up after a run that was killed. Instead every run holds a lock, names
//! its work directory `$TMPDIR/skiff-bench-runtime-*` and its pods' cgroups
//! `/skiff-bench-runtime/...`, and sweeps whatever carries those marks
//! before it starts (an earlier run that was killed) and after it ends
//! (`skiff_benches::cleanup`, plus containerd's CNI leftovers here).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use skiff_benches::cleanup;
pub use skiff_benches::cleanup::processes;

/// Prefix of the work directory under `$TMPDIR`.
pub const WORK_PREFIX: &str = "skiff-bench-runtime-";
/// The cgroup (in every hierarchy) all benchmark pods live under.
pub const CGROUP_ROOT: &str = "skiff-bench-runtime";
/// The CNI network and bridge containerd's pods attach to.
pub const CNI_NETWORK: &str = "cnibench";
/// The bridge of [`CNI_NETWORK`].
pub const CNI_BRIDGE: &str = "cnibench0";
/// Where libcni caches results, whatever the runtime's configuration says.
const CNI_CACHE: &str = "/var/lib/cni/results";

/// Takes the node benchmarks' lock (one at a time: two would measure each
/// other), or fails at once if another run holds it.
pub fn lock() -> anyhow::Result<cleanup::BenchLock> {
    cleanup::BenchLock::acquire(Path::new(cleanup::NODE_BENCH_LOCK))
}

/// Work directories of earlier runs (this run holds the lock, so any that
/// exist were left by a run that did not finish).
pub fn stale_work_dirs() -> Vec<PathBuf> {
    cleanup::stale_work_dirs(WORK_PREFIX)
}

/// Removes everything of the benchmark: processes that name one of
/// `work_dirs` on their command line (runtimes, shims) or live in the
/// benchmark's cgroups (containers), mounts below `work_dirs`, the
/// directories themselves, the pods' cgroups, the CNI bridge and libcni's
/// cached results for it. Returns how many processes it had to kill.
pub fn sweep(work_dirs: &[PathBuf]) -> usize {
    let killed = cleanup::sweep(work_dirs, CGROUP_ROOT);
    let _ = Command::new("ip")
        .args(["link", "del", CNI_BRIDGE])
        .stderr(Stdio::null())
        .status();
    // containerd 1.6 puts shim sockets there whatever its state directory;
    // a shim removes its own, so only empty directories are left to remove.
    let _ = std::fs::remove_dir("/run/containerd/s");
    let _ = std::fs::remove_dir("/run/containerd");
    if let Ok(entries) = std::fs::read_dir(CNI_CACHE) {
        for entry in entries.filter_map(|e| e.ok()) {
            if entry
                .file_name()
                .to_string_lossy()
                .starts_with(&format!("{CNI_NETWORK}-"))
            {
                let _ = std::fs::remove_file(entry.path());
            }
        }
    }
    killed
}
