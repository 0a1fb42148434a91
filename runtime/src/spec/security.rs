//! Capabilities, masked and read-only paths, sysctls and the security
//! options this host cannot honour (AppArmor, SELinux: accepted, logged at
//! debug level and ignored, since the host runs neither).

use std::collections::HashMap;

use k8s_cri::v1::{LinuxContainerSecurityContext, PodSandboxConfig};
use oci_spec::runtime::{Capabilities, Capability, LinuxCapabilities};

use super::namespaces::{IpcSharing, Namespaces};
use super::{HostLimits, SpecError};

const SC: &str = "linux.security_context";

/// Docker's default set, which containerd's CRI plugin gives every
/// unprivileged container (the reduction proposed for containerd 2.0 was
/// not merged).
pub(crate) const DEFAULT_CAPABILITIES: [Capability; 14] = [
    Capability::Chown,
    Capability::DacOverride,
    Capability::Fsetid,
    Capability::Fowner,
    Capability::Mknod,
    Capability::NetRaw,
    Capability::Setgid,
    Capability::Setuid,
    Capability::Setfcap,
    Capability::Setpcap,
    Capability::NetBindService,
    Capability::SysChroot,
    Capability::Kill,
    Capability::AuditWrite,
];

/// Paths hidden from unprivileged containers unless the request lists its own.
pub(crate) const DEFAULT_MASKED_PATHS: [&str; 11] = [
    "/proc/acpi",
    "/proc/asound",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
    "/sys/devices/virtual/powercap",
];

/// Paths read-only in unprivileged containers unless the request lists its own.
pub(crate) const DEFAULT_READONLY_PATHS: [&str; 5] = [
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
];

/// IPC-namespaced sysctls the kernel (and libcontainer) accept in a
/// container; `fs.mqueue.*` is matched by prefix.
const IPC_SYSCTLS: [&str; 8] = [
    "kernel.msgmax",
    "kernel.msgmnb",
    "kernel.msgmni",
    "kernel.sem",
    "kernel.shmall",
    "kernel.shmmax",
    "kernel.shmmni",
    "kernel.shm_rmid_forced",
];

/// The container's capability sets. Privileged containers get every
/// capability the runtime holds; others get the default set with `ALL` and
/// individual adds/drops applied (`CAP_` prefixes and case are ignored).
/// Capabilities the runtime itself lacks are left out with a warning: the
/// container would otherwise fail to start.
pub(crate) fn capabilities(
    sc: Option<&LinuxContainerSecurityContext>,
    limits: &HostLimits,
    container_id: &str,
) -> Result<LinuxCapabilities, SpecError> {
    let privileged = sc.is_some_and(|s| s.privileged);
    let mut caps: Capabilities = DEFAULT_CAPABILITIES.into_iter().collect();
    if privileged {
        caps = limits.capabilities.clone();
    } else if let Some(c) = sc.and_then(|s| s.capabilities.as_ref()) {
        let is_all = |s: &String| s.eq_ignore_ascii_case("ALL");
        if c.add_capabilities.iter().any(is_all) {
            caps = limits.capabilities.clone();
        }
        if c.drop_capabilities.iter().any(is_all) {
            caps.clear();
        }
        for (i, name) in c.add_capabilities.iter().enumerate() {
            if !is_all(name) {
                caps.insert(parse_capability(
                    name,
                    &format!("{SC}.capabilities.add_capabilities[{i}]"),
                )?);
            }
        }
        for (i, name) in c.drop_capabilities.iter().enumerate() {
            if !is_all(name) {
                caps.remove(&parse_capability(
                    name,
                    &format!("{SC}.capabilities.drop_capabilities[{i}]"),
                )?);
            }
        }
        if !c.add_ambient_capabilities.is_empty() {
            // containerd clears ambient capabilities: their meaning for
            // non-root users is not settled in Kubernetes.
            tracing::debug!(
                container_id,
                "add_ambient_capabilities ignored, as containerd does"
            );
        }
    }
    let missing: Vec<String> = caps
        .iter()
        .filter(|c| !limits.capabilities.contains(c))
        .map(|c| format!("CAP_{c}"))
        .collect();
    if !missing.is_empty() {
        tracing::warn!(
            container_id,
            ?missing,
            "the runtime lacks these capabilities; not granted"
        );
        caps.retain(|c| limits.capabilities.contains(c));
    }
    let mut out = LinuxCapabilities::default();
    out.set_bounding(Some(caps.clone()));
    out.set_effective(Some(caps.clone()));
    out.set_permitted(Some(caps));
    out.set_inheritable(None);
    out.set_ambient(None);
    Ok(out)
}

