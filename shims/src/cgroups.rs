//! What the shim reads from a container's cgroup: OOM kills (for the
//! `OOMKilled` reason) and processes left behind by an exited init.
//!
//! cgroup v1 (legacy and hybrid hosts, as libcgroups decides): the memory
//! controller's `memory.oom_control` has an `oom_kill` counter of the
//! cgroup's own OOM kills (Linux 4.13+). cgroup v2: `memory.events` has
//! `oom_kill`, counting kills in the cgroup and its descendants.

use std::fs;
use std::path::{Path, PathBuf};

use libcgroups::common::{CgroupSetup, DEFAULT_CGROUP_ROOT, get_cgroup_setup};
use nix::unistd::Pid;

/// Reads a container cgroup's OOM kills and processes.
pub trait CgroupProbe {
    /// OOM kills the cgroup recorded (0 when unknown).
    fn oom_kills(&self, cgroup: &Path) -> u64;
    /// Processes in the cgroup.
    fn procs(&self, cgroup: &Path) -> Vec<Pid>;
}

/// The host's cgroup filesystem.
#[derive(Debug, Clone)]
pub struct CgroupFs {
    /// The hierarchy holding the memory controller.
    memory_root: PathBuf,
    unified: bool,
}

impl CgroupFs {
    /// Finds the memory hierarchy the way libcgroups' cgroupfs driver does.
    pub fn detect() -> Self {
        match get_cgroup_setup() {
            Ok(CgroupSetup::Unified) => CgroupFs::unified(DEFAULT_CGROUP_ROOT),
            _ => {
                let memory = libcgroups::v1::util::get_subsystem_mount_point(
                    &libcgroups::v1::ControllerType::Memory,
                )
                .unwrap_or_else(|_| Path::new(DEFAULT_CGROUP_ROOT).join("memory"));
                CgroupFs::v1(memory)
            }
        }
    }

    /// A cgroup v1 memory hierarchy mounted at `memory_root`.
    pub fn v1(memory_root: impl Into<PathBuf>) -> Self {
        CgroupFs {
            memory_root: memory_root.into(),
            unified: false,
        }
    }

    /// A cgroup v2 hierarchy mounted at `root`.
    pub fn unified(root: impl Into<PathBuf>) -> Self {
        CgroupFs {
            memory_root: root.into(),
            unified: true,
        }
    }

    fn dir(&self, cgroup: &Path) -> PathBuf {
        self.memory_root
            .join(cgroup.strip_prefix("/").unwrap_or(cgroup))
    }
}

impl CgroupProbe for CgroupFs {
    fn oom_kills(&self, cgroup: &Path) -> u64 {
        let file = if self.unified {
            "memory.events"
        } else {
            "memory.oom_control"
        };
        let path = self.dir(cgroup).join(file);
        match fs::read_to_string(&path) {
            Ok(text) => counter(&text, "oom_kill").unwrap_or(0),
            Err(err) => {
                tracing::debug!(path = %path.display(), %err, "no OOM counter");
                0
            }
        }
    }

    fn procs(&self, cgroup: &Path) -> Vec<Pid> {
        fs::read_to_string(self.dir(cgroup).join("cgroup.procs"))
            .unwrap_or_default()
            .lines()
            .filter_map(|line| line.trim().parse().ok())
            .map(Pid::from_raw)
            .collect()
    }
}

/// The value of `name` in a flat-keyed cgroup file (`name value` lines).
fn counter(text: &str, name: &str) -> Option<u64> {
    text.lines().find_map(|line| {
        let (key, value) = line.split_once(' ')?;
        (key == name).then(|| value.trim().parse().ok()).flatten()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_v1_oom_control() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("pod/c1");
        fs::create_dir_all(&dir).unwrap();
        fs::write(
            dir.join("memory.oom_control"),
            "oom_kill_disable 0\nunder_oom 0\noom_kill 2\n",
        )
        .unwrap();
        fs::write(dir.join("cgroup.procs"), "12\n34\n").unwrap();
        let probe = CgroupFs::v1(root.path());
        assert_eq!(probe.oom_kills(Path::new("/pod/c1")), 2);
        assert_eq!(
            probe.procs(Path::new("/pod/c1")),
            [Pid::from_raw(12), Pid::from_raw(34)]
        );
        assert_eq!(probe.oom_kills(Path::new("/pod/missing")), 0);
    }

    #[test]
    fn reads_v2_memory_events() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("pod/c1");
        fs::create_dir_all(&dir).unwrap();
        fs::write(
            dir.join("memory.events"),
            "low 0\nhigh 0\nmax 5\noom 1\noom_kill 1\noom_group_kill 0\n",
        )
        .unwrap();
        assert_eq!(
            CgroupFs::unified(root.path()).oom_kills(Path::new("/pod/c1")),
            1
        );
    }
}
