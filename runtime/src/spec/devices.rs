//! Device nodes and the device cgroup. Unprivileged containers start from
//! "deny everything" plus the standard character devices every container
//! needs; each requested device adds its node (major/minor, mode and owner
//! read from the host) and a rule with its permissions. Privileged
//! containers get every device of the host's `/dev` and no restriction.

use std::fs;
use std::io;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use k8s_cri::v1::ContainerConfig;
use oci_spec::runtime::{LinuxDevice, LinuxDeviceCgroup, LinuxDeviceType};

use super::SpecError;

/// The device nodes and cgroup rules of a container.
#[derive(Debug, Clone, Default)]
pub(crate) struct Devices {
    /// Nodes created in the container's `/dev`.
    pub nodes: Vec<LinuxDevice>,
    /// Device cgroup rules, in order (later rules win).
    pub rules: Vec<LinuxDeviceCgroup>,
}

/// Character devices every container may use (major, minor; `None` = any).
const DEFAULT_ALLOWED: [(i64, Option<i64>); 9] = [
    (1, Some(3)), // /dev/null
    (1, Some(8)), // /dev/random
    (1, Some(7)), // /dev/full
    (5, Some(0)), // /dev/tty
    (1, Some(5)), // /dev/zero
    (1, Some(9)), // /dev/urandom
    (5, Some(1)), // /dev/console
    (136, None),  // /dev/pts/*
    (5, Some(2)), // /dev/ptmx
];

/// Directories of the host's `/dev` that hold no devices to copy (or that
/// the container gets by other means), as containerd skips them.
const SKIPPED_DEV_DIRS: [&str; 7] = ["pts", "shm", "fd", "mqueue", ".lxc", ".lxd-mounts", ".udev"];

/// Builds the container's devices.
pub(crate) fn container_devices(
    config: &ContainerConfig,
    privileged: bool,
) -> Result<Devices, SpecError> {
    let mut devices = Devices::default();
    if privileged {
        devices.nodes = host_devices(Path::new("/dev"), None)
            .map_err(|e| SpecError::io("list devices in", "/dev", e))?;
        devices.rules.push(rule(true, None, None, None, "rwm"));
    } else {
        devices.rules.push(rule(false, None, None, None, "rwm"));
        for (major, minor) in DEFAULT_ALLOWED {
            devices.rules.push(rule(
                true,
                Some(LinuxDeviceType::C),
                Some(major),
                minor,
                "rwm",
            ));
        }
    }

    let mut requested: Vec<k8s_cri::v1::Device> = config.devices.clone();
    // As containerd: a TTY container that mounts the host's /dev also gets
    // the host's console, unless it asks for one itself.
    let mounts_host_dev = config
        .mounts
        .iter()
        .any(|m| m.container_path == "/dev" && m.host_path == "/dev");
    if config.tty
        && mounts_host_dev
        && !requested
            .iter()
            .any(|d| d.container_path == "/dev/console" && !d.host_path.is_empty())
    {
        requested.push(k8s_cri::v1::Device {
            container_path: "/dev/console".into(),
            host_path: "/dev/console".into(),
            permissions: "rwm".into(),
        });
    }

    for (i, d) in requested.iter().enumerate() {
        let field = format!("devices[{i}]");
        if !d.container_path.is_empty() && !d.container_path.starts_with('/') {
            return Err(SpecError::invalid(
                format!("{field}.container_path"),
                format!("{:?} is not an absolute path", d.container_path),
            ));
        }
        let access = permissions(&d.permissions).ok_or_else(|| {
            SpecError::invalid(
                format!("{field}.permissions"),
                format!("{:?} is not a combination of r, w and m", d.permissions),
            )
        })?;
        let container_path =
            (!d.container_path.is_empty()).then(|| PathBuf::from(&d.container_path));
        let nodes =
            requested_device(Path::new(&d.host_path), container_path.as_deref()).map_err(|e| {
                match e.kind() {
                    io::ErrorKind::NotFound => SpecError::NotFound {
                        what: format!("device {} ({field}.host_path)", d.host_path),
                    },
                    io::ErrorKind::InvalidInput => {
                        SpecError::invalid(format!("{field}.host_path"), e.to_string())
                    }
                    _ => SpecError::io("read device", &d.host_path, e),
                }
            })?;
        for node in nodes {
            devices.rules.push(rule(
                true,
                Some(node.typ()),
                Some(node.major()),
                Some(node.minor()),
                &access,
            ));
            devices.nodes.push(node);
        }
    }
    Ok(devices)
}

