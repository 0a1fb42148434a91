//! What the host lets a container have. Read once per runtime; the spec is
//! clamped to it so that a container which asks for more than the runtime
//! itself holds still starts (as the design asks: clamp and log, never fail
//! the pod) instead of failing with EPERM inside libcontainer.

use std::fs;
use std::path::Path;

use oci_spec::runtime::{Capabilities, Capability};

/// Facts about this host and the runtime process that bound a container spec.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostLimits {
    /// The runtime's own `oom_score_adj`: going lower needs CAP_SYS_RESOURCE.
    pub min_oom_score_adj: i32,
    /// The runtime's hard `RLIMIT_NOFILE`: raising a hard limit needs CAP_SYS_RESOURCE.
    pub nofile_hard: u64,
    /// The runtime's effective capabilities: a container can hold no more.
    pub capabilities: Capabilities,
    /// The host runs cgroup v2 alone (unified); hybrid hosts count as v1,
    /// as libcgroups manages them through the v1 controllers.
    pub cgroup_unified: bool,
    /// Memory+swap accounting exists, so swap can be limited with memory.
    pub swap_accounting: bool,
    /// The hugetlb controller exists, so hugepage limits can be applied.
    pub hugetlb: bool,
    /// The cgroup v1 hierarchies mounted at `/sys/fs/cgroup/<name>` (e.g.
    /// `memory`, `cpu,cpuacct`, `systemd`); empty on cgroup v2 hosts.
    pub cgroup_v1_hierarchies: Vec<String>,
}

/// The ceiling containerd's CRI containers see for open files (its systemd
/// unit sets `LimitNOFILE=1048576`); lower when the host allows less.
const NOFILE_CEILING: u64 = 1_048_576;

const CGROUP_ROOT: &str = "/sys/fs/cgroup";

impl HostLimits {
    /// Reads the limits of the current process and host. Never fails: what
    /// cannot be read falls back to the most restrictive safe value.
    pub fn current() -> Self {
        let min_oom_score_adj = fs::read_to_string("/proc/self/oom_score_adj")
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(0);
        let nofile_hard = fs::read_to_string("/proc/self/limits")
            .ok()
            .and_then(|s| parse_nofile_hard(&s))
            .unwrap_or(1024);
        let capabilities = fs::read_to_string("/proc/self/status")
            .ok()
            .and_then(|s| parse_effective_caps(&s))
            .unwrap_or_default();
        let root = Path::new(CGROUP_ROOT);
        let cgroup_unified = root.join("cgroup.controllers").exists();
        let (swap_accounting, hugetlb) = if cgroup_unified {
            let controllers =
                fs::read_to_string(root.join("cgroup.controllers")).unwrap_or_default();
            let own = fs::read_to_string("/proc/self/cgroup")
                .ok()
                .and_then(|s| unified_cgroup_of(&s))
                .unwrap_or_default();
            // The root cgroup has no memory.swap.max; look where one exists.
            let swap = [own.as_str(), "init.scope", "system.slice"]
                .iter()
                .filter(|p| !p.is_empty())
                .any(|p| root.join(p).join("memory.swap.max").exists());
            (swap, controllers.split_whitespace().any(|c| c == "hugetlb"))
        } else {
            (
                root.join("memory/memory.memsw.limit_in_bytes").exists(),
                root.join("hugetlb").is_dir(),
            )
        };
        let cgroup_v1_hierarchies = if cgroup_unified {
            Vec::new()
        } else {
            fs::read_to_string("/proc/self/mountinfo")
                .map(|s| cgroup_v1_hierarchies(&s))
                .unwrap_or_default()
        };
        Self {
            min_oom_score_adj,
            nofile_hard,
            capabilities,
            cgroup_unified,
            swap_accounting,
            hugetlb,
            cgroup_v1_hierarchies,
        }
    }

    /// A host that permits everything (all capabilities, no clamping), for
    /// tests and for callers that know the runtime is fully privileged.
    pub fn unrestricted() -> Self {
        Self {
            min_oom_score_adj: -1000,
            nofile_hard: NOFILE_CEILING,
            capabilities: CAPABILITY_BITS.iter().map(|(_, c)| *c).collect(),
            cgroup_unified: false,
            swap_accounting: true,
            hugetlb: true,
            cgroup_v1_hierarchies: Vec::new(),
        }
    }

    /// The `RLIMIT_NOFILE` containers get, soft and hard alike.
    pub(crate) fn container_nofile(&self) -> u64 {
        self.nofile_hard.min(NOFILE_CEILING)
    }
}

