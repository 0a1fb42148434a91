//! `subPath` mounts: a path inside a volume, created as a directory when
//! missing (as kubelet does), and refused when it leaves the volume
//! (`..`, absolute paths, symlinks pointing out).

use std::path::{Component, Path, PathBuf};

/// The host path of `sub` inside the volume at `base`.
pub fn resolve(base: &Path, sub: &str) -> Result<PathBuf, String> {
    let relative = Path::new(sub);
    if relative.is_absolute() {
        return Err(format!("subPath {sub:?} must be a relative path"));
    }
    if relative
        .components()
        .any(|c| matches!(c, Component::ParentDir))
    {
        return Err(format!("subPath {sub:?} must not contain '..'"));
    }
    let path = base.join(relative);
    if std::fs::symlink_metadata(&path).is_err() {
        std::fs::create_dir_all(&path)
            .map_err(|e| format!("creating subPath {}: {e}", path.display()))?;
    }
    let real_base = base
        .canonicalize()
        .map_err(|e| format!("resolving volume path {}: {e}", base.display()))?;
    let real = path
        .canonicalize()
        .map_err(|e| format!("resolving subPath {}: {e}", path.display()))?;
    if !real.starts_with(&real_base) {
        return Err(format!(
            "subpath {:?} not within volume path {:?}",
            real.display().to_string(),
            real_base.display().to_string()
        ));
    }
    Ok(real)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subpaths_stay_inside_the_volume() {
        let dir = tempfile::tempdir().unwrap();
        let base = dir.path().join("vol");
        std::fs::create_dir_all(&base).unwrap();
        let made = resolve(&base, "a/b").unwrap();
        assert!(made.is_dir());
        assert!(resolve(&base, "../x").is_err());
        assert!(resolve(&base, "/etc").is_err());
        std::os::unix::fs::symlink("/etc", base.join("out")).unwrap();
        assert!(
            resolve(&base, "out")
                .unwrap_err()
                .contains("not within volume path")
        );
        std::fs::write(base.join("file"), "x").unwrap();
        std::os::unix::fs::symlink("file", base.join("link")).unwrap();
        assert_eq!(
            resolve(&base, "link").unwrap(),
            base.canonicalize().unwrap().join("file")
        );
    }
}
