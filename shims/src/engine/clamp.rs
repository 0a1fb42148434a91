//! Degrading gracefully without CAP_SYS_RESOURCE (nested containers, some
//! edge devices): a negative `oom_score_adj` below what this process may set,
//! or a hard rlimit above its own, fails with EPERM inside libcontainer and
//! would fail the container. The runtime's spec generator clamps already;
//! this is the last line, clamping and saying so in the log.

use std::fs;

use oci_spec::runtime::{PosixRlimitBuilder, PosixRlimitType, Process};

/// What this process may give its children.
pub trait ResourceLimits {
    /// The closest `oom_score_adj` to `wanted` that a child can get.
    fn allowed_oom_score_adj(&self, wanted: i32) -> i32;
    /// The highest hard limit a child can get, `None` when unlimited.
    fn max_hard_limit(&self, kind: PosixRlimitType) -> Option<u64>;
}

/// Clamps `process` to `limits`, returning a description of each change.
pub fn clamp_process(process: &mut Process, limits: &dyn ResourceLimits) -> Vec<String> {
    let mut changes = Vec::new();
    if let Some(wanted) = process.oom_score_adj() {
        let allowed = limits.allowed_oom_score_adj(wanted);
        if allowed != wanted {
            changes.push(format!("oom_score_adj {wanted} -> {allowed}"));
            process.set_oom_score_adj(Some(allowed));
        }
    }
    if let Some(rlimits) = process.rlimits() {
        let mut rlimits = rlimits.clone();
        for rlimit in &mut rlimits {
            let Some(max) = limits.max_hard_limit(rlimit.typ()) else {
                continue;
            };
            if rlimit.hard() > max {
                changes.push(format!(
                    "{:?} hard {} -> {max}",
                    rlimit.typ(),
                    rlimit.hard()
                ));
                let clamped = PosixRlimitBuilder::default()
                    .typ(rlimit.typ())
                    .hard(max)
                    .soft(rlimit.soft().min(max))
                    .build();
                if let Ok(clamped) = clamped {
                    *rlimit = clamped;
                }
            }
        }
        process.set_rlimits(Some(rlimits));
    }
    changes
}

/// This process's real limits.
#[derive(Debug)]
pub struct HostLimits {
    sys_resource: bool,
}

impl HostLimits {
    /// Reads this process's capabilities.
    pub fn current() -> Self {
        // CAP_SYS_RESOURCE is bit 24 of the effective set.
        let sys_resource = fs::read_to_string("/proc/self/status")
            .ok()
            .and_then(|status| {
                status
                    .lines()
                    .find_map(|line| line.strip_prefix("CapEff:"))
                    .and_then(|hex| u64::from_str_radix(hex.trim(), 16).ok())
            })
            .is_some_and(|caps| caps & (1 << 24) != 0);
        HostLimits { sys_resource }
    }
}

/// This process's `oom_score_adj`.
pub fn own_oom_score_adj() -> Option<i32> {
    fs::read_to_string("/proc/self/oom_score_adj")
        .ok()
        .and_then(|text| text.trim().parse().ok())
}

/// Sets this process's `oom_score_adj`.
pub fn set_own_oom_score_adj(value: i32) -> std::io::Result<()> {
    fs::write("/proc/self/oom_score_adj", value.to_string())
}

impl ResourceLimits for HostLimits {
    fn allowed_oom_score_adj(&self, wanted: i32) -> i32 {
        if self.sys_resource {
            return wanted;
        }
        let Some(own) = own_oom_score_adj() else {
            return wanted;
        };
        if wanted >= own {
            return wanted;
        }
        // Lowering is allowed down to a floor the kernel does not show:
        // try it, then put ours back.
        let allowed = if set_own_oom_score_adj(wanted).is_ok() {
            wanted
        } else {
            own
        };
        let _ = set_own_oom_score_adj(own);
        allowed
    }

