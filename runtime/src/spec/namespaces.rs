//! The container's namespaces. Without a pause container, the pod's
//! namespaces are bind-mounted pins (see the sandbox context) that the
//! container joins by path:
//!
//! - network and IPC: `POD` joins the pod's pin (the host's when the pod
//!   has none, i.e. host network / host IPC), `NODE` stays in the host's,
//!   `CONTAINER` gets a private one;
//! - UTS follows the pod (a pod on the host network has the host's);
//! - PID: `POD` joins the pod's PID namespace, `CONTAINER` gets its own,
//!   `NODE` the host's, `TARGET` the namespace of another container of the
//!   pod (its path is given by the caller, who knows that container's pid);
//! - mount: always new; cgroup: new on cgroup v2 hosts for unprivileged
//!   containers (containerd's rule); user namespaces are not supported.

use std::path::Path;

use k8s_cri::v1::{LinuxContainerSecurityContext, NamespaceMode, NamespaceOption};
use oci_spec::runtime::{LinuxNamespace, LinuxNamespaceType};

use super::{HostLimits, SandboxContext, SpecError};

const NS_FIELD: &str = "linux.security_context.namespace_options";

/// How the container shares IPC, which decides its `/dev/shm`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum IpcSharing {
    /// The host's IPC namespace: the host's `/dev/shm`.
    Host,
    /// The pod's IPC namespace: the pod's `/dev/shm`.
    Pod,
    /// A private IPC namespace: a private `/dev/shm`.
    Private,
}

/// The namespaces of one container, and what they imply elsewhere.
#[derive(Debug, Clone)]
pub(crate) struct Namespaces {
    /// The OCI namespace list.
    pub list: Vec<LinuxNamespace>,
    /// The container has a network namespace of its own or the pod's.
    pub private_network: bool,
    /// How IPC is shared.
    pub ipc: IpcSharing,
}

/// Chooses the container's namespaces.
pub(crate) fn namespaces(
    sc: Option<&LinuxContainerSecurityContext>,
    ctx: &SandboxContext,
    target_pidns: Option<&Path>,
    limits: &HostLimits,
) -> Result<Namespaces, SpecError> {
    let default_options = NamespaceOption::default();
    let options = sc
        .and_then(|s| s.namespace_options.as_ref())
        .unwrap_or(&default_options);
    let privileged = sc.is_some_and(|s| s.privileged);

    if let Some(userns) = &options.userns_options
        && mode(userns.mode, "userns_options.mode")? != NamespaceMode::Node
    {
        return Err(SpecError::invalid(
            format!("{NS_FIELD}.userns_options.mode"),
            "user namespaces are not supported by this runtime",
        ));
    }

    let mut list = vec![ns(LinuxNamespaceType::Mount, None)];

    let network = shared(
        mode(options.network, "network")?,
        ctx.netns.as_deref(),
        LinuxNamespaceType::Network,
        "network",
    )?;
    let private_network = network.is_some();
    list.extend(network);

    let ipc_mode = mode(options.ipc, "ipc")?;
    let ipc = shared(
        ipc_mode,
        ctx.ipcns.as_deref(),
        LinuxNamespaceType::Ipc,
        "ipc",
    )?;
    let ipc_sharing = match (&ipc, ipc_mode) {
        (None, _) => IpcSharing::Host,
        (Some(_), NamespaceMode::Container) => IpcSharing::Private,
        (Some(_), _) => IpcSharing::Pod,
    };
    list.extend(ipc);

    if let Some(uts) = &ctx.utsns {
        list.push(ns(LinuxNamespaceType::Uts, Some(uts)));
    }

    match mode(options.pid, "pid")? {
        NamespaceMode::Pod => match &ctx.pidns {
            Some(path) => list.push(ns(LinuxNamespaceType::Pid, Some(path))),
            // The pod has no shared PID namespace (its own mode is not POD).
            // With a pause container the container would join pause's; with
            // none, a PID namespace of its own is the equivalent.
            None => {
                tracing::debug!(
                    "pid mode POD in a pod without a shared PID namespace: a private one"
                );
                list.push(ns(LinuxNamespaceType::Pid, None));
            }
        },
        NamespaceMode::Container => list.push(ns(LinuxNamespaceType::Pid, None)),
        NamespaceMode::Node => {}
        NamespaceMode::Target => match target_pidns {
            Some(path) => list.push(ns(LinuxNamespaceType::Pid, Some(path))),
            None => {
                return Err(SpecError::invalid(
                    format!("{NS_FIELD}.target_id"),
                    format!(
                        "TARGET needs a created container of the pod, got {:?}",
                        options.target_id
                    ),
                ));
            }
        },
    }

    if limits.cgroup_unified && !privileged {
        list.push(ns(LinuxNamespaceType::Cgroup, None));
    }

    Ok(Namespaces {
        list,
        private_network,
        ipc: ipc_sharing,
    })
}

