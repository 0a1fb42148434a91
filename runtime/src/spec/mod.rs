//! CRI container request + pod sandbox + image config → OCI runtime spec
//! (`config.json` for libcontainer), following the rules of containerd's
//! CRI plugin (1.7/2.x) so that kubelet and crictl see the behaviour they
//! know. A pure function apart from a few lookups: the container's
//! `/etc/passwd` and `/etc/group`, host device nodes, `/proc/self/mountinfo`
//! for propagation checks, seccomp profiles; and two effects containerd
//! also has: missing host paths of mounts are created as directories, and
//! the image's volumes are created as directories in the rootfs.
//!
//! Where this host cannot give what is asked (a lower `oom_score_adj`,
//! capabilities the runtime lacks, hugetlb or swap limits without the
//! controller), the spec is clamped to [`HostLimits`] with a log line
//! instead of failing the container.
//!
//! Modules: `process` (argv, env, cwd, OOM score, rlimits), `user` (uid,
//! gid and groups from the image), `namespaces`, `mounts`, `devices`,
//! `resources` (cgroups), `security` (capabilities, masked paths,
//! sysctls), `seccomp` (with the embedded RuntimeDefault profile),
//! `rootfs` (paths inside the container's root), `host` ([`HostLimits`]).

mod devices;
mod error;
mod host;
mod mounts;
mod namespaces;
mod process;
mod resources;
mod rootfs;
mod seccomp;
mod security;
mod user;

#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use k8s_cri::v1::{ContainerConfig, PodSandboxConfig};
use oci_spec::image::ImageConfiguration;
use oci_spec::runtime::{Linux, Process, Root, Spec};

pub use error::SpecError;
pub use host::HostLimits;
pub use resources::cgroups_path;

use mounts::ShmSource;
use namespaces::IpcSharing;

/// Annotation keys containerd's CRI plugin sets on every container, so
/// tools reading `config.json` find the pod they belong to.
pub mod annotations {
    /// `container` for containers (`sandbox` for sandboxes).
    pub const CONTAINER_TYPE: &str = "io.kubernetes.cri.container-type";
    /// The pod sandbox's ID.
    pub const SANDBOX_ID: &str = "io.kubernetes.cri.sandbox-id";
    /// The pod's name.
    pub const SANDBOX_NAME: &str = "io.kubernetes.cri.sandbox-name";
    /// The pod's namespace.
    pub const SANDBOX_NAMESPACE: &str = "io.kubernetes.cri.sandbox-namespace";
    /// The pod's UID.
    pub const SANDBOX_UID: &str = "io.kubernetes.cri.sandbox-uid";
    /// The container's name in the pod.
    pub const CONTAINER_NAME: &str = "io.kubernetes.cri.container-name";
    /// The image the container runs, as the user named it.
    pub const IMAGE_NAME: &str = "io.kubernetes.cri.image-name";
}

/// What the runtime knows about the pod a container joins: the pinned
/// namespaces and the pod-level files it created.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SandboxContext {
    /// The pod sandbox's ID.
    pub sandbox_id: String,
    /// The pod's hostname (the node's for host-network pods), for `HOSTNAME`.
    pub hostname: String,
    /// The pod's network namespace pin; `None` for host network.
    pub netns: Option<PathBuf>,
    /// The pod's IPC namespace pin; `None` for host IPC.
    pub ipcns: Option<PathBuf>,
    /// The pod's UTS namespace pin; `None` for host network (host UTS).
    pub utsns: Option<PathBuf>,
    /// The pod-level PID namespace (pin or `/proc/<pod init>/ns/pid`), when
    /// the pod shares one.
    pub pidns: Option<PathBuf>,
    /// The pod's `/etc/hostname`.
    pub hostname_file: Option<PathBuf>,
    /// The pod's `/etc/hosts`.
    pub hosts_file: Option<PathBuf>,
    /// The pod's `/etc/resolv.conf`.
    pub resolv_conf: Option<PathBuf>,
    /// The pod's `/dev/shm` (a tmpfs directory); `None` with host IPC.
    pub shm: Option<PathBuf>,
    /// The pod's cgroup parent (cgroupfs syntax); empty takes the sandbox
    /// config's.
    pub cgroup_parent: String,
}