/// Capability numbers from `linux/capability.h`, as `/proc/<pid>/status` encodes them.
pub(crate) const CAPABILITY_BITS: [(u32, Capability); 41] = [
    (0, Capability::Chown),
    (1, Capability::DacOverride),
    (2, Capability::DacReadSearch),
    (3, Capability::Fowner),
    (4, Capability::Fsetid),
    (5, Capability::Kill),
    (6, Capability::Setgid),
    (7, Capability::Setuid),
    (8, Capability::Setpcap),
    (9, Capability::LinuxImmutable),
    (10, Capability::NetBindService),
    (11, Capability::NetBroadcast),
    (12, Capability::NetAdmin),
    (13, Capability::NetRaw),
    (14, Capability::IpcLock),
    (15, Capability::IpcOwner),
    (16, Capability::SysModule),
    (17, Capability::SysRawio),
    (18, Capability::SysChroot),
    (19, Capability::SysPtrace),
    (20, Capability::SysPacct),
    (21, Capability::SysAdmin),
    (22, Capability::SysBoot),
    (23, Capability::SysNice),
    (24, Capability::SysResource),
    (25, Capability::SysTime),
    (26, Capability::SysTtyConfig),
    (27, Capability::Mknod),
    (28, Capability::Lease),
    (29, Capability::AuditWrite),
    (30, Capability::AuditControl),
    (31, Capability::Setfcap),
    (32, Capability::MacOverride),
    (33, Capability::MacAdmin),
    (34, Capability::Syslog),
    (35, Capability::WakeAlarm),
    (36, Capability::BlockSuspend),
    (37, Capability::AuditRead),
    (38, Capability::Perfmon),
    (39, Capability::Bpf),
    (40, Capability::CheckpointRestore),
];

/// The `CapEff:` mask of a `/proc/<pid>/status` file as capabilities.
fn parse_effective_caps(status: &str) -> Option<Capabilities> {
    let hex = status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))?
        .trim();
    let mask = u64::from_str_radix(hex, 16).ok()?;
    Some(
        CAPABILITY_BITS
            .iter()
            .filter(|(bit, _)| mask & (1u64 << bit) != 0)
            .map(|(_, cap)| *cap)
            .collect(),
    )
}

/// The hard limit of `Max open files` in a `/proc/<pid>/limits` file.
fn parse_nofile_hard(limits: &str) -> Option<u64> {
    let rest = limits
        .lines()
        .find_map(|l| l.strip_prefix("Max open files"))?;
    let hard = rest.split_whitespace().nth(1)?;
    if hard == "unlimited" {
        return Some(u64::MAX);
    }
    hard.parse().ok()
}

/// Names of the cgroup v1 hierarchies mounted directly under `/sys/fs/cgroup`
/// according to a `/proc/<pid>/mountinfo` file.
fn cgroup_v1_hierarchies(mountinfo: &str) -> Vec<String> {
    mountinfo
        .lines()
        .filter_map(|line| {
            let (mount, fs) = line.split_once(" - ")?;
            if fs.split(' ').next() != Some("cgroup") {
                return None;
            }
            let point = mount.split(' ').nth(4)?;
            let name = point.strip_prefix("/sys/fs/cgroup/")?;
            (!name.is_empty() && !name.contains('/')).then(|| name.to_string())
        })
        .collect()
}

/// The cgroup v2 path (without the leading `/`) in a `/proc/<pid>/cgroup` file.
fn unified_cgroup_of(cgroup: &str) -> Option<String> {
    cgroup
        .lines()
        .find_map(|l| l.strip_prefix("0::"))
        .map(|p| p.trim().trim_start_matches('/').to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn effective_caps_skip_missing_bits() {
        let status = "Name:\tx\nCapInh:\t0000000000000000\nCapEff:\t000001fffeffffff\n";
        let caps = parse_effective_caps(status).unwrap();
        assert_eq!(caps.len(), 40);
        assert!(!caps.contains(&Capability::SysResource));
        assert!(caps.contains(&Capability::SysAdmin));
        assert!(caps.contains(&Capability::CheckpointRestore));
    }

    #[test]
    fn nofile_hard_limit() {
        let limits = "Limit                     Soft Limit           Hard Limit           Units\n\
                      Max open files            1024                 20000                files\n";
        assert_eq!(parse_nofile_hard(limits), Some(20000));
        let unlimited =
            "Max open files            unlimited            unlimited            files\n";
        assert_eq!(parse_nofile_hard(unlimited), Some(u64::MAX));
        assert_eq!(parse_nofile_hard("nothing"), None);
    }

    #[test]
    fn container_nofile_is_capped_by_host_and_ceiling() {
        let mut limits = HostLimits::unrestricted();
        limits.nofile_hard = 20000;
        assert_eq!(limits.container_nofile(), 20000);
        limits.nofile_hard = u64::MAX;
        assert_eq!(limits.container_nofile(), NOFILE_CEILING);
    }

    #[test]
    fn v1_hierarchies_from_mountinfo() {
        let info = "30 25 0:26 / /sys/fs/cgroup rw - tmpfs tmpfs rw\n\
                    31 30 0:27 / /sys/fs/cgroup/cpu,cpuacct rw - cgroup cgroup rw,cpu,cpuacct\n\
                    32 30 0:28 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory\n\
                    33 30 0:29 / /sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw\n\
                    34 27 0:28 /x /mnt/elsewhere rw - cgroup cgroup rw,memory\n";
        assert_eq!(cgroup_v1_hierarchies(info), vec!["cpu,cpuacct", "memory"]);
    }

    #[test]
    fn unified_cgroup_path() {
        let cgroup = "1:cpu:/\n0::/system.slice/skiff.service\n";
        assert_eq!(
            unified_cgroup_of(cgroup).as_deref(),
            Some("system.slice/skiff.service")
        );
    }

    #[test]
    fn current_reads_this_process() {
        let limits = HostLimits::current();
        assert!(limits.nofile_hard >= 1);
        assert!((-1000..=1000).contains(&limits.min_oom_score_adj));
    }
}
