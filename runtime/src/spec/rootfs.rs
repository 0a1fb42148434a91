//! Paths inside a container's root filesystem, resolved as the container
//! would see them: symlinks are followed relative to the rootfs and `..`
//! never climbs out of it, so an image whose `/etc/passwd` links to
//! `/etc/shadow` (or `../../..`) can never make the runtime read or create
//! host files.

use std::fs;
use std::io;
use std::path::{Component, Path, PathBuf};

/// Linux's limit on symlinks followed while resolving one path.
const MAX_SYMLINKS: usize = 40;

/// Resolves `path` (absolute or relative, as seen inside the container)
/// within `root`, following symlinks as the container would, and returns
/// the host path. Fails with `NotFound` when a component does not exist.
pub(crate) fn resolve_in_root(root: &Path, path: &Path) -> io::Result<PathBuf> {
    let (resolved, missing) = resolve_existing_prefix(root, path)?;
    if let Some(first) = missing.first() {
        return Err(io::Error::new(
            io::ErrorKind::NotFound,
            format!("{} has no {first:?}", root.join(&resolved).display()),
        ));
    }
    Ok(root.join(resolved))
}

/// Creates directory `path` (as seen inside the container) under `root`,
/// with its missing parents, resolving existing components within `root`.
/// Returns the host path of the directory.
pub(crate) fn mkdir_in_root(root: &Path, path: &Path) -> io::Result<PathBuf> {
    let (resolved, missing) = resolve_existing_prefix(root, path)?;
    let mut host = root.join(resolved);
    for part in missing {
        host.push(part);
        match fs::create_dir(&host) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists && host.is_dir() => {}
            Err(e) => return Err(e),
        }
    }
    if !host.is_dir() {
        return Err(io::Error::new(
            io::ErrorKind::AlreadyExists,
            format!("{} exists and is not a directory", host.display()),
        ));
    }
    Ok(host)
}

/// Walks `path` inside `root`: returns the resolved path (relative to
/// `root`, free of symlinks) of the longest existing prefix, and the
/// components after it that do not exist.
fn resolve_existing_prefix(root: &Path, path: &Path) -> io::Result<(PathBuf, Vec<String>)> {
    let mut pending: Vec<String> = components(path);
    pending.reverse();
    let mut resolved: Vec<String> = Vec::new();
    let mut followed = 0;
    while let Some(part) = pending.pop() {
        if part == ".." {
            resolved.pop();
            continue;
        }
        let candidate: PathBuf = resolved.iter().chain(std::iter::once(&part)).collect();
        let meta = match fs::symlink_metadata(root.join(&candidate)) {
            Ok(m) => m,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                let mut missing = vec![part];
                missing.extend(pending.into_iter().rev());
                if missing.iter().any(|p| p == "..") {
                    // `missing/..` cannot be resolved without creating `missing`.
                    return Err(io::Error::new(
                        io::ErrorKind::NotFound,
                        format!("{} does not exist", root.join(&candidate).display()),
                    ));
                }
                return Ok((resolved.iter().collect(), missing));
            }
            Err(e) => return Err(e),
        };
        if meta.file_type().is_symlink() {
            followed += 1;
            if followed > MAX_SYMLINKS {
                return Err(io::Error::other(format!(
                    "too many symlinks resolving {} in {}",
                    path.display(),
                    root.display()
                )));
            }
            let target = fs::read_link(root.join(&candidate))?;
            if target.is_absolute() {
                resolved.clear();
            }
            let mut more = components(&target);
            more.reverse();
            pending.extend(more);
            continue;
        }
        if !meta.is_dir() && !pending.is_empty() {
            return Err(io::Error::new(
                io::ErrorKind::NotADirectory,
                format!("{} is not a directory", root.join(&candidate).display()),
            ));
        }
        resolved.push(part);
    }
    Ok((resolved.iter().collect(), Vec::new()))
}

/// The normal and `..` components of a path; `/` and `.` say nothing here.
fn components(path: &Path) -> Vec<String> {
    path.components()
        .filter_map(|c| match c {
            Component::Normal(s) => Some(s.to_string_lossy().into_owned()),
            Component::ParentDir => Some("..".to_string()),
            Component::RootDir | Component::CurDir | Component::Prefix(_) => None,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    #[test]
    fn absolute_symlinks_stay_inside_root() {
        let root = tempfile::tempdir().unwrap();
        fs::create_dir_all(root.path().join("etc")).unwrap();
        fs::create_dir_all(root.path().join("data")).unwrap();
        fs::write(root.path().join("data/passwd"), "x").unwrap();
        symlink("/data/passwd", root.path().join("etc/passwd")).unwrap();
        let got = resolve_in_root(root.path(), Path::new("/etc/passwd")).unwrap();
        assert_eq!(got, root.path().join("data/passwd"));
    }

    #[test]
    fn dotdot_is_clamped_at_root() {
        let root = tempfile::tempdir().unwrap();
        fs::create_dir_all(root.path().join("etc")).unwrap();
        fs::write(root.path().join("group"), "x").unwrap();
        symlink("../../../../group", root.path().join("etc/group")).unwrap();
        let got = resolve_in_root(root.path(), Path::new("etc/group")).unwrap();
        assert_eq!(got, root.path().join("group"));
    }

    #[test]
    fn missing_components_are_not_found() {
        let root = tempfile::tempdir().unwrap();
        let err = resolve_in_root(root.path(), Path::new("/etc/passwd")).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::NotFound);
    }

    #[test]
    fn symlink_loops_fail() {
        let root = tempfile::tempdir().unwrap();
        symlink("/b", root.path().join("a")).unwrap();
        symlink("/a", root.path().join("b")).unwrap();
        assert!(resolve_in_root(root.path(), Path::new("/a")).is_err());
    }

    #[test]
    fn mkdir_follows_links_inside_root() {
        let root = tempfile::tempdir().unwrap();
        fs::create_dir_all(root.path().join("real")).unwrap();
        symlink("/real", root.path().join("var")).unwrap();
        let made = mkdir_in_root(root.path(), Path::new("/var/lib/data")).unwrap();
        assert_eq!(made, root.path().join("real/lib/data"));
        assert!(made.is_dir());
        // Idempotent.
        assert_eq!(
            mkdir_in_root(root.path(), Path::new("/var/lib/data")).unwrap(),
            made
        );
    }

    #[test]
    fn mkdir_refuses_a_file() {
        let root = tempfile::tempdir().unwrap();
        fs::write(root.path().join("file"), "x").unwrap();
        assert!(mkdir_in_root(root.path(), Path::new("/file")).is_err());
    }
}
