//! What a node benchmark leaves on the machine, and how it goes away.
//!
//! Shims daemonize and containers outlive their runtime, so a guarded child
//! process alone cannot clean up after a run that was killed. Instead every
//! run holds a lock, names its work directory `$TMPDIR/<prefix>*` and its
//! pods' cgroups `/<cgroup root>/...`, and sweeps whatever carries those
//! marks before it starts (an earlier run that was killed) and after it
//! ends. SIGINT, SIGTERM and SIGHUP end a run through its normal cleanup
//! ([`Signals`]).

use std::fs::File;
use std::os::fd::AsRawFd as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use tokio::signal::unix::{Signal, SignalKind, signal};

/// The lock node benchmarks hold: one at a time, or they measure each other.
pub const NODE_BENCH_LOCK: &str = "/run/skiff-bench-runtime.lock";

/// An exclusive lock on a file, held while the value lives.
#[derive(Debug)]
pub struct BenchLock {
    _file: File,
}

impl BenchLock {
    /// Takes the lock at `path`, or fails at once if another run holds it.
    pub fn acquire(path: &Path) -> anyhow::Result<BenchLock> {
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

/// Work directories of earlier runs named `$TMPDIR/<prefix>*` (the caller
/// holds the lock, so any that exist were left by a run that did not finish).
pub fn stale_work_dirs(prefix: &str) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) else {
        return Vec::new();
    };
    entries
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with(prefix))
        .map(|e| e.path())
        .collect()
}

/// Removes the processes, mounts, directories and cgroups of a benchmark:
/// processes that name one of `work_dirs` on their command line (runtimes,
/// shims) or live below `/<cgroup_root>/` (containers), mounts below
/// `work_dirs`, the directories themselves, and `/<cgroup_root>` in every
/// cgroup hierarchy. Returns how many processes it had to kill.
pub fn sweep(work_dirs: &[PathBuf], cgroup_root: &str) -> usize {
    let marks: Vec<String> = work_dirs.iter().map(|d| d.display().to_string()).collect();
    let cgroup_mark = format!("/{cgroup_root}/");
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
    remove_cgroup_trees(cgroup_root);
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

/// Removes `/sys/fs/cgroup/<hierarchy>/<root>` and everything below it in
/// every hierarchy, waiting briefly for killed processes to leave their
/// cgroups.
fn remove_cgroup_trees(root_name: &str) {
    let Ok(hierarchies) = std::fs::read_dir("/sys/fs/cgroup") else {
        return;
    };
    let roots: Vec<PathBuf> = hierarchies
        .filter_map(|e| e.ok())
        .map(|e| e.path().join(root_name))
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

/// SIGINT, SIGTERM and SIGHUP, so that an interrupted run still cleans up.
#[derive(Debug)]
pub struct Signals {
    interrupt: Signal,
    terminate: Signal,
    hangup: Signal,
}

impl Signals {
    /// Starts catching the three signals (inside a tokio runtime).
    pub fn new() -> anyhow::Result<Signals> {
        Ok(Signals {
            interrupt: signal(SignalKind::interrupt())?,
            terminate: signal(SignalKind::terminate())?,
            hangup: signal(SignalKind::hangup())?,
        })
    }

    /// Waits for one of them; returns its name.
    pub async fn recv(&mut self) -> &'static str {
        tokio::select! {
            _ = self.interrupt.recv() => "SIGINT",
            _ = self.terminate.recv() => "SIGTERM",
            _ = self.hangup.recv() => "SIGHUP",
        }
    }
}