/// Everything [`container_spec`] reads.
#[derive(Debug, Clone, Copy)]
pub struct SpecInput<'a> {
    /// The new container's ID (names its cgroup).
    pub container_id: &'a str,
    /// The CRI request's container config.
    pub config: &'a ContainerConfig,
    /// The CRI config of the pod sandbox.
    pub sandbox: &'a PodSandboxConfig,
    /// The runtime's view of the pod sandbox.
    pub ctx: &'a SandboxContext,
    /// The image's configuration.
    pub image: &'a ImageConfiguration,
    /// The image reference for annotations (the request's
    /// `user_specified_image` wins when set, as in containerd).
    pub image_name: &'a str,
    /// The container's mounted root filesystem (its `/etc/passwd` and
    /// `/etc/group` are read; image volumes are created in it).
    pub rootfs: &'a Path,
    /// For PID namespace mode TARGET: the target container's PID namespace
    /// (`/proc/<its pid>/ns/pid`), resolved by the caller from `target_id`.
    pub target_pidns: Option<&'a Path>,
    /// Where relative Localhost seccomp profiles are looked up.
    pub seccomp_profile_root: &'a Path,
    /// What the host and runtime allow.
    pub limits: &'a HostLimits,
    /// The argv the caller decided (a Wasm container's, module first);
    /// `None` merges the request's command and args with the image's.
    pub args: Option<&'a [String]>,
}

/// The container's command line as the request and the image give it
/// (`command` replaces Entrypoint, `args` replace Cmd); empty when neither
/// gives one.
pub fn merged_command(config: &ContainerConfig, image: &ImageConfiguration) -> Vec<String> {
    process::merged_command(config, image.config().as_ref())
}

/// The cgroup resources an UpdateContainerResources request asks for, as
/// the OCI type the shim applies. Device rules are left out (`None`): an
/// update never changes them.
pub fn update_resources(
    resources: Option<&k8s_cri::v1::LinuxContainerResources>,
    limits: &HostLimits,
    container_id: &str,
) -> Result<oci_spec::runtime::LinuxResources, SpecError> {
    let mut out = resources::container_resources(resources, Vec::new(), limits, container_id)?;
    out.set_devices(None);
    Ok(out)
}

