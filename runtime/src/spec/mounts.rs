//! The container's mounts, built as containerd's CRI plugin builds them:
//!
//! 1. the default set (`/proc`, `/dev`, `/dev/pts`, `/dev/shm`,
//!    `/dev/mqueue`, `/sys` read-only, `/sys/fs/cgroup` read-only; the last
//!    two writable when privileged), minus any the request mounts over (and
//!    everything under `/dev` when the request mounts `/dev`);
//! 2. the pod's `/etc/hostname`, `/etc/hosts`, `/etc/resolv.conf` and
//!    `/dev/shm` (the host's with host IPC), unless the request mounts its
//!    own there; read-only with a read-only rootfs;
//! 3. the request's mounts, validated, as recursive binds with their
//!    propagation (`PRIVATE` → `rprivate`, `HOST_TO_CONTAINER` → `rslave`,
//!    `BIDIRECTIONAL` → `rshared`, the latter two also setting the rootfs
//!    propagation and requiring the host path to sit on a shared (or slave)
//!    mount) and read-only or recursively read-only (`rro`).
//!
//! Mounts of 2 and 3 are sorted by depth, so parents come before children.
//! A missing host path is created as a directory, as containerd does.
//!
//! Image volumes (the image config's `Volumes`) become plain directories in
//! the container's writable layer (CRI-O's default `mkdir` mode): their
//! content is the image's and writes land in the writable layer, which has
//! the lifetime containerd gives its per-container volume directories.

use std::fs;
use std::io;
use std::path::{Component, Path, PathBuf};

use k8s_cri::v1::{ContainerConfig, MountPropagation};
use oci_spec::image::Config as ImageConfig;
use oci_spec::runtime::Mount;

use super::rootfs::mkdir_in_root;
use super::{SandboxContext, SpecError};

/// The mounts and the rootfs propagation they need.
#[derive(Debug, Clone)]
pub(crate) struct Mounts {
    /// The OCI mounts, in mount order.
    pub list: Vec<Mount>,
    /// `rshared` or `rslave` when a mount's propagation needs it.
    pub rootfs_propagation: Option<String>,
}

/// One bind mount to add, from the request or the pod.
#[derive(Debug, Clone)]
struct Bind {
    container_path: String,
    host_path: PathBuf,
    readonly: bool,
    recursive_read_only: bool,
    propagation: i32,
    /// `mounts[i]` for request mounts; `None` for the pod's own.
    field: Option<String>,
}

/// How the container's `/dev/shm` is provided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ShmSource<'a> {
    /// Bind this host directory (the pod's shm, or the host's /dev/shm).
    Bind(&'a Path),
    /// Keep the default private tmpfs.
    Private,
}

/// Builds the container's mounts.
pub(crate) fn container_mounts(
    config: &ContainerConfig,
    ctx: &SandboxContext,
    shm: ShmSource<'_>,
    privileged: bool,
    readonly_rootfs: bool,
) -> Result<Mounts, SpecError> {
    let mut binds = Vec::with_capacity(config.mounts.len() + 4);
    for (i, m) in config.mounts.iter().enumerate() {
        binds.push(request_bind(i, m)?);
    }
    let requested = |path: &str| binds_contain(&config.mounts, path);
    let pod_files = [
        ("/etc/hostname", &ctx.hostname_file),
        ("/etc/hosts", &ctx.hosts_file),
        ("/etc/resolv.conf", &ctx.resolv_conf),
    ];
    for (dst, src) in pod_files {
        // As containerd: the pod's file is skipped when the container mounts
        // its own, or when the sandbox does not provide it.
        if let Some(src) = src
            && !requested(dst)
            && src.exists()
        {
            binds.push(pod_bind(dst, src, readonly_rootfs));
        }
    }
    if let ShmSource::Bind(src) = shm
        && !requested("/dev/shm")
    {
        binds.push(pod_bind("/dev/shm", src, false));
    }
    // Stable: among equals, request mounts stay before the pod's and in order.
    binds.sort_by_key(|b| depth(&b.container_path));

    let covered: Vec<String> = binds.iter().map(|b| clean(&b.container_path)).collect();
    let dev_covered = covered.iter().any(|c| c == "/dev");
    // A default mount gives way to a requested one at the same place, and
    // everything under /dev to a requested /dev.
    let overridden =
        |dst: &str| covered.iter().any(|c| c == dst) || (dev_covered && dst.starts_with("/dev/"));
    let mut list: Vec<Mount> = default_mounts(privileged)
        .into_iter()
        .filter(|m| !overridden(&clean(&m.destination().to_string_lossy())))
        .collect();

    let mut rootfs_propagation: Option<String> = None;
    for bind in binds {
        list.push(bind_mount(bind, &mut rootfs_propagation)?);
    }
    Ok(Mounts {
        list,
        rootfs_propagation,
    })
}

