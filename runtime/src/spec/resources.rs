//! cgroup resources and the cgroup path, as containerd's CRI plugin sets
//! them: every non-zero CRI value is passed on, swap is limited to the
//! memory limit when swap accounting exists (so a container never swaps
//! unless asked), hugepage limits are skipped with a warning when the host
//! has no hugetlb controller (containerd's default
//! `tolerate_missing_hugetlb_controller`), and `unified` (cgroup v2 keys)
//! is passed through as is.

use std::collections::HashMap;
use std::path::PathBuf;

use k8s_cri::v1::LinuxContainerResources;
use oci_spec::runtime::{
    LinuxCpu, LinuxDeviceCgroup, LinuxHugepageLimit, LinuxMemory, LinuxResources,
};

use super::{HostLimits, SpecError};

const FIELD: &str = "linux.resources";

/// The cgroup path for the cgroupfs driver: `<parent>/<container id>`,
/// absolute (libcgroups takes it relative to the cgroup root, on v1 and v2
/// alike). Without a parent, containers go under `/skiff`.
pub fn cgroups_path(cgroup_parent: &str, container_id: &str) -> PathBuf {
    let parent = cgroup_parent.trim_matches('/');
    if parent.is_empty() {
        PathBuf::from(format!("/skiff/{container_id}"))
    } else {
        PathBuf::from(format!("/{parent}/{container_id}"))
    }
}

/// The container's cgroup resources, with the given device rules.
pub(crate) fn container_resources(
    resources: Option<&LinuxContainerResources>,
    devices: Vec<LinuxDeviceCgroup>,
    limits: &HostLimits,
    container_id: &str,
) -> Result<LinuxResources, SpecError> {
    let mut out = LinuxResources::default();
    out.set_devices(Some(devices));
    let Some(r) = resources else {
        return Ok(out);
    };

    let mut cpu = LinuxCpu::default();
    if r.cpu_period != 0 {
        cpu.set_period(Some(non_negative(r.cpu_period, "cpu_period")?));
    }
    if r.cpu_quota != 0 {
        if r.cpu_quota < -1 {
            return Err(SpecError::invalid(
                format!("{FIELD}.cpu_quota"),
                format!("{} is neither -1 (unlimited) nor positive", r.cpu_quota),
            ));
        }
        cpu.set_quota(Some(r.cpu_quota));
    }
    if r.cpu_shares != 0 {
        cpu.set_shares(Some(non_negative(r.cpu_shares, "cpu_shares")?));
    }
    if !r.cpuset_cpus.is_empty() {
        cpu.set_cpus(Some(r.cpuset_cpus.clone()));
    }
    if !r.cpuset_mems.is_empty() {
        cpu.set_mems(Some(r.cpuset_mems.clone()));
    }
    if cpu != LinuxCpu::default() {
        out.set_cpu(Some(cpu));
    }

    let mut memory = LinuxMemory::default();
    if r.memory_limit_in_bytes != 0 {
        memory.set_limit(Some(r.memory_limit_in_bytes));
        if r.memory_swap_limit_in_bytes == 0 && limits.swap_accounting {
            memory.set_swap(Some(r.memory_limit_in_bytes));
        }
    }
    if r.memory_swap_limit_in_bytes != 0 {
        if limits.swap_accounting {
            memory.set_swap(Some(r.memory_swap_limit_in_bytes));
        } else {
            tracing::warn!(
                container_id,
                swap = r.memory_swap_limit_in_bytes,
                "no swap accounting on this host; swap limit ignored"
            );
        }
    }
    if memory != LinuxMemory::default() {
        out.set_memory(Some(memory));
    }

    if !r.hugepage_limits.is_empty() {
        if limits.hugetlb {
            let mut pages = Vec::with_capacity(r.hugepage_limits.len());
            for (i, h) in r.hugepage_limits.iter().enumerate() {
                let limit = i64::try_from(h.limit).map_err(|_| {
                    SpecError::invalid(
                        format!("{FIELD}.hugepage_limits[{i}].limit"),
                        format!("{} is too large", h.limit),
                    )
                })?;
                let mut page = LinuxHugepageLimit::default();
                page.set_page_size(h.page_size.clone());
                page.set_limit(limit);
                pages.push(page);
            }
            out.set_hugepage_limits(Some(pages));
        } else {
            tracing::warn!(
                container_id,
                "hugetlb cgroup controller is absent; hugepage limits skipped"
            );
        }
    }

    if !r.unified.is_empty() {
        if !limits.cgroup_unified {
            tracing::debug!(
                container_id,
                "unified (cgroup v2) resources on a v1 host are not applied"
            );
        }
        out.set_unified(Some(
            r.unified
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect::<HashMap<_, _>>(),
        ));
    }
    Ok(out)
}

