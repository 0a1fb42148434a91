//! Reading cgroup statistics (cgroupfs driver, cgroup v1 or v2, through
//! youki's libcgroups) and turning them into CRI CPU, memory and process
//! usage. CPU rates (`usage_nano_cores`) need two samples, so the last one
//! per cgroup is remembered.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use k8s_cri::v1::{CpuUsage, MemoryUsage, ProcessUsage, UInt64Value};
use libcgroups::common::{AnyCgroupManager, CgroupConfig, CgroupManager};

/// What failed while reading a cgroup.
#[derive(Debug, thiserror::Error)]
#[error("cgroup {path}: {message}")]
pub struct CgroupError {
    /// The cgroup (relative to the cgroup root).
    pub path: String,
    /// What went wrong.
    pub message: String,
}

/// One reading of a cgroup.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CgroupUsage {
    /// Nanoseconds since the epoch when read.
    pub timestamp: i64,
    /// Cumulative CPU time, nanoseconds.
    pub cpu_total_ns: u64,
    /// Memory in use, bytes.
    pub memory_usage: u64,
    /// Memory in use minus inactive file cache: what kubelet evicts on.
    pub working_set: u64,
    /// Anonymous memory (RSS), bytes.
    pub rss: u64,
    /// The memory limit, if any.
    pub memory_limit: Option<u64>,
    /// Page faults.
    pub page_faults: u64,
    /// Major page faults.
    pub major_page_faults: u64,
    /// Processes (tasks) in the cgroup.
    pub processes: u64,
}

/// Reads cgroups and keeps the previous CPU sample of each.
#[derive(Debug, Default)]
pub struct CgroupReader {
    last_cpu: Mutex<HashMap<String, (i64, u64)>>,
}

/// Limits above this are "no limit" (v1 reports a huge page-aligned number).
const UNLIMITED: u64 = 1 << 62;

impl CgroupReader {
    /// A reader with no samples yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Reads the cgroup at `path` (relative to the cgroup root, e.g.
    /// `/kubepods/pod1/abc`).
    pub fn read(&self, path: &str) -> Result<CgroupUsage, CgroupError> {
        let err = |message: String| CgroupError {
            path: path.to_string(),
            message,
        };
        let manager = manager(path).map_err(err)?;
        let stats = manager.stats().map_err(|e| err(e.to_string()))?;
        let stat = |keys: &[&str]| {
            keys.iter()
                .find_map(|k| stats.memory.stats.get(*k).copied())
        };
        let inactive_file = stat(&["total_inactive_file", "inactive_file"]).unwrap_or(0);
        let usage = stats.memory.memory.usage;
        Ok(CgroupUsage {
            timestamp: now_ns(),
            cpu_total_ns: stats.cpu.usage.usage_total,
            memory_usage: usage,
            working_set: usage.saturating_sub(inactive_file),
            rss: stat(&["total_rss", "anon"]).unwrap_or(0),
            memory_limit: Some(stats.memory.memory.limit).filter(|l| *l > 0 && *l < UNLIMITED),
            page_faults: stat(&["total_pgfault", "pgfault"]).unwrap_or(0),
            major_page_faults: stat(&["total_pgmajfault", "pgmajfault"]).unwrap_or(0),
            processes: stats.pids.current,
        })
    }

    /// CRI CPU usage, with the rate since the previous reading of `path`.
    pub fn cpu_usage(&self, path: &str, usage: &CgroupUsage) -> CpuUsage {
        let mut last = self.last_cpu.lock().unwrap_or_else(|p| p.into_inner());
        let rate = last.get(path).and_then(|(t, total)| {
            let elapsed = usage.timestamp.checked_sub(*t).filter(|e| *e > 0)?;
            let used = usage.cpu_total_ns.checked_sub(*total)?;
            Some((used as u128 * 1_000_000_000 / elapsed as u128) as u64)
        });
        last.insert(path.to_string(), (usage.timestamp, usage.cpu_total_ns));
        CpuUsage {
            timestamp: usage.timestamp,
            usage_core_nano_seconds: Some(UInt64Value {
                value: usage.cpu_total_ns,
            }),
            usage_nano_cores: rate.map(|value| UInt64Value { value }),
        }
    }

    /// Forgets a cgroup's CPU sample (its container is gone).
    pub fn forget(&self, path: &str) {
        self.last_cpu
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(path);
    }
}

