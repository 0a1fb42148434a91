//! tmpfs mounts for memory-backed emptyDirs and for secret and projected
//! volumes (kubelet keeps secrets off the disk), found again in
//! `/proc/self/mountinfo` after a restart, and unmounted at teardown.

use std::io;
use std::path::{Path, PathBuf};

use nix::mount::{MntFlags, MsFlags, mount, umount2};

/// Mount points listed in `/proc/self/mountinfo`.
fn mount_points() -> io::Result<Vec<PathBuf>> {
    let text = std::fs::read_to_string("/proc/self/mountinfo")?;
    Ok(text
        .lines()
        .filter_map(|line| line.split(' ').nth(4))
        .map(|field| PathBuf::from(unescape(field)))
        .collect())
}

/// mountinfo escapes space, tab, newline and backslash as `\ooo`.
fn unescape(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\'
            && let Some(octal) = field.get(i + 1..i + 4)
            && let Ok(value) = u8::from_str_radix(octal, 8)
        {
            out.push(value);
            i += 4;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Whether something is mounted on `path`.
pub fn is_mount_point(path: &Path) -> bool {
    mount_points().is_ok_and(|points| points.iter().any(|p| p == path))
}

/// Mounts a tmpfs on `path` unless one is there; `size` in bytes.
pub fn ensure_tmpfs(path: &Path, size: Option<i64>) -> io::Result<()> {
    std::fs::create_dir_all(path)?;
    if is_mount_point(path) {
        return Ok(());
    }
    let options = size.filter(|s| *s > 0).map(|s| format!("size={s}"));
    mount(
        Some("tmpfs"),
        path,
        Some("tmpfs"),
        MsFlags::empty(),
        options.as_deref(),
    )
    .map_err(io::Error::from)
}

/// Unmounts everything mounted at or below `dir`, deepest first.
pub fn unmount_below(dir: &Path) -> io::Result<()> {
    let mut points: Vec<PathBuf> = mount_points()?
        .into_iter()
        .filter(|p| p.starts_with(dir))
        .collect();
    points.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
    points.dedup();
    for point in points {
        match umount2(&point, MntFlags::MNT_DETACH) {
            Ok(()) | Err(nix::errno::Errno::EINVAL | nix::errno::Errno::ENOENT) => {}
            Err(errno) => return Err(io::Error::from(errno)),
        }
    }
    Ok(())
}

/// Whether anything is still mounted at or below `dir`.
pub fn has_mounts_below(dir: &Path) -> bool {
    mount_points().is_ok_and(|points| points.iter().any(|p| p.starts_with(dir)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mountinfo_escapes_are_undone() {
        assert_eq!(unescape("/a\\040b"), "/a b");
        assert_eq!(unescape("/plain"), "/plain");
        assert_eq!(unescape("/tail\\"), "/tail\\");
        assert_eq!(unescape("/x\\134y"), "/x\\y");
    }

    #[test]
    fn the_root_is_a_mount_point() {
        assert!(is_mount_point(Path::new("/")));
        assert!(!is_mount_point(Path::new("/surely/not/mounted")));
    }
}
