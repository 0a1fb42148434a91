//! What this benchmark leaves on the machine, and how it goes away.
//!
//! containerd's shims daemonize and outlive containerd, and both runtimes'
//! containers outlive their runtime, so `GuardedChild` alone cannot clean
//! up after a run that was killed. Instead every run holds a lock, names
//! its work directory `$TMPDIR/skiff-bench-runtime-*` and its pods' cgroups
//! `/skiff-bench-runtime/...`, and sweeps whatever carries those marks
//! before it starts (an earlier run that was killed) and after it ends.

use std::fs::File;
use std::os::fd::AsRawFd as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

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

/// One runtime benchmark at a time: two would measure each other.
pub struct BenchLock {
    _file: File,
}

impl BenchLock {
    /// Takes the lock, or fails at once if another run holds it.
    pub fn acquire() -> anyhow::Result<BenchLock> {
        let path = Path::new("/run/skiff-bench-runtime.lock");
        let file = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(path)
            .with_context(|| format!("opening {}", path.display()))?;
        // SAFETY: flock on a descriptor this function owns.
        if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
            bail!(
                "another runtime benchmark is running (it holds {})",
                path.display()
            );
        }
        Ok(BenchLock { _file: file })
    }
}

/// A process as `/proc` shows it.
#[derive(Debug, Clone)]
pub struct Process {
    /// Its id.
    pub pid: u32,
    /// Its parent's id.
    pub ppid: u32,
    /// Its arguments, `argv[0]` first.
    pub argv: Vec<String>,
    /// `/proc/<pid>/cgroup`.
    pub cgroup: String,
}

impl Process {
    /// The command line, arguments joined by spaces.
    pub fn command_line(&self) -> String {
        self.argv.join(" ")
    }
}

/// Every process on the machine except this one (kernel threads have no
/// arguments and are left out).
pub fn processes() -> Vec<Process> {
    let me = std::process::id();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|e| e.ok())
        .filter_map(|entry| {
            let pid: u32 = entry.file_name().to_str()?.parse().ok()?;
            let cmdline = std::fs::read(entry.path().join("cmdline")).ok()?;
            let stat = std::fs::read_to_string(entry.path().join("stat")).ok()?;
            // `pid (comm) state ppid ...`; comm may hold spaces and parens.
            let ppid = stat
                .rsplit_once(')')?
                .1
                .split_whitespace()
                .nth(1)?
                .parse()
                .ok()?;
            let argv: Vec<String> = cmdline
                .split(|b| *b == 0)
                .filter(|a| !a.is_empty())
                .map(|a| String::from_utf8_lossy(a).into_owned())
                .collect();
            let cgroup = std::fs::read_to_string(entry.path().join("cgroup")).unwrap_or_default();
            (pid != me && !argv.is_empty()).then_some(Process {
                pid,
                ppid,
                argv,
                cgroup,
            })
        })
        .collect()
}

/// Work directories of earlier runs (this run holds the lock, so any that
/// exist were left by a run that did not finish).
pub fn stale_work_dirs() -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) else {
        return Vec::new();
    };
    entries
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with(WORK_PREFIX))
        .map(|e| e.path())
        .collect()
}

/// Removes everything of the benchmark: processes that name one of
/// `work_dirs` on their command line (runtimes, shims) or live in the
/// benchmark's cgroups (containers), mounts below `work_dirs`, the
/// directories themselves, the pods' cgroups, the CNI bridge and libcni's
/// cached results for it. Returns how many processes it had to kill.
pub fn sweep(work_dirs: &[PathBuf]) -> usize {
    let marks: Vec<String> = work_dirs.iter().map(|d| d.display().to_string()).collect();
    let cgroup_mark = format!("/{CGROUP_ROOT}/");
    let mut killed = 0;
    // A shim may start a process while we kill: look until none is left.
    for _ in 0..10 {
        let ours: Vec<Process> = processes()
            .into_iter()
            .filter(|p| {
                p.cgroup.contains(&cgroup_mark)
                    || marks.iter().any(|m| p.argv.iter().any(|a| a.contains(m)))
            })
            .collect();
        if ours.is_empty() {
            break;
        }
        for process in &ours {
            // SAFETY: kill has no memory effects.
            unsafe { libc::kill(process.pid as i32, libc::SIGKILL) };
        }
        killed += ours.len();
        std::thread::sleep(Duration::from_millis(100));
    }
    unmount_below(&marks);
    for dir in work_dirs {
        let _ = std::fs::remove_dir_all(dir);
    }
    remove_cgroup_trees();
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

/// Detaches every mount whose mount point lies below one of `marks`,
/// deepest first.
fn unmount_below(marks: &[String]) {
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let mut ours: Vec<&str> = mounts
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .filter(|m| marks.iter().any(|mark| m.starts_with(mark.as_str())))
        .collect();
    ours.sort_by_key(|m| std::cmp::Reverse(m.len()));
    for mount in ours {
        let Ok(target) = std::ffi::CString::new(mount) else {
            continue;
        };
        // SAFETY: a valid C string; umount2 has no memory effects.
        unsafe { libc::umount2(target.as_ptr(), libc::MNT_DETACH) };
    }
}

/// Removes `/sys/fs/cgroup/<hierarchy>/skiff-bench-runtime` and everything
/// below it in every hierarchy, waiting briefly for killed processes to
/// leave their cgroups.
fn remove_cgroup_trees() {
    let Ok(hierarchies) = std::fs::read_dir("/sys/fs/cgroup") else {
        return;
    };
    let roots: Vec<PathBuf> = hierarchies
        .filter_map(|e| e.ok())
        .map(|e| e.path().join(CGROUP_ROOT))
        .filter(|p| p.is_dir())
        .collect();
    let deadline = Instant::now() + Duration::from_secs(5);
    for root in roots {
        loop {
            let mut dirs = vec![root.clone()];
            let mut i = 0;
            while i < dirs.len() {
                if let Ok(children) = std::fs::read_dir(&dirs[i]) {
                    dirs.extend(
                        children
                            .filter_map(|e| e.ok())
                            .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
                            .map(|e| e.path()),
                    );
                }
                i += 1;
            }
            dirs.sort_by_key(|d| std::cmp::Reverse(d.as_os_str().len()));
            for dir in &dirs {
                let _ = std::fs::remove_dir(dir);
            }
            if !root.exists() || Instant::now() > deadline {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}