/// `rwm` letters, deduplicated in canonical order; empty means all.
fn permissions(p: &str) -> Option<String> {
    if !p.chars().all(|c| matches!(c, 'r' | 'w' | 'm')) {
        return None;
    }
    if p.is_empty() {
        return Some("rwm".to_string());
    }
    Some(['r', 'w', 'm'].iter().filter(|c| p.contains(**c)).collect())
}

/// The device(s) at a requested host path: one node (symlinks followed, so
/// udev names like `/dev/disk/by-id/...` work) or every node in a directory.
fn requested_device(host: &Path, container: Option<&Path>) -> io::Result<Vec<LinuxDevice>> {
    let meta = fs::metadata(host)?;
    if meta.is_dir() {
        return host_devices(host, container);
    }
    let real = fs::canonicalize(host)?;
    match device_from(&real, &meta)? {
        Some(mut dev) => {
            dev.set_path(container.map_or(host.to_path_buf(), Path::to_path_buf));
            Ok(vec![dev])
        }
        None => Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{} is not a device node", host.display()),
        )),
    }
}

/// Every device node under `dir` (recursively, not following links), with
/// paths re-rooted at `container` when given.
fn host_devices(dir: &Path, container: Option<&Path>) -> io::Result<Vec<LinuxDevice>> {
    let mut out = Vec::new();
    let mut entries: Vec<_> = fs::read_dir(dir)?.collect::<Result<_, _>>()?;
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let name = entry.file_name();
        let path = entry.path();
        let meta = match fs::symlink_metadata(&path) {
            Ok(m) => m,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        let target = container.map(|c| c.join(&name));
        if meta.is_dir() {
            if SKIPPED_DEV_DIRS.iter().any(|s| name == *s) {
                continue;
            }
            out.extend(host_devices(&path, target.as_deref())?);
            continue;
        }
        if name == "console" {
            continue;
        }
        if let Some(mut dev) = device_from(&path, &meta)? {
            if let Some(target) = target {
                dev.set_path(target);
            }
            out.push(dev);
        }
    }
    Ok(out)
}

/// A character or block device's description; `None` for anything else.
fn device_from(path: &Path, meta: &fs::Metadata) -> io::Result<Option<LinuxDevice>> {
    let ft = meta.file_type();
    let typ = if ft.is_char_device() {
        LinuxDeviceType::C
    } else if ft.is_block_device() {
        LinuxDeviceType::B
    } else {
        return Ok(None);
    };
    let rdev = meta.rdev();
    let mut dev = LinuxDevice::default();
    dev.set_path(path.to_path_buf());
    dev.set_typ(typ);
    dev.set_major(major(rdev) as i64);
    dev.set_minor(minor(rdev) as i64);
    dev.set_file_mode(Some(meta.mode() & 0o7777));
    dev.set_uid(Some(meta.uid()));
    dev.set_gid(Some(meta.gid()));
    Ok(Some(dev))
}

/// glibc's `gnu_dev_major`.
fn major(dev: u64) -> u64 {
    ((dev >> 8) & 0xfff) | ((dev >> 32) & 0xffff_f000)
}

/// glibc's `gnu_dev_minor`.
fn minor(dev: u64) -> u64 {
    (dev & 0xff) | ((dev >> 12) & 0xffff_ff00)
}

