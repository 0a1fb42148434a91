//! Security contexts as kubelet hands them to CRI: the container's
//! settings over the pod's (user, group, seccomp), capabilities,
//! privileges, read-only root, no-new-privileges, supplemental groups
//! (with `fsGroup`), and the namespaces the pod shares with the host.

use k8s_cri::v1 as cri;
use k8s_openapi::api::core::v1::{Container, Pod, PodSpec, SeccompProfile};

/// The namespaces of `spec`'s containers: host network, PID and IPC, or
/// the pod's (PID per container unless `shareProcessNamespace`).
pub fn namespace_options(spec: &PodSpec) -> cri::NamespaceOption {
    let mode = |host: Option<bool>, otherwise: cri::NamespaceMode| {
        if host.unwrap_or(false) {
            cri::NamespaceMode::Node as i32
        } else {
            otherwise as i32
        }
    };
    let pid = if spec.host_pid.unwrap_or(false) {
        cri::NamespaceMode::Node
    } else if spec.share_process_namespace.unwrap_or(false) {
        cri::NamespaceMode::Pod
    } else {
        cri::NamespaceMode::Container
    };
    cri::NamespaceOption {
        network: mode(spec.host_network, cri::NamespaceMode::Pod),
        pid: pid as i32,
        ipc: mode(spec.host_ipc, cri::NamespaceMode::Pod),
        ..Default::default()
    }
}

/// A seccomp profile as CRI names it (unset: Unconfined, kubelet's
/// default without `--seccomp-default`).
fn seccomp(profile: Option<&SeccompProfile>, root_dir: &str) -> cri::SecurityProfile {
    match profile.map(|p| p.type_.as_str()) {
        Some("RuntimeDefault") => cri::SecurityProfile {
            profile_type: cri::security_profile::ProfileType::RuntimeDefault as i32,
            ..Default::default()
        },
        Some("Localhost") => cri::SecurityProfile {
            profile_type: cri::security_profile::ProfileType::Localhost as i32,
            localhost_ref: format!(
                "{}/seccomp/{}",
                root_dir.trim_end_matches('/'),
                profile
                    .and_then(|p| p.localhost_profile.as_deref())
                    .unwrap_or_default()
            ),
        },
        _ => cri::SecurityProfile {
            profile_type: cri::security_profile::ProfileType::Unconfined as i32,
            ..Default::default()
        },
    }
}

fn supplemental_groups(spec: &PodSpec) -> Vec<i64> {
    let sc = spec.security_context.clone().unwrap_or_default();
    let mut groups = sc.supplemental_groups.unwrap_or_default();
    if let Some(fs_group) = sc.fs_group
        && !groups.contains(&fs_group)
    {
        groups.push(fs_group);
    }
    groups
}

/// Whether any container of the pod is privileged.
pub fn any_privileged(spec: &PodSpec) -> bool {
    spec.containers
        .iter()
        .chain(spec.init_containers.iter().flatten())
        .any(|c| {
            c.security_context
                .as_ref()
                .and_then(|s| s.privileged)
                .unwrap_or(false)
        })
}

/// The sandbox's security context.
pub fn sandbox_security(pod: &Pod, root_dir: &str) -> cri::LinuxSandboxSecurityContext {
    let spec = pod.spec.clone().unwrap_or_default();
    let sc = spec.security_context.clone().unwrap_or_default();
    cri::LinuxSandboxSecurityContext {
        namespace_options: Some(namespace_options(&spec)),
        run_as_user: sc.run_as_user.map(|value| cri::Int64Value { value }),
        run_as_group: sc.run_as_group.map(|value| cri::Int64Value { value }),
        supplemental_groups: supplemental_groups(&spec),
        privileged: any_privileged(&spec),
        seccomp: Some(seccomp(sc.seccomp_profile.as_ref(), root_dir)),
        ..Default::default()
    }
}

/// The container's security context.
pub fn container_security(
    pod: &Pod,
    container: &Container,
    root_dir: &str,
) -> cri::LinuxContainerSecurityContext {
    let spec = pod.spec.clone().unwrap_or_default();
    let pod_sc = spec.security_context.clone().unwrap_or_default();
    let sc = container.security_context.clone().unwrap_or_default();
    let privileged = sc.privileged.unwrap_or(false);
    let capabilities = sc.capabilities.clone().map(|c| cri::Capability {
        add_capabilities: c.add.unwrap_or_default(),
        drop_capabilities: c.drop.unwrap_or_default(),
        ..Default::default()
    });
    let run_as_user = sc.run_as_user.or(pod_sc.run_as_user);
    let run_as_group = sc.run_as_group.or(pod_sc.run_as_group);
    let profile = sc
        .seccomp_profile
        .as_ref()
        .or(pod_sc.seccomp_profile.as_ref());
    cri::LinuxContainerSecurityContext {
        capabilities,
        privileged,
        namespace_options: Some(namespace_options(&spec)),
        run_as_user: run_as_user.map(|value| cri::Int64Value { value }),
        run_as_group: run_as_group.map(|value| cri::Int64Value { value }),
        readonly_rootfs: sc.read_only_root_filesystem.unwrap_or(false),
        supplemental_groups: supplemental_groups(&spec),
        no_new_privs: sc.allow_privilege_escalation == Some(false),
        seccomp: Some(if privileged && profile.is_none() {
            cri::SecurityProfile {
                profile_type: cri::security_profile::ProfileType::Unconfined as i32,
                ..Default::default()
            }
        } else {
            seccomp(profile, root_dir)
        }),
        // Empty: the runtime masks and protects containerd's default
        // paths (procMount Unmasked is not supported yet).
        ..Default::default()
    }
}