/// A network or IPC namespace: `None` means the host's.
fn shared(
    mode: NamespaceMode,
    pod_path: Option<&Path>,
    typ: LinuxNamespaceType,
    name: &str,
) -> Result<Option<LinuxNamespace>, SpecError> {
    match mode {
        NamespaceMode::Pod => Ok(pod_path.map(|p| ns(typ, Some(p)))),
        NamespaceMode::Container => Ok(Some(ns(typ, None))),
        NamespaceMode::Node => Ok(None),
        NamespaceMode::Target => Err(SpecError::invalid(
            format!("{NS_FIELD}.{name}"),
            "TARGET is only supported for the PID namespace",
        )),
    }
}

fn mode(value: i32, name: &str) -> Result<NamespaceMode, SpecError> {
    NamespaceMode::try_from(value).map_err(|_| {
        SpecError::invalid(
            format!("{NS_FIELD}.{name}"),
            format!("unknown namespace mode {value}"),
        )
    })
}

fn ns(typ: LinuxNamespaceType, path: Option<&Path>) -> LinuxNamespace {
    let mut ns = LinuxNamespace::default();
    ns.set_typ(typ);
    ns.set_path(path.map(Path::to_path_buf));
    ns
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_cri::v1::UserNamespace;
    use std::path::PathBuf;

    fn ctx() -> SandboxContext {
        SandboxContext {
            netns: Some("/run/pod/ns/net".into()),
            ipcns: Some("/run/pod/ns/ipc".into()),
            utsns: Some("/run/pod/ns/uts".into()),
            pidns: Some("/run/pod/ns/pid".into()),
            ..Default::default()
        }
    }

    fn sc(
        network: NamespaceMode,
        pid: NamespaceMode,
        ipc: NamespaceMode,
    ) -> LinuxContainerSecurityContext {
        LinuxContainerSecurityContext {
            namespace_options: Some(NamespaceOption {
                network: network as i32,
                pid: pid as i32,
                ipc: ipc as i32,
                target_id: "target".into(),
                userns_options: None,
            }),
            ..Default::default()
        }
    }

    fn listed(n: &Namespaces) -> Vec<(LinuxNamespaceType, Option<PathBuf>)> {
        n.list.iter().map(|n| (n.typ(), n.path().clone())).collect()
    }

    use LinuxNamespaceType as T;
    use NamespaceMode as M;

    #[test]
    fn modes_table() {
        let p = |s: &str| Some(PathBuf::from(s));
        let limits = HostLimits::unrestricted();
        let cases = vec![
            (
                "all pod",
                sc(M::Pod, M::Pod, M::Pod),
                vec![
                    (T::Mount, None),
                    (T::Network, p("/run/pod/ns/net")),
                    (T::Ipc, p("/run/pod/ns/ipc")),
                    (T::Uts, p("/run/pod/ns/uts")),
                    (T::Pid, p("/run/pod/ns/pid")),
                ],
            ),
            (
                "container pid, host ipc",
                sc(M::Pod, M::Container, M::Node),
                vec![
                    (T::Mount, None),
                    (T::Network, p("/run/pod/ns/net")),
                    (T::Uts, p("/run/pod/ns/uts")),
                    (T::Pid, None),
                ],
            ),
            (
                "host pid and network",
                sc(M::Node, M::Node, M::Pod),
                vec![
                    (T::Mount, None),
                    (T::Ipc, p("/run/pod/ns/ipc")),
                    (T::Uts, p("/run/pod/ns/uts")),
                ],
            ),
            (
                "target pid",
                sc(M::Pod, M::Target, M::Container),
                vec![
                    (T::Mount, None),
                    (T::Network, p("/run/pod/ns/net")),
                    (T::Ipc, None),
                    (T::Uts, p("/run/pod/ns/uts")),
                    (T::Pid, p("/proc/42/ns/pid")),
                ],
            ),
        ];
        for (name, sc, want) in cases {
            let got = namespaces(
                Some(&sc),
                &ctx(),
                Some(Path::new("/proc/42/ns/pid")),
                &limits,
            )
            .unwrap();
            assert_eq!(listed(&got), want, "{name}");
        }
    }

    #[test]
    fn host_network_pod_has_no_network_or_uts_namespace() {
        let ctx = SandboxContext {
            netns: None,
            utsns: None,
            ..ctx()
        };
        let got = namespaces(None, &ctx, None, &HostLimits::unrestricted()).unwrap();
        assert!(!got.private_network);
        assert_eq!(got.ipc, IpcSharing::Pod);
        assert!(
            got.list
                .iter()
                .all(|n| n.typ() != T::Network && n.typ() != T::Uts)
        );
        let ctx = SandboxContext { ipcns: None, ..ctx };
        let got = namespaces(None, &ctx, None, &HostLimits::unrestricted()).unwrap();
        assert_eq!(got.ipc, IpcSharing::Host);
    }

    #[test]
    fn cgroup_namespace_on_v2_for_unprivileged_only() {
        let mut limits = HostLimits::unrestricted();
        limits.cgroup_unified = true;
        let has_cgroupns = |sc: &LinuxContainerSecurityContext| {
            namespaces(Some(sc), &ctx(), None, &limits)
                .unwrap()
                .list
                .iter()
                .any(|n| n.typ() == T::Cgroup)
        };
        let mut s = sc(M::Pod, M::Pod, M::Pod);
        assert!(has_cgroupns(&s));
        s.privileged = true;
        assert!(!has_cgroupns(&s));
    }

    #[test]
    fn errors_name_the_field() {
        let limits = HostLimits::unrestricted();
        let no_pidns = SandboxContext {
            pidns: None,
            ..ctx()
        };
        // POD without a pod PID namespace: a private one, as pause would give.
        let list = namespaces(Some(&sc(M::Pod, M::Pod, M::Pod)), &no_pidns, None, &limits).unwrap();
        assert!(
            list.list
                .iter()
                .any(|n| n.typ() == LinuxNamespaceType::Pid && n.path().is_none())
        );

        let err =
            namespaces(Some(&sc(M::Pod, M::Target, M::Pod)), &ctx(), None, &limits).unwrap_err();
        assert_eq!(
            err.field(),
            Some("linux.security_context.namespace_options.target_id")
        );
        assert!(err.to_string().contains("target"));

        let err =
            namespaces(Some(&sc(M::Target, M::Pod, M::Pod)), &ctx(), None, &limits).unwrap_err();
        assert_eq!(
            err.field(),
            Some("linux.security_context.namespace_options.network")
        );

        let mut s = sc(M::Pod, M::Pod, M::Pod);
        s.namespace_options.as_mut().unwrap().ipc = 9;
        let err = namespaces(Some(&s), &ctx(), None, &limits).unwrap_err();
        assert_eq!(
            err.field(),
            Some("linux.security_context.namespace_options.ipc")
        );

        s = sc(M::Pod, M::Pod, M::Pod);
        s.namespace_options.as_mut().unwrap().userns_options = Some(UserNamespace {
            mode: M::Pod as i32,
            ..Default::default()
        });
        let err = namespaces(Some(&s), &ctx(), None, &limits).unwrap_err();
        assert_eq!(
            err.field(),
            Some("linux.security_context.namespace_options.userns_options.mode")
        );
    }
}