fn parse_capability(name: &str, field: &str) -> Result<Capability, SpecError> {
    let upper = name.trim().to_ascii_uppercase();
    let bare = upper.strip_prefix("CAP_").unwrap_or(&upper);
    bare.parse::<Capability>()
        .map_err(|_| SpecError::invalid(field, format!("unknown capability {name:?}")))
}

/// Masked and read-only paths: none when privileged, else the request's
/// lists, else the defaults.
pub(crate) fn masked_and_readonly_paths(
    sc: Option<&LinuxContainerSecurityContext>,
) -> (Vec<String>, Vec<String>) {
    match sc {
        Some(s) if s.privileged => (Vec::new(), Vec::new()),
        _ => {
            let pick = |requested: Option<&Vec<String>>, default: &[&str]| match requested {
                Some(list) if !list.is_empty() => list.clone(),
                _ => default.iter().map(|s| s.to_string()).collect(),
            };
            (
                pick(sc.map(|s| &s.masked_paths), &DEFAULT_MASKED_PATHS),
                pick(sc.map(|s| &s.readonly_paths), &DEFAULT_READONLY_PATHS),
            )
        }
    }
}

/// Extra read-only paths for the cgroup v1 tree: libcontainer mounts the
/// v1 hierarchies read-write whatever the cgroup mount's options say, which
/// would let a container raise its own limits or open devices
/// (`devices.allow`). Remounting `/sys/fs/cgroup` and each hierarchy
/// read-only restores what `ro` on the mount means (runc's behaviour).
pub(crate) fn cgroup_v1_readonly_paths(limits: &HostLimits) -> Vec<String> {
    if limits.cgroup_unified || limits.cgroup_v1_hierarchies.is_empty() {
        return Vec::new();
    }
    std::iter::once("/sys/fs/cgroup".to_string())
        .chain(
            limits
                .cgroup_v1_hierarchies
                .iter()
                .map(|h| format!("/sys/fs/cgroup/{h}")),
        )
        .collect()
}

/// The pod's sysctls, which every container re-applies in the pod's
/// namespaces. Only namespaced ones are accepted, and only when the
/// container has the namespace: IPC ones need a non-host IPC namespace,
/// `net.*` a non-host network namespace.
pub(crate) fn sysctls(
    sandbox: &PodSandboxConfig,
    ns: &Namespaces,
) -> Result<Option<HashMap<String, String>>, SpecError> {
    let Some(requested) = sandbox.linux.as_ref().map(|l| &l.sysctls) else {
        return Ok(None);
    };
    if requested.is_empty() {
        return Ok(None);
    }
    let mut out = HashMap::with_capacity(requested.len());
    for (key, value) in requested {
        let name = key.replace('/', ".");
        let field = format!("sandbox_config.linux.sysctls[{key:?}]");
        if IPC_SYSCTLS.contains(&name.as_str()) || name.starts_with("fs.mqueue.") {
            if ns.ipc == IpcSharing::Host {
                return Err(SpecError::invalid(
                    field,
                    "IPC sysctls cannot be set with host IPC",
                ));
            }
        } else if name.starts_with("net.") {
            if !ns.private_network {
                return Err(SpecError::invalid(
                    field,
                    "net.* sysctls cannot be set with host network",
                ));
            }
        } else {
            return Err(SpecError::invalid(
                field,
                "not a namespaced sysctl (allowed: kernel.shm*, kernel.msg*, kernel.sem, fs.mqueue.*, net.*)",
            ));
        }
        out.insert(key.clone(), value.clone());
    }
    Ok(Some(out))
}