fn non_negative(value: i64, name: &str) -> Result<u64, SpecError> {
    u64::try_from(value)
        .map_err(|_| SpecError::invalid(format!("{FIELD}.{name}"), format!("{value} is negative")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_cri::v1::HugepageLimit;

    fn resources() -> LinuxContainerResources {
        LinuxContainerResources {
            cpu_period: 100_000,
            cpu_quota: 50_000,
            cpu_shares: 512,
            memory_limit_in_bytes: 64 << 20,
            cpuset_cpus: "0-1".into(),
            cpuset_mems: "0".into(),
            hugepage_limits: vec![HugepageLimit {
                page_size: "2MB".into(),
                limit: 4 << 20,
            }],
            unified: [("memory.high".to_string(), "50000000".to_string())].into(),
            ..Default::default()
        }
    }

    #[test]
    fn values_are_passed_on() {
        let limits = HostLimits::unrestricted();
        let out = container_resources(Some(&resources()), vec![], &limits, "c").unwrap();
        let cpu = out.cpu().clone().unwrap();
        assert_eq!(
            (cpu.period(), cpu.quota(), cpu.shares()),
            (Some(100_000), Some(50_000), Some(512))
        );
        assert_eq!(cpu.cpus().as_deref(), Some("0-1"));
        assert_eq!(cpu.mems().as_deref(), Some("0"));
        let mem = out.memory().unwrap();
        assert_eq!(mem.limit(), Some(64 << 20));
        // Swap equals the memory limit: no swapping unless asked.
        assert_eq!(mem.swap(), Some(64 << 20));
        let pages = out.hugepage_limits().clone().unwrap();
        assert_eq!(
            (pages[0].page_size().as_str(), pages[0].limit()),
            ("2MB", 4 << 20)
        );
        assert_eq!(out.unified().as_ref().unwrap()["memory.high"], "50000000");
        assert_eq!(out.devices().as_ref().map(Vec::len), Some(0));
    }

    #[test]
    fn host_limits_shape_swap_and_hugepages() {
        let mut limits = HostLimits::unrestricted();
        limits.swap_accounting = false;
        limits.hugetlb = false;
        let out = container_resources(Some(&resources()), vec![], &limits, "c").unwrap();
        assert_eq!(out.memory().unwrap().swap(), None);
        assert!(out.hugepage_limits().is_none());

        limits.swap_accounting = true;
        let r = LinuxContainerResources {
            memory_swap_limit_in_bytes: 128 << 20,
            ..resources()
        };
        let out = container_resources(Some(&r), vec![], &limits, "c").unwrap();
        assert_eq!(out.memory().unwrap().swap(), Some(128 << 20));
    }

    #[test]
    fn zero_values_are_unset() {
        let out = container_resources(
            Some(&LinuxContainerResources::default()),
            vec![],
            &HostLimits::unrestricted(),
            "c",
        )
        .unwrap();
        assert!(out.cpu().is_none() && out.memory().is_none() && out.unified().is_none());
        let out = container_resources(None, vec![], &HostLimits::unrestricted(), "c").unwrap();
        assert!(out.cpu().is_none());
    }

    #[test]
    fn invalid_values_name_the_field() {
        let cases = [
            (
                LinuxContainerResources {
                    cpu_shares: -2,
                    ..Default::default()
                },
                "linux.resources.cpu_shares",
            ),
            (
                LinuxContainerResources {
                    cpu_period: -1,
                    ..Default::default()
                },
                "linux.resources.cpu_period",
            ),
            (
                LinuxContainerResources {
                    cpu_quota: -5,
                    ..Default::default()
                },
                "linux.resources.cpu_quota",
            ),
            (
                LinuxContainerResources {
                    hugepage_limits: vec![HugepageLimit {
                        page_size: "1GB".into(),
                        limit: u64::MAX,
                    }],
                    ..Default::default()
                },
                "linux.resources.hugepage_limits[0].limit",
            ),
        ];
        for (r, field) in cases {
            let err = container_resources(Some(&r), vec![], &HostLimits::unrestricted(), "c")
                .unwrap_err();
            assert_eq!(err.field(), Some(field));
        }
    }

    #[test]
    fn cgroup_paths() {
        assert_eq!(
            cgroups_path("/kubepods/burstable/pod1", "abc"),
            PathBuf::from("/kubepods/burstable/pod1/abc")
        );
        assert_eq!(
            cgroups_path("kubepods/", "abc"),
            PathBuf::from("/kubepods/abc")
        );
        assert_eq!(cgroups_path("", "abc"), PathBuf::from("/skiff/abc"));
    }
}