/// CRI memory usage from a reading.
pub fn memory_usage(usage: &CgroupUsage) -> MemoryUsage {
    let value = |value| Some(UInt64Value { value });
    MemoryUsage {
        timestamp: usage.timestamp,
        working_set_bytes: value(usage.working_set),
        available_bytes: usage.memory_limit.map(|l| UInt64Value {
            value: l.saturating_sub(usage.working_set),
        }),
        usage_bytes: value(usage.memory_usage),
        rss_bytes: value(usage.rss),
        page_faults: value(usage.page_faults),
        major_page_faults: value(usage.major_page_faults),
    }
}

/// CRI process usage from a reading.
pub fn process_usage(usage: &CgroupUsage) -> ProcessUsage {
    ProcessUsage {
        timestamp: usage.timestamp,
        process_count: Some(UInt64Value {
            value: usage.processes,
        }),
    }
}

fn manager(path: &str) -> Result<AnyCgroupManager, String> {
    libcgroups::common::create_cgroup_manager(CgroupConfig {
        cgroup_path: PathBuf::from(path),
        systemd_cgroup: false,
        container_name: String::new(),
    })
    .map_err(|e| e.to_string())
}

/// Kills (SIGKILL) every process left in the cgroup at `path` and below:
/// what a dead shim's containers leave behind. Missing is fine.
pub fn kill_all(path: &str) -> Result<usize, CgroupError> {
    let err = |message: String| CgroupError {
        path: path.to_string(),
        message,
    };
    let pids = match manager(path).map_err(err)?.get_all_pids() {
        Ok(pids) => pids,
        Err(_) => return Ok(0),
    };
    for pid in &pids {
        let _ = nix::sys::signal::kill(*pid, nix::sys::signal::Signal::SIGKILL);
    }
    Ok(pids.len())
}

/// Removes the (empty) cgroup at `path`, e.g. a pod's parent after its last
/// container is gone. Missing is fine.
pub fn remove(path: &str) -> Result<(), CgroupError> {
    let err = |message: String| CgroupError {
        path: path.to_string(),
        message,
    };
    manager(path)
        .map_err(err)?
        .remove()
        .map_err(|e| err(e.to_string()))
}

/// Whether the cgroup hierarchy is v2 only (else v1 or hybrid: v1 controllers).
pub fn is_unified() -> bool {
    matches!(
        libcgroups::common::get_cgroup_setup(),
        Ok(libcgroups::common::CgroupSetup::Unified)
    )
}

/// The cgroupfs path a CRI cgroup parent names (it may be a systemd-style
/// slice name in other setups; with cgroupfs it is a path).
pub fn parent_path(cgroup_parent: &str) -> String {
    if cgroup_parent.is_empty() {
        return "/".into();
    }
    let path = Path::new(cgroup_parent);
    if path.is_absolute() {
        cgroup_parent.to_string()
    } else {
        format!("/{cgroup_parent}")
    }
}

fn now_ns() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as i64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_rate_needs_two_samples() {
        let reader = CgroupReader::new();
        let first = CgroupUsage {
            timestamp: 1_000_000_000,
            cpu_total_ns: 0,
            ..Default::default()
        };
        assert!(reader.cpu_usage("/x", &first).usage_nano_cores.is_none());
        // Half a core over one second.
        let second = CgroupUsage {
            timestamp: 2_000_000_000,
            cpu_total_ns: 500_000_000,
            ..Default::default()
        };
        let cpu = reader.cpu_usage("/x", &second);
        assert_eq!(cpu.usage_nano_cores.unwrap().value, 500_000_000);
        assert_eq!(cpu.usage_core_nano_seconds.unwrap().value, 500_000_000);
    }

    #[test]
    fn working_set_and_available_memory_follow_kubelet() {
        let usage = CgroupUsage {
            memory_usage: 100,
            working_set: 60,
            memory_limit: Some(200),
            ..Default::default()
        };
        let memory = memory_usage(&usage);
        assert_eq!(memory.working_set_bytes.unwrap().value, 60);
        assert_eq!(memory.available_bytes.unwrap().value, 140);
        assert_eq!(parent_path("kubepods/pod1"), "/kubepods/pod1");
        assert_eq!(parent_path(""), "/");
    }

    #[test]
    fn a_real_cgroup_reports_its_processes() {
        let path = format!("/skiff-runtime-test-{}", std::process::id());
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        let manager = manager(&path).unwrap();
        manager
            .add_task(nix::unistd::Pid::from_raw(child.id() as i32))
            .unwrap();
        let reader = CgroupReader::new();
        let usage = reader.read(&path).unwrap();
        // Memory charged before the move stays with the old cgroup on v1,
        // so only the process count is certain here.
        assert_eq!(usage.processes, 1, "{usage:?}");
        child.kill().unwrap();
        child.wait().unwrap();
        remove(&path).unwrap();
    }
}