    fn max_hard_limit(&self, kind: PosixRlimitType) -> Option<u64> {
        if self.sys_resource {
            return None;
        }
        let resource = rlimit_resource(kind)?;
        let mut current = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: getrlimit writes into the struct we pass.
        if unsafe { libc::getrlimit(resource, &mut current) } != 0 {
            return None;
        }
        (current.rlim_max != libc::RLIM_INFINITY).then_some(current.rlim_max)
    }
}

fn rlimit_resource(kind: PosixRlimitType) -> Option<libc::__rlimit_resource_t> {
    Some(match kind {
        PosixRlimitType::RlimitCpu => libc::RLIMIT_CPU,
        PosixRlimitType::RlimitFsize => libc::RLIMIT_FSIZE,
        PosixRlimitType::RlimitData => libc::RLIMIT_DATA,
        PosixRlimitType::RlimitStack => libc::RLIMIT_STACK,
        PosixRlimitType::RlimitCore => libc::RLIMIT_CORE,
        PosixRlimitType::RlimitRss => libc::RLIMIT_RSS,
        PosixRlimitType::RlimitNproc => libc::RLIMIT_NPROC,
        PosixRlimitType::RlimitNofile => libc::RLIMIT_NOFILE,
        PosixRlimitType::RlimitMemlock => libc::RLIMIT_MEMLOCK,
        PosixRlimitType::RlimitAs => libc::RLIMIT_AS,
        PosixRlimitType::RlimitLocks => libc::RLIMIT_LOCKS,
        PosixRlimitType::RlimitSigpending => libc::RLIMIT_SIGPENDING,
        PosixRlimitType::RlimitMsgqueue => libc::RLIMIT_MSGQUEUE,
        PosixRlimitType::RlimitNice => libc::RLIMIT_NICE,
        PosixRlimitType::RlimitRtprio => libc::RLIMIT_RTPRIO,
        PosixRlimitType::RlimitRttime => libc::RLIMIT_RTTIME,
        #[allow(unreachable_patterns)]
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Fixed {
        oom_floor: i32,
        nofile_hard: u64,
    }

    impl ResourceLimits for Fixed {
        fn allowed_oom_score_adj(&self, wanted: i32) -> i32 {
            wanted.max(self.oom_floor)
        }
        fn max_hard_limit(&self, kind: PosixRlimitType) -> Option<u64> {
            (kind == PosixRlimitType::RlimitNofile).then_some(self.nofile_hard)
        }
    }

    #[test]
    fn clamps_what_cannot_be_set() {
        let mut process = Process::default();
        process.set_oom_score_adj(Some(-997));
        process.set_rlimits(Some(vec![
            PosixRlimitBuilder::default()
                .typ(PosixRlimitType::RlimitNofile)
                .hard(1_048_576u64)
                .soft(1_048_576u64)
                .build()
                .unwrap(),
            PosixRlimitBuilder::default()
                .typ(PosixRlimitType::RlimitCore)
                .hard(u64::MAX)
                .soft(0u64)
                .build()
                .unwrap(),
        ]));
        let changes = clamp_process(
            &mut process,
            &Fixed {
                oom_floor: 0,
                nofile_hard: 20_000,
            },
        );
        assert_eq!(changes.len(), 2, "{changes:?}");
        assert_eq!(process.oom_score_adj(), Some(0));
        let nofile = process.rlimits().as_ref().unwrap()[0];
        assert_eq!((nofile.hard(), nofile.soft()), (20_000, 20_000));
        let core = process.rlimits().as_ref().unwrap()[1];
        assert_eq!(core.hard(), u64::MAX);
    }

    #[test]
    fn leaves_settable_values_alone() {
        let mut process = Process::default();
        process.set_oom_score_adj(Some(1000));
        let changes = clamp_process(
            &mut process,
            &Fixed {
                oom_floor: 0,
                nofile_hard: 1 << 20,
            },
        );
        assert!(changes.is_empty());
        assert_eq!(process.oom_score_adj(), Some(1000));
    }
}