/// Creates the image's volume directories in the container's rootfs,
/// except those the request mounts over. Returns the directories made.
pub(crate) fn image_volumes(
    config: &ContainerConfig,
    image: Option<&ImageConfig>,
    rootfs: &Path,
    container_id: &str,
) -> Result<Vec<String>, SpecError> {
    let volumes = image.and_then(|i| i.volumes().clone()).unwrap_or_default();
    let mut made = Vec::new();
    for volume in volumes {
        let dst = if volume.starts_with('/') {
            volume.clone()
        } else {
            format!("/{volume}")
        };
        if binds_contain(&config.mounts, &dst) {
            continue;
        }
        mkdir_in_root(rootfs, Path::new(&dst))
            .map_err(|e| SpecError::io("create image volume directory", rootfs.join(&volume), e))?;
        tracing::debug!(container_id, volume = %dst, "image volume kept in the writable layer");
        made.push(dst);
    }
    Ok(made)
}

fn request_bind(i: usize, m: &k8s_cri::v1::Mount) -> Result<Bind, SpecError> {
    let field = format!("mounts[{i}]");
    if !m.container_path.starts_with('/') {
        return Err(SpecError::invalid(
            format!("{field}.container_path"),
            format!("{:?} is not an absolute path", m.container_path),
        ));
    }
    if m.host_path.is_empty() {
        let message = if m.image.as_ref().is_some_and(|i| !i.image.is_empty()) {
            "an image volume must be resolved to a host path before the spec is built"
        } else {
            "empty host path"
        };
        return Err(SpecError::invalid(format!("{field}.host_path"), message));
    }
    if !m.uid_mappings.is_empty() || !m.gid_mappings.is_empty() {
        return Err(SpecError::invalid(
            format!("{field}.uidMappings"),
            "id-mapped mounts need user namespaces, which this runtime does not support",
        ));
    }
    if m.selinux_relabel {
        tracing::debug!(mount = %m.container_path, "selinux_relabel ignored: SELinux is not in use");
    }
    Ok(Bind {
        container_path: m.container_path.clone(),
        host_path: PathBuf::from(&m.host_path),
        readonly: m.readonly,
        recursive_read_only: m.recursive_read_only,
        propagation: m.propagation,
        field: Some(field),
    })
}

fn pod_bind(dst: &str, src: &Path, readonly: bool) -> Bind {
    Bind {
        container_path: dst.to_string(),
        host_path: src.to_path_buf(),
        readonly,
        recursive_read_only: false,
        propagation: MountPropagation::PropagationPrivate as i32,
        field: None,
    }
}