fn rule(
    allow: bool,
    typ: Option<LinuxDeviceType>,
    major: Option<i64>,
    minor: Option<i64>,
    access: &str,
) -> LinuxDeviceCgroup {
    let mut r = LinuxDeviceCgroup::default();
    r.set_allow(allow);
    r.set_typ(typ);
    r.set_major(major);
    r.set_minor(minor);
    r.set_access(Some(access.to_string()));
    r
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_cri::v1::{Device, Mount};

    fn device(host: &str, container: &str, perms: &str) -> Device {
        Device {
            host_path: host.into(),
            container_path: container.into(),
            permissions: perms.into(),
        }
    }

    #[test]
    fn requested_devices_read_numbers_from_the_host() {
        let config = ContainerConfig {
            devices: vec![
                device("/dev/null", "/dev/mynull", "rw"),
                device("/dev/zero", "", ""),
            ],
            ..Default::default()
        };
        let d = container_devices(&config, false).unwrap();
        assert_eq!(d.nodes.len(), 2);
        let null = &d.nodes[0];
        assert_eq!(null.path(), Path::new("/dev/mynull"));
        assert_eq!(
            (null.typ(), null.major(), null.minor()),
            (LinuxDeviceType::C, 1, 3)
        );
        assert_eq!(d.nodes[1].path(), Path::new("/dev/zero"));
        // Deny all first, the defaults, then the requested rules.
        assert!(!d.rules[0].allow());
        assert_eq!(d.rules[0].access().as_deref(), Some("rwm"));
        assert_eq!(d.rules.len(), 1 + DEFAULT_ALLOWED.len() + 2);
        let last = d.rules.last().unwrap();
        assert_eq!(
            (last.major(), last.minor(), last.access().as_deref()),
            (Some(1), Some(5), Some("rwm"))
        );
        let null_rule = &d.rules[d.rules.len() - 2];
        assert_eq!(null_rule.access().as_deref(), Some("rw"));
    }

    #[test]
    fn device_errors_name_the_field() {
        let cases = [
            (device("/dev/does-not-exist", "/dev/x", "rwm"), None),
            (
                device("/dev/null", "relative", "rwm"),
                Some("devices[0].container_path"),
            ),
            (
                device("/dev/null", "/dev/x", "rwx"),
                Some("devices[0].permissions"),
            ),
            (
                device("/etc/passwd", "/dev/x", "r"),
                Some("devices[0].host_path"),
            ),
        ];
        for (dev, field) in cases {
            let config = ContainerConfig {
                devices: vec![dev.clone()],
                ..Default::default()
            };
            let err = container_devices(&config, false).unwrap_err();
            assert_eq!(err.field(), field, "{dev:?}: {err}");
            if field.is_none() {
                assert!(matches!(err, SpecError::NotFound { .. }), "{err}");
                assert!(err.to_string().contains("devices[0].host_path"), "{err}");
            }
        }
    }

    #[test]
    fn directories_expand_to_their_devices() {
        let d = requested_device(Path::new("/dev"), Some(Path::new("/host-dev"))).unwrap();
        assert!(d.iter().any(|n| n.path() == Path::new("/host-dev/null")));
        assert!(!d.iter().any(|n| n.path().starts_with("/host-dev/pts")));
    }

    #[test]
    fn privileged_gets_host_devices_and_no_restriction() {
        let d = container_devices(&ContainerConfig::default(), true).unwrap();
        assert!(d.nodes.iter().any(|n| n.path() == Path::new("/dev/null")));
        assert!(
            !d.nodes
                .iter()
                .any(|n| n.path() == Path::new("/dev/console"))
        );
        assert_eq!(d.rules.len(), 1);
        assert!(d.rules[0].allow());
        assert_eq!(d.rules[0].typ(), None);
    }

    #[test]
    fn tty_with_host_dev_gets_the_console() {
        let config = ContainerConfig {
            tty: true,
            mounts: vec![Mount {
                container_path: "/dev".into(),
                host_path: "/dev".into(),
                ..Default::default()
            }],
            ..Default::default()
        };
        match container_devices(&config, false) {
            Ok(d) => assert!(
                d.nodes
                    .iter()
                    .any(|n| n.path() == Path::new("/dev/console"))
            ),
            // Hosts without a console node (some VMs) cannot give one.
            Err(SpecError::NotFound { what }) => assert!(what.contains("/dev/console")),
            Err(e) => panic!("{e}"),
        }
    }

    #[test]
    fn permission_strings() {
        assert_eq!(permissions("mrw").as_deref(), Some("rwm"));
        assert_eq!(permissions("rr").as_deref(), Some("r"));
        assert_eq!(permissions("").as_deref(), Some("rwm"));
        assert_eq!(permissions("x"), None);
    }

    #[test]
    fn device_numbers() {
        // glibc's makedev, for a major and minor with high bits set.
        let makedev = |major: u64, minor: u64| {
            ((major & 0xfff) << 8)
                | ((major & !0xfff) << 32)
                | (minor & 0xff)
                | ((minor & !0xff) << 12)
        };
        assert_eq!(
            (major(makedev(4100, 70000)), minor(makedev(4100, 70000))),
            (4100, 70000)
        );
        assert_eq!((major(makedev(1, 3)), minor(makedev(1, 3))), (1, 3));
    }
}