/// Builds the OCI runtime spec of a container.
pub fn container_spec(input: &SpecInput<'_>) -> Result<Spec, SpecError> {
    let config = input.config;
    let id = input.container_id;
    let sc = config
        .linux
        .as_ref()
        .and_then(|l| l.security_context.as_ref());
    let privileged = sc.is_some_and(|s| s.privileged);
    let metadata = config
        .metadata
        .as_ref()
        .ok_or_else(|| SpecError::invalid("metadata", "the container config has no metadata"))?;
    if privileged
        && !input
            .sandbox
            .linux
            .as_ref()
            .and_then(|l| l.security_context.as_ref())
            .is_some_and(|s| s.privileged)
    {
        return Err(SpecError::invalid(
            "linux.security_context.privileged",
            "a privileged container needs a privileged pod sandbox",
        ));
    }
    security::log_ignored_options(sc, id);
    let image = input.image.config().as_ref();

    let mut process = Process::default();
    let args = match input.args {
        Some(args) => args.to_vec(),
        None => process::process_args(config, image)?,
    };
    process.set_args(Some(args));
    process.set_env(Some(process::process_env(config, image, &hostname(input))));
    process.set_cwd(PathBuf::from(process::process_cwd(config, image)?));
    process.set_terminal(Some(config.tty));
    let image_user = image.and_then(|i| i.user().clone()).unwrap_or_default();
    process.set_user(user::resolve_user(sc, &image_user, input.rootfs)?);
    let capabilities = security::capabilities(sc, input.limits, id)?;
    let bounding = capabilities.bounding().clone().unwrap_or_default();
    process.set_capabilities(Some(capabilities));
    process.set_rlimits(Some(process::rlimits(input.limits)?));
    // Absent, not `false`: libcontainer tests presence, and with the field
    // present it loads seccomp after dropping CAP_SYS_ADMIN, which fails
    // unless no_new_privs is really set.
    process.set_no_new_privileges(sc.is_some_and(|s| s.no_new_privs).then_some(true));
    process.set_oom_score_adj(process::oom_score_adj(config, input.limits, id)?);
    process.set_apparmor_profile(None);
    process.set_selinux_label(None);

    let ns = namespaces::namespaces(sc, input.ctx, input.target_pidns, input.limits)?;
    let host_shm = Path::new("/dev/shm");
    let shm = match (ns.ipc, &input.ctx.shm) {
        (IpcSharing::Host, _) => ShmSource::Bind(host_shm),
        (IpcSharing::Pod, Some(pod_shm)) => ShmSource::Bind(pod_shm),
        (IpcSharing::Pod, None) | (IpcSharing::Private, _) => ShmSource::Private,
    };
    let readonly_rootfs = sc.is_some_and(|s| s.readonly_rootfs);
    let mounts = mounts::container_mounts(config, input.ctx, shm, privileged, readonly_rootfs)?;
    mounts::image_volumes(config, image, input.rootfs, id)?;

    let devices = devices::container_devices(config, privileged)?;
    let resources = resources::container_resources(
        config.linux.as_ref().and_then(|l| l.resources.as_ref()),
        devices.rules,
        input.limits,
        id,
    )?;
    let (masked, mut readonly) = security::masked_and_readonly_paths(sc);
    let cgroupfs_mounted = mounts
        .list
        .iter()
        .any(|m| m.typ().as_deref() == Some("cgroup"));
    if !privileged && cgroupfs_mounted {
        readonly.extend(security::cgroup_v1_readonly_paths(input.limits));
    }
    let sysctl = security::sysctls(input.sandbox, &ns)?;
    let seccomp = seccomp::container_seccomp(sc, &bounding, input.seccomp_profile_root)?;

    let parent = if input.ctx.cgroup_parent.is_empty() {
        input
            .sandbox
            .linux
            .as_ref()
            .map(|l| l.cgroup_parent.as_str())
            .unwrap_or_default()
    } else {
        input.ctx.cgroup_parent.as_str()
    };

    let mut linux = Linux::default();
    linux.set_namespaces(Some(ns.list));
    linux.set_cgroups_path(Some(cgroups_path(parent, id)));
    linux.set_resources(Some(resources));
    linux.set_devices(Some(devices.nodes));
    linux.set_seccomp(seccomp);
    linux.set_masked_paths(Some(masked));
    linux.set_readonly_paths(Some(readonly));
    linux.set_sysctl(sysctl);
    linux.set_rootfs_propagation(mounts.rootfs_propagation);
    linux.set_mount_label(None);

    let mut root = Root::default();
    root.set_path(input.rootfs.to_path_buf());
    root.set_readonly(Some(readonly_rootfs));

    let mut spec = Spec::default();
    spec.set_version(oci_spec::runtime::VERSION.to_string());
    spec.set_root(Some(root));
    spec.set_mounts(Some(mounts.list));
    spec.set_process(Some(process));
    // The joined UTS namespace already carries the pod's hostname.
    spec.set_hostname(None);
    spec.set_domainname(None);
    spec.set_hooks(None);
    spec.set_annotations(Some(cri_annotations(input, &metadata.name)));
    spec.set_linux(Some(linux));
    Ok(spec)
}

/// The annotations containerd puts on a container.
fn cri_annotations(input: &SpecInput<'_>, container_name: &str) -> HashMap<String, String> {
    let pod = input.sandbox.metadata.clone().unwrap_or_default();
    let image_name = input
        .config
        .image
        .as_ref()
        .map(|i| i.user_specified_image.as_str())
        .filter(|s| !s.is_empty())
        .unwrap_or(input.image_name);
    [
        (annotations::CONTAINER_TYPE, "container"),
        (annotations::SANDBOX_ID, input.ctx.sandbox_id.as_str()),
        (annotations::SANDBOX_NAME, pod.name.as_str()),
        (annotations::SANDBOX_NAMESPACE, pod.namespace.as_str()),
        (annotations::SANDBOX_UID, pod.uid.as_str()),
        (annotations::CONTAINER_NAME, container_name),
        (annotations::IMAGE_NAME, image_name),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

/// `HOSTNAME` for the container: the pod's, else the node's.
fn hostname(input: &SpecInput<'_>) -> String {
    if !input.ctx.hostname.is_empty() {
        return input.ctx.hostname.clone();
    }
    if !input.sandbox.hostname.is_empty() {
        return input.sandbox.hostname.clone();
    }
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}