fn bind_mount(bind: Bind, rootfs_propagation: &mut Option<String>) -> Result<Mount, SpecError> {
    let field = |suffix: &str| match &bind.field {
        Some(f) => format!("{f}.{suffix}"),
        None => format!("pod mount {}", bind.container_path),
    };
    let source = host_source(&bind.host_path)?;
    let mut options = vec!["rbind".to_string()];
    let propagation = MountPropagation::try_from(bind.propagation).map_err(|_| {
        SpecError::invalid(
            field("propagation"),
            format!("unknown propagation {}", bind.propagation),
        )
    })?;
    match propagation {
        MountPropagation::PropagationPrivate => options.push("rprivate".into()),
        MountPropagation::PropagationHostToContainer => {
            require_propagation(&source, &["shared:", "master:"], &field("propagation"))?;
            options.push("rslave".into());
            if rootfs_propagation.as_deref() != Some("rshared") {
                *rootfs_propagation = Some("rslave".into());
            }
        }
        MountPropagation::PropagationBidirectional => {
            require_propagation(&source, &["shared:"], &field("propagation"))?;
            options.push("rshared".into());
            *rootfs_propagation = Some("rshared".into());
        }
    }
    // As containerd: a read-only rootfs does not make binds read-only.
    match (bind.readonly, bind.recursive_read_only) {
        (true, true) => {
            if propagation != MountPropagation::PropagationPrivate {
                return Err(SpecError::invalid(
                    field("recursive_read_only"),
                    "a recursively read-only mount needs PROPAGATION_PRIVATE",
                ));
            }
            options.push("rro".into());
        }
        (true, false) => options.push("ro".into()),
        (false, true) => {
            return Err(SpecError::invalid(
                field("recursive_read_only"),
                "a recursively read-only mount must also be readonly",
            ));
        }
        (false, false) => options.push("rw".into()),
    }
    let mut mount = Mount::default();
    mount.set_destination(PathBuf::from(&bind.container_path));
    mount.set_typ(Some("bind".into()));
    mount.set_source(Some(source));
    mount.set_options(Some(options));
    Ok(mount)
}

/// The host path, created as a directory when missing and with symlinks
/// resolved (the mount must target what the link points at).
fn host_source(path: &Path) -> Result<PathBuf, SpecError> {
    match fs::symlink_metadata(path) {
        Ok(_) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            fs::create_dir_all(path).map_err(|e| SpecError::io("create directory", path, e))?;
        }
        Err(e) => return Err(SpecError::io("stat", path, e)),
    }
    fs::canonicalize(path).map_err(|e| SpecError::io("resolve", path, e))
}

/// Fails unless the mount holding `path` has one of the propagation tags.
fn require_propagation(path: &Path, tags: &[&str], field: &str) -> Result<(), SpecError> {
    let mountinfo = fs::read_to_string("/proc/self/mountinfo")
        .map_err(|e| SpecError::io("read", "/proc/self/mountinfo", e))?;
    match mount_of(&mountinfo, path) {
        Some(m)
            if m.optional
                .iter()
                .any(|o| tags.iter().any(|t| o.starts_with(t))) =>
        {
            Ok(())
        }
        Some(m) => Err(SpecError::FailedPrecondition {
            field: field.to_string(),
            message: format!(
                "{} is on mount {} which is not {}",
                path.display(),
                m.mount_point.display(),
                if tags.len() > 1 {
                    "shared or slave"
                } else {
                    "shared"
                }
            ),
        }),
        None => Err(SpecError::FailedPrecondition {
            field: field.to_string(),
            message: format!("no mount holds {}", path.display()),
        }),
    }
}

/// One line of `/proc/<pid>/mountinfo`: where it is mounted and its
/// optional (propagation) fields.
#[derive(Debug, PartialEq, Eq)]
struct MountInfo {
    mount_point: PathBuf,
    optional: Vec<String>,
}

/// The mount that holds `path`: the deepest mount point above it, the
/// latest one when several are stacked.
fn mount_of(mountinfo: &str, path: &Path) -> Option<MountInfo> {
    let mut best: Option<MountInfo> = None;
    for line in mountinfo.lines() {
        let fields: Vec<&str> = line.split(' ').collect();
        let Some(point) = fields.get(4) else { continue };
        let point = PathBuf::from(unescape_octal(point));
        if !path.starts_with(&point) {
            continue;
        }
        let better = best
            .as_ref()
            .is_none_or(|b| point.components().count() >= b.mount_point.components().count());
        if better {
            let optional = fields
                .iter()
                .skip(6)
                .take_while(|f| **f != "-")
                .map(|f| f.to_string())
                .collect();
            best = Some(MountInfo {
                mount_point: point,
                optional,
            });
        }
    }
    best
}