/// Refuses a container that must not run as root but would
/// (`runAsNonRoot` with UID 0, or no UID and an image user that is root).
pub fn verify_run_as_non_root(
    pod: &Pod,
    container: &Container,
    image_uid: Option<i64>,
    image_user: &str,
) -> Result<(), String> {
    let pod_sc = pod
        .spec
        .as_ref()
        .and_then(|s| s.security_context.clone())
        .unwrap_or_default();
    let sc = container.security_context.clone().unwrap_or_default();
    if !sc
        .run_as_non_root
        .or(pod_sc.run_as_non_root)
        .unwrap_or(false)
    {
        return Ok(());
    }
    let pod_name = pod.metadata.name.as_deref().unwrap_or_default();
    let pod_ns = pod.metadata.namespace.as_deref().unwrap_or_default();
    let who = format!(
        "(pod: \"{pod_name}_{pod_ns}({})\", container: {})",
        pod.metadata.uid.as_deref().unwrap_or_default(),
        container.name
    );
    match sc.run_as_user.or(pod_sc.run_as_user) {
        Some(0) => Err(format!(
            "container's runAsUser breaks non-root policy {who}"
        )),
        Some(_) => Ok(()),
        None => match image_uid {
            Some(0) => Err(format!(
                "container has runAsNonRoot and image will run as root {who}"
            )),
            Some(_) => Ok(()),
            None if !image_user.is_empty() => Err(format!(
                "container has runAsNonRoot and image has non-numeric user ({image_user}), cannot verify user is non-root {who}"
            )),
            None => Err(format!(
                "container has runAsNonRoot and image will run as root {who}"
            )),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{Capabilities, PodSecurityContext, SecurityContext};

    fn pod(spec: PodSpec) -> Pod {
        Pod {
            spec: Some(spec),
            ..Default::default()
        }
    }

    #[test]
    fn namespaces_follow_the_host_flags() {
        let spec = PodSpec {
            host_network: Some(true),
            share_process_namespace: Some(true),
            ..Default::default()
        };
        let ns = namespace_options(&spec);
        assert_eq!(ns.network, cri::NamespaceMode::Node as i32);
        assert_eq!(ns.pid, cri::NamespaceMode::Pod as i32);
        assert_eq!(ns.ipc, cri::NamespaceMode::Pod as i32);
        let ns = namespace_options(&PodSpec::default());
        assert_eq!(ns.pid, cri::NamespaceMode::Container as i32);
    }

    #[test]
    fn container_settings_win_over_the_pods() {
        let container = Container {
            name: "c".into(),
            security_context: Some(SecurityContext {
                run_as_user: Some(1000),
                allow_privilege_escalation: Some(false),
                read_only_root_filesystem: Some(true),
                capabilities: Some(Capabilities {
                    add: Some(vec!["NET_ADMIN".into()]),
                    drop: Some(vec!["ALL".into()]),
                }),
                ..Default::default()
            }),
            ..Default::default()
        };
        let p = pod(PodSpec {
            security_context: Some(PodSecurityContext {
                run_as_user: Some(5),
                run_as_group: Some(6),
                fs_group: Some(7),
                supplemental_groups: Some(vec![8]),
                seccomp_profile: Some(SeccompProfile {
                    type_: "RuntimeDefault".into(),
                    localhost_profile: None,
                }),
                ..Default::default()
            }),
            containers: vec![container.clone()],
            ..Default::default()
        });
        let sc = container_security(&p, &container, "/var/lib/kubelet");
        assert_eq!(sc.run_as_user.unwrap().value, 1000);
        assert_eq!(sc.run_as_group.unwrap().value, 6);
        assert_eq!(sc.supplemental_groups, [8, 7]);
        assert!(sc.no_new_privs && sc.readonly_rootfs);
        assert_eq!(sc.capabilities.unwrap().add_capabilities, ["NET_ADMIN"]);
        assert_eq!(
            sc.seccomp.unwrap().profile_type,
            cri::security_profile::ProfileType::RuntimeDefault as i32
        );
        let sandbox = sandbox_security(&p, "/var/lib/kubelet");
        assert_eq!(sandbox.run_as_user.unwrap().value, 5);
        assert!(!sandbox.privileged);
    }

    #[test]
    fn run_as_non_root_is_verified() {
        let container = Container {
            name: "c".into(),
            security_context: Some(SecurityContext {
                run_as_non_root: Some(true),
                ..Default::default()
            }),
            ..Default::default()
        };
        let p = pod(PodSpec::default());
        assert!(verify_run_as_non_root(&p, &container, Some(1000), "").is_ok());
        let err = verify_run_as_non_root(&p, &container, Some(0), "").unwrap_err();
        assert!(
            err.starts_with("container has runAsNonRoot and image will run as root"),
            "{err}"
        );
        assert!(verify_run_as_non_root(&p, &container, None, "nobody").is_err());
        let plain = Container {
            name: "c".into(),
            ..Default::default()
        };
        assert!(verify_run_as_non_root(&p, &plain, Some(0), "").is_ok());
    }
}