/// Logs the options this host cannot honour.
pub(crate) fn log_ignored_options(sc: Option<&LinuxContainerSecurityContext>, container_id: &str) {
    let Some(sc) = sc else { return };
    #[allow(deprecated)]
    let apparmor_profile = &sc.apparmor_profile;
    if sc.apparmor.is_some() || !apparmor_profile.is_empty() {
        tracing::debug!(
            container_id,
            "AppArmor profile ignored: AppArmor is not in use on this host"
        );
    }
    if sc.selinux_options.is_some() {
        tracing::debug!(
            container_id,
            "SELinux options ignored: SELinux is not in use on this host"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_cri::v1::{Capability as CriCaps, LinuxPodSandboxConfig};
    use oci_spec::runtime::LinuxNamespace;

    fn caps_sc(add: &[&str], drop: &[&str]) -> LinuxContainerSecurityContext {
        LinuxContainerSecurityContext {
            capabilities: Some(CriCaps {
                add_capabilities: add.iter().map(|s| s.to_string()).collect(),
                drop_capabilities: drop.iter().map(|s| s.to_string()).collect(),
                add_ambient_capabilities: vec![],
            }),
            ..Default::default()
        }
    }

    fn bounding(c: &LinuxCapabilities) -> Capabilities {
        c.bounding().clone().unwrap()
    }

    #[test]
    fn capability_table() {
        let limits = HostLimits::unrestricted();
        let all = limits.capabilities.len();
        type Check = Box<dyn Fn(&Capabilities) -> bool>;
        let cases: Vec<(&str, LinuxContainerSecurityContext, Check)> = vec![
            (
                "default",
                LinuxContainerSecurityContext::default(),
                Box::new(|c| c.len() == 14),
            ),
            (
                "add plain",
                caps_sc(&["NET_ADMIN"], &[]),
                Box::new(|c| c.len() == 15 && c.contains(&Capability::NetAdmin)),
            ),
            (
                "add prefixed lower",
                caps_sc(&["cap_sys_time"], &[]),
                Box::new(|c| c.contains(&Capability::SysTime)),
            ),
            (
                "drop",
                caps_sc(&[], &["NET_RAW", "CAP_CHOWN"]),
                Box::new(|c| c.len() == 12 && !c.contains(&Capability::NetRaw)),
            ),
            (
                "drop all add one",
                caps_sc(&["NET_BIND_SERVICE"], &["ALL"]),
                Box::new(|c| c.len() == 1 && c.contains(&Capability::NetBindService)),
            ),
            (
                "add all drop one",
                caps_sc(&["all"], &["SYS_ADMIN"]),
                Box::new(move |c| c.len() == all - 1 && !c.contains(&Capability::SysAdmin)),
            ),
            (
                "privileged ignores drops",
                LinuxContainerSecurityContext {
                    privileged: true,
                    ..caps_sc(&[], &["ALL"])
                },
                Box::new(move |c| c.len() == all),
            ),
        ];
        for (name, sc, check) in cases {
            let got = capabilities(Some(&sc), &limits, "c").unwrap();
            assert!(check(&bounding(&got)), "{name}: {:?}", bounding(&got));
            assert_eq!(got.effective(), got.bounding(), "{name}");
            assert!(
                got.ambient().is_none() && got.inheritable().is_none(),
                "{name}"
            );
        }
    }

    #[test]
    fn capabilities_the_runtime_lacks_are_not_granted() {
        let mut limits = HostLimits::unrestricted();
        limits.capabilities.remove(&Capability::SysResource);
        let got = capabilities(
            Some(&caps_sc(&["SYS_RESOURCE", "NET_ADMIN"], &[])),
            &limits,
            "c",
        )
        .unwrap();
        assert!(!bounding(&got).contains(&Capability::SysResource));
        assert!(bounding(&got).contains(&Capability::NetAdmin));
        let sc = LinuxContainerSecurityContext {
            privileged: true,
            ..Default::default()
        };
        let got = capabilities(Some(&sc), &limits, "c").unwrap();
        assert_eq!(bounding(&got), limits.capabilities);
    }

    #[test]
    fn unknown_capability_names_the_field() {
        let err = capabilities(
            Some(&caps_sc(&["CHOWN", "FLY"], &[])),
            &HostLimits::unrestricted(),
            "c",
        )
        .unwrap_err();
        assert_eq!(
            err.field(),
            Some("linux.security_context.capabilities.add_capabilities[1]")
        );
        assert!(err.to_string().contains("FLY"));
        let err = capabilities(
            Some(&caps_sc(&[], &["NOPE"])),
            &HostLimits::unrestricted(),
            "c",
        )
        .unwrap_err();
        assert_eq!(
            err.field(),
            Some("linux.security_context.capabilities.drop_capabilities[0]")
        );
    }

    #[test]
    fn masked_paths_rules() {
        let (masked, ro) = masked_and_readonly_paths(None);
        assert_eq!(masked.len(), DEFAULT_MASKED_PATHS.len());
        assert_eq!(ro.len(), DEFAULT_READONLY_PATHS.len());
        let sc = LinuxContainerSecurityContext {
            masked_paths: vec!["/proc/x".into()],
            ..Default::default()
        };
        let (masked, ro) = masked_and_readonly_paths(Some(&sc));
        assert_eq!(masked, vec!["/proc/x"]);
        assert_eq!(ro.len(), DEFAULT_READONLY_PATHS.len());
        let sc = LinuxContainerSecurityContext {
            privileged: true,
            ..sc
        };
        assert_eq!(masked_and_readonly_paths(Some(&sc)), (vec![], vec![]));
    }

    #[test]
    fn cgroup_v1_tree_is_made_readonly() {
        let mut limits = HostLimits::unrestricted();
        assert!(cgroup_v1_readonly_paths(&limits).is_empty());
        limits.cgroup_v1_hierarchies = vec!["memory".into(), "cpu,cpuacct".into()];
        assert_eq!(
            cgroup_v1_readonly_paths(&limits),
            vec![
                "/sys/fs/cgroup",
                "/sys/fs/cgroup/memory",
                "/sys/fs/cgroup/cpu,cpuacct"
            ]
        );
        limits.cgroup_unified = true;
        assert!(cgroup_v1_readonly_paths(&limits).is_empty());
    }

    fn ns(private_network: bool, ipc: IpcSharing) -> Namespaces {
        Namespaces {
            list: vec![LinuxNamespace::default()],
            private_network,
            ipc,
        }
    }

    fn sandbox(sysctls: &[(&str, &str)]) -> PodSandboxConfig {
        PodSandboxConfig {
            linux: Some(LinuxPodSandboxConfig {
                sysctls: sysctls
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn sysctl_table() {
        let pod = ns(true, IpcSharing::Pod);
        let host_net = ns(false, IpcSharing::Pod);
        let host_ipc = ns(true, IpcSharing::Host);
        let cases: Vec<(&str, &Namespaces, bool)> = vec![
            ("kernel.shm_rmid_forced", &pod, true),
            ("kernel.msgmax", &pod, true),
            ("kernel.sem", &pod, true),
            ("fs.mqueue.msg_max", &pod, true),
            ("net.ipv4.ip_unprivileged_port_start", &pod, true),
            ("net/ipv4/ping_group_range", &pod, true),
            ("net.core.somaxconn", &host_net, false),
            ("kernel.shmmax", &host_ipc, false),
            ("kernel.hostname", &pod, false),
            ("vm.swappiness", &pod, false),
            ("kernel.shm_next_id", &pod, false),
        ];
        for (key, namespaces, ok) in cases {
            let got = sysctls(&sandbox(&[(key, "1")]), namespaces);
            match (ok, got) {
                (true, Ok(Some(map))) => assert_eq!(map[key], "1"),
                (false, Err(e)) => {
                    assert_eq!(
                        e.field().unwrap(),
                        format!("sandbox_config.linux.sysctls[{key:?}]")
                    )
                }
                (_, other) => panic!("{key}: {other:?}"),
            }
        }
        assert!(
            sysctls(&PodSandboxConfig::default(), &pod)
                .unwrap()
                .is_none()
        );
    }
}