/// mountinfo escapes space, tab, newline and backslash as `\ooo`.
fn unescape_octal(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\'
            && let Some(code) = s
                .get(i + 1..i + 4)
                .and_then(|o| u8::from_str_radix(o, 8).ok())
        {
            out.push(code);
            i += 4;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Whether the request mounts something at `path`.
fn binds_contain(mounts: &[k8s_cri::v1::Mount], path: &str) -> bool {
    let path = clean(path);
    mounts.iter().any(|m| clean(&m.container_path) == path)
}

/// A path without `.`, `..` resolved lexically, and without trailing `/`.
pub(crate) fn clean(path: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for c in Path::new(path).components() {
        match c {
            Component::Normal(s) => parts.push(s.to_str().unwrap_or_default()),
            Component::ParentDir => {
                parts.pop();
            }
            Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
        }
    }
    format!("/{}", parts.join("/"))
}

fn depth(path: &str) -> usize {
    clean(path).matches('/').count()
}

fn default_mounts(privileged: bool) -> Vec<Mount> {
    let rw_when_privileged = if privileged { "rw" } else { "ro" };
    [
        ("/proc", "proc", "proc", vec!["nosuid", "noexec", "nodev"]),
        (
            "/dev",
            "tmpfs",
            "tmpfs",
            vec!["nosuid", "strictatime", "mode=755", "size=65536k"],
        ),
        (
            "/dev/pts",
            "devpts",
            "devpts",
            vec![
                "nosuid",
                "noexec",
                "newinstance",
                "ptmxmode=0666",
                "mode=0620",
                "gid=5",
            ],
        ),
        (
            "/dev/shm",
            "tmpfs",
            "shm",
            vec!["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"],
        ),
        (
            "/dev/mqueue",
            "mqueue",
            "mqueue",
            vec!["nosuid", "noexec", "nodev"],
        ),
        (
            "/sys",
            "sysfs",
            "sysfs",
            vec!["nosuid", "noexec", "nodev", rw_when_privileged],
        ),
        (
            "/sys/fs/cgroup",
            "cgroup",
            "cgroup",
            vec!["nosuid", "noexec", "nodev", "relatime", rw_when_privileged],
        ),
    ]
    .into_iter()
    .map(|(dst, typ, src, options)| {
        let mut m = Mount::default();
        m.set_destination(PathBuf::from(dst));
        m.set_typ(Some(typ.to_string()));
        m.set_source(Some(PathBuf::from(src)));
        m.set_options(Some(options.into_iter().map(String::from).collect()));
        m
    })
    .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_cri::v1::{ImageSpec, Mount as CriMount};
    use oci_spec::image::ConfigBuilder;

    fn cri_mount(container: &str, host: &Path) -> CriMount {
        CriMount {
            container_path: container.into(),
            host_path: host.to_string_lossy().into_owned(),
            ..Default::default()
        }
    }

    fn destinations(m: &Mounts) -> Vec<String> {
        m.list
            .iter()
            .map(|m| m.destination().to_string_lossy().into_owned())
            .collect()
    }

    fn options_of(m: &Mounts, dst: &str) -> Vec<String> {
        m.list
            .iter()
            .find(|m| m.destination() == Path::new(dst))
            .and_then(|m| m.options().clone())
            .unwrap_or_else(|| panic!("no mount at {dst}"))
    }

    struct PodDir {
        dir: tempfile::TempDir,
    }

    impl PodDir {
        fn new() -> Self {
            let dir = tempfile::tempdir().unwrap();
            for f in ["hostname", "hosts", "resolv.conf"] {
                fs::write(dir.path().join(f), "x").unwrap();
            }
            fs::create_dir(dir.path().join("shm")).unwrap();
            Self { dir }
        }

        fn ctx(&self) -> SandboxContext {
            SandboxContext {
                hostname_file: Some(self.dir.path().join("hostname")),
                hosts_file: Some(self.dir.path().join("hosts")),
                resolv_conf: Some(self.dir.path().join("resolv.conf")),
                shm: Some(self.dir.path().join("shm")),
                ..Default::default()
            }
        }

        fn path(&self, p: &str) -> PathBuf {
            self.dir.path().join(p)
        }
    }

    #[test]
    fn defaults_pod_files_and_sorting() {
        let pod = PodDir::new();
        let config = ContainerConfig {
            mounts: vec![
                cri_mount("/data/sub", &pod.path("a")),
                cri_mount("/data", &pod.path("b")),
            ],
            ..Default::default()
        };
        let shm = pod.path("shm");
        let m = container_mounts(&config, &pod.ctx(), ShmSource::Bind(&shm), false, false).unwrap();
        assert_eq!(
            destinations(&m),
            vec![
                "/proc",
                "/dev",
                "/dev/pts",
                "/dev/mqueue",
                "/sys",
                "/sys/fs/cgroup",
                "/data",
                "/data/sub",
                "/etc/hostname",
                "/etc/hosts",
                "/etc/resolv.conf",
                "/dev/shm",
            ]
        );
        assert_eq!(
            options_of(&m, "/sys"),
            vec!["nosuid", "noexec", "nodev", "ro"]
        );
        assert_eq!(
            options_of(&m, "/etc/hosts"),
            vec!["rbind", "rprivate", "rw"]
        );
        assert_eq!(options_of(&m, "/dev/shm"), vec!["rbind", "rprivate", "rw"]);
        // The missing host paths were created, as containerd does.
        assert!(pod.path("a").is_dir() && pod.path("b").is_dir());
        assert_eq!(m.rootfs_propagation, None);
    }

    #[test]
    fn private_shm_readonly_rootfs_and_privileged() {
        let pod = PodDir::new();
        let m = container_mounts(
            &ContainerConfig::default(),
            &pod.ctx(),
            ShmSource::Private,
            true,
            true,
        )
        .unwrap();
        let shm = m
            .list
            .iter()
            .find(|m| m.destination() == Path::new("/dev/shm"))
            .unwrap();
        assert_eq!(shm.typ().as_deref(), Some("tmpfs"));
        assert_eq!(
            options_of(&m, "/etc/resolv.conf"),
            vec!["rbind", "rprivate", "ro"]
        );
        assert_eq!(
            options_of(&m, "/sys").last().map(String::as_str),
            Some("rw")
        );
        assert_eq!(
            options_of(&m, "/sys/fs/cgroup").last().map(String::as_str),
            Some("rw")
        );
    }

    #[test]
    fn request_mounts_override_pod_files_and_dev() {
        let pod = PodDir::new();
        let config = ContainerConfig {
            mounts: vec![
                cri_mount("/etc/hosts/", &pod.path("my-hosts")),
                cri_mount("/dev", &pod.path("dev")),
            ],
            ..Default::default()
        };
        let ctx = SandboxContext {
            resolv_conf: Some(pod.path("missing-resolv")),
            ..pod.ctx()
        };
        let shm = pod.path("shm");
        let m = container_mounts(&config, &ctx, ShmSource::Bind(&shm), false, false).unwrap();
        let dsts = destinations(&m);
        assert!(
            !dsts.iter().any(|d| d == "/dev/pts" || d == "/dev/mqueue"),
            "{dsts:?}"
        );
        assert_eq!(
            dsts.iter().filter(|d| d.starts_with("/etc/hosts")).count(),
            1
        );
        // The pod's resolv.conf does not exist: skipped, as containerd does.
        assert!(!dsts.iter().any(|d| d == "/etc/resolv.conf"));
        let hosts = m
            .list
            .iter()
            .find(|m| m.destination() == Path::new("/etc/hosts/"))
            .unwrap();
        assert_eq!(
            hosts.source().as_deref(),
            Some(pod.path("my-hosts").canonicalize().unwrap().as_path())
        );
    }

    #[test]
    fn readonly_rro_and_symlinked_sources() {
        let pod = PodDir::new();
        fs::create_dir(pod.path("real")).unwrap();
        std::os::unix::fs::symlink(pod.path("real"), pod.path("link")).unwrap();
        let mut ro = cri_mount("/ro", &pod.path("link"));
        ro.readonly = true;
        let mut rro = cri_mount("/rro", &pod.path("real"));
        rro.readonly = true;
        rro.recursive_read_only = true;
        let config = ContainerConfig {
            mounts: vec![ro, rro],
            ..Default::default()
        };
        let m = container_mounts(
            &config,
            &SandboxContext::default(),
            ShmSource::Private,
            false,
            false,
        )
        .unwrap();
        assert_eq!(options_of(&m, "/ro"), vec!["rbind", "rprivate", "ro"]);
        assert_eq!(options_of(&m, "/rro"), vec!["rbind", "rprivate", "rro"]);
        let src = m
            .list
            .iter()
            .find(|m| m.destination() == Path::new("/ro"))
            .unwrap()
            .source()
            .clone();
        assert_eq!(src, Some(pod.path("real").canonicalize().unwrap()));
    }

    #[test]
    fn invalid_mounts_name_the_field() {
        let pod = PodDir::new();
        let ok = cri_mount("/ok", &pod.path("ok"));
        let cases: Vec<(CriMount, &str)> = vec![
            (
                cri_mount("relative/path", &pod.path("x")),
                "mounts[1].container_path",
            ),
            (
                CriMount {
                    container_path: "/x".into(),
                    ..Default::default()
                },
                "mounts[1].host_path",
            ),
            (
                CriMount {
                    container_path: "/x".into(),
                    image: Some(ImageSpec {
                        image: "sha256:abc".into(),
                        ..Default::default()
                    }),
                    ..Default::default()
                },
                "mounts[1].host_path",
            ),
            (
                CriMount {
                    recursive_read_only: true,
                    ..cri_mount("/x", &pod.path("x"))
                },
                "mounts[1].recursive_read_only",
            ),
            (
                CriMount {
                    recursive_read_only: true,
                    readonly: true,
                    propagation: MountPropagation::PropagationHostToContainer as i32,
                    ..cri_mount("/x", &pod.path("x"))
                },
                // The propagation check runs first and fails on a private host mount,
                // or, on a slave host mount, the recursive read-only check fails.
                "mounts[1].",
            ),
            (
                CriMount {
                    propagation: 7,
                    ..cri_mount("/x", &pod.path("x"))
                },
                "mounts[1].propagation",
            ),
        ];
        for (bad, field) in cases {
            let config = ContainerConfig {
                mounts: vec![ok.clone(), bad.clone()],
                ..Default::default()
            };
            let err = container_mounts(
                &config,
                &SandboxContext::default(),
                ShmSource::Private,
                false,
                false,
            )
            .unwrap_err();
            let got = err.field().unwrap_or_default();
            assert!(got.starts_with(field), "{bad:?}: {err}");
        }
    }

    #[test]
    fn mountinfo_lookup() {
        let info = "22 27 0:21 / /proc rw,relatime - proc proc rw\n\
                    27 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw\n\
                    30 27 0:30 / /var/lib rw,relatime master:5 - tmpfs tmpfs rw\n\
                    31 27 0:31 / /mnt/with\\040space rw - tmpfs tmpfs rw\n\
                    32 30 0:32 / /var/lib rw - tmpfs tmpfs rw\n";
        let m = mount_of(info, Path::new("/home/user")).unwrap();
        assert_eq!(m.mount_point, PathBuf::from("/"));
        assert_eq!(m.optional, vec!["shared:1"]);
        // The latest of stacked mounts wins.
        let m = mount_of(info, Path::new("/var/lib/x")).unwrap();
        assert!(m.optional.is_empty());
        let m = mount_of(info, Path::new("/mnt/with space/a")).unwrap();
        assert_eq!(m.mount_point, PathBuf::from("/mnt/with space"));
        // Prefixes match whole components only.
        let m = mount_of(info, Path::new("/procfoo")).unwrap();
        assert_eq!(m.mount_point, PathBuf::from("/"));
    }

    #[test]
    fn image_volumes_become_directories() {
        let rootfs = tempfile::tempdir().unwrap();
        let image = ConfigBuilder::default()
            .volumes(vec![
                "/var/lib/db".to_string(),
                "cache".to_string(),
                "/mounted".to_string(),
            ])
            .build()
            .unwrap();
        let config = ContainerConfig {
            mounts: vec![cri_mount("/mounted", rootfs.path())],
            ..Default::default()
        };
        let made = image_volumes(&config, Some(&image), rootfs.path(), "c1").unwrap();
        assert_eq!(made, vec!["/var/lib/db", "/cache"]);
        assert!(rootfs.path().join("var/lib/db").is_dir());
        assert!(rootfs.path().join("cache").is_dir());
        assert!(!rootfs.path().join("mounted").exists());
    }

    #[test]
    fn clean_and_depth() {
        assert_eq!(clean("/a/./b/../c/"), "/a/c");
        assert_eq!(clean("/"), "/");
        assert_eq!(depth("/"), 1);
        assert_eq!(depth("/a/b"), 2);
    }
}
