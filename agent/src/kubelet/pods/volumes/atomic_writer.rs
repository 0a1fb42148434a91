//! kubelet's atomic writer: the files of a configMap, secret, downwardAPI
//! or projected volume live in a timestamped directory `..<time>`, reached
//! through the symlink `..data`; each visible name is a symlink into
//! `..data`. An update writes a new directory and swaps `..data` with one
//! rename, so a reader sees the old set of files or the new one, never a
//! mix, and updates appear in running containers.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::{Component, Path};

/// The symlink to the current files.
const DATA: &str = "..data";
/// The symlink being made before it replaces [`DATA`].
const DATA_TMP: &str = "..data_tmp";

/// One file of a volume.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileProjection {
    /// Its bytes.
    pub data: Vec<u8>,
    /// Its mode.
    pub mode: u32,
}

/// Files by relative path.
pub type Payload = BTreeMap<String, FileProjection>;

/// Why files could not be written.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    /// A path of the payload is absolute, has `..`, or starts with `..`.
    #[error("invalid path {0:?}: must be relative, without '..' elements, not starting with '..'")]
    InvalidPath(String),
    /// A file operation failed.
    #[error("{what} {path}: {source}")]
    Io {
        /// The operation.
        what: &'static str,
        /// On what.
        path: String,
        /// Why.
        source: io::Error,
    },
}

fn io_err<'a>(what: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> WriteError + 'a {
    move |source| WriteError::Io {
        what,
        path: path.display().to_string(),
        source,
    }
}

fn validate(path: &str) -> Result<(), WriteError> {
    let invalid = || WriteError::InvalidPath(path.to_owned());
    if path.is_empty() || path.starts_with("..") {
        return Err(invalid());
    }
    for component in Path::new(path).components() {
        match component {
            Component::Normal(_) => {}
            _ => return Err(invalid()),
        }
    }
    Ok(())
}

/// The first component of a payload path (what gets a visible symlink).
fn top_level(path: &str) -> &str {
    path.split('/').next().unwrap_or(path)
}

/// Whether the directory `dir` already holds exactly `payload`.
fn holds(dir: &Path, payload: &Payload) -> bool {
    let mut found = BTreeSet::new();
    if collect_files(dir, dir, &mut found).is_err() {
        return false;
    }
    if found.len() != payload.len() {
        return false;
    }
    payload.iter().all(|(path, file)| {
        let full = dir.join(path);
        found.contains(path)
            && fs::read(&full).is_ok_and(|data| data == file.data)
            && fs::metadata(&full).is_ok_and(|m| m.permissions().mode() & 0o7777 == file.mode)
    })
}

fn collect_files(root: &Path, dir: &Path, out: &mut BTreeSet<String>) -> io::Result<()> {
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let path = entry.path();
        if entry.file_type()?.is_dir() {
            collect_files(root, &path, out)?;
        } else if let Ok(rel) = path.strip_prefix(root) {
            out.insert(rel.display().to_string());
        }
    }
    Ok(())
}

/// A name for a new data directory, unique within the volume.
fn new_data_dir_name(dir: &Path) -> String {
    let now = k8s_openapi::jiff::Timestamp::now();
    let stamp = k8s_openapi::jiff::fmt::strtime::format("%Y_%m_%d_%H_%M_%S", now)
        .unwrap_or_else(|_| now.as_second().to_string());
    let mut n = now.subsec_nanosecond();
    loop {
        let name = format!("..{stamp}.{n:09}");
        if !dir.join(&name).exists() {
            return name;
        }
        n = n.wrapping_add(1);
    }
}

/// Makes `dir` hold exactly `payload`. Returns whether anything changed.
pub fn write(dir: &Path, payload: &Payload) -> Result<bool, WriteError> {
    for path in payload.keys() {
        validate(path)?;
    }
    fs::create_dir_all(dir).map_err(io_err("create directory", dir))?;
    let current = fs::read_link(dir.join(DATA)).ok();
    if let Some(current) = &current
        && holds(&dir.join(current), payload)
    {
        return Ok(false);
    }
    let name = new_data_dir_name(dir);
    let data_dir = dir.join(&name);
    fs::create_dir(&data_dir).map_err(io_err("create directory", &data_dir))?;
    fs::set_permissions(&data_dir, fs::Permissions::from_mode(0o755))
        .map_err(io_err("chmod", &data_dir))?;
    for (path, file) in payload {
        let full = data_dir.join(path);
        if let Some(parent) = full.parent() {
            fs::create_dir_all(parent).map_err(io_err("create directory", parent))?;
        }
        fs::write(&full, &file.data).map_err(io_err("write", &full))?;
        fs::set_permissions(&full, fs::Permissions::from_mode(file.mode))
            .map_err(io_err("chmod", &full))?;
    }
    let tmp = dir.join(DATA_TMP);
    let _ = fs::remove_file(&tmp);
    symlink(&name, &tmp).map_err(io_err("symlink", &tmp))?;
    fs::rename(&tmp, dir.join(DATA)).map_err(io_err("rename", &tmp))?;

    let wanted: BTreeSet<&str> = payload.keys().map(|p| top_level(p)).collect();
    for top in &wanted {
        let link = dir.join(top);
        if fs::symlink_metadata(&link).is_err() {
            symlink(Path::new(DATA).join(top), &link).map_err(io_err("symlink", &link))?;
        }
    }
    for entry in fs::read_dir(dir).map_err(io_err("read directory", dir))? {
        let entry = entry.map_err(io_err("read directory", dir))?;
        let file_name = entry.file_name().to_string_lossy().into_owned();
        if file_name.starts_with("..") || wanted.contains(file_name.as_str()) {
            continue;
        }
        let is_link = entry.file_type().is_ok_and(|t| t.is_symlink());
        if is_link {
            let _ = fs::remove_file(entry.path());
        }
    }
    if let Some(old) = current {
        let old_dir = dir.join(old);
        if old_dir != data_dir {
            let _ = fs::remove_dir_all(old_dir);
        }
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn payload(files: &[(&str, &str, u32)]) -> Payload {
        files
            .iter()
            .map(|(p, d, m)| {
                (
                    p.to_string(),
                    FileProjection {
                        data: d.as_bytes().to_vec(),
                        mode: *m,
                    },
                )
            })
            .collect()
    }

    #[test]
    fn files_appear_through_the_data_symlink() {
        let dir = tempfile::tempdir().unwrap();
        let v = dir.path().join("vol");
        assert!(write(&v, &payload(&[("a", "1", 0o644), ("sub/b", "2", 0o600)])).unwrap());
        assert_eq!(fs::read_to_string(v.join("a")).unwrap(), "1");
        assert_eq!(fs::read_to_string(v.join("sub/b")).unwrap(), "2");
        assert_eq!(fs::read_link(v.join("a")).unwrap(), Path::new("..data/a"));
        let mode = fs::metadata(v.join("sub/b")).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }

    #[test]
    fn unchanged_payloads_write_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let p = payload(&[("a", "1", 0o644)]);
        assert!(write(dir.path(), &p).unwrap());
        let before = fs::read_link(dir.path().join(DATA)).unwrap();
        assert!(!write(dir.path(), &p).unwrap());
        assert_eq!(fs::read_link(dir.path().join(DATA)).unwrap(), before);
    }

    #[test]
    fn updates_swap_the_data_and_drop_old_names() {
        let dir = tempfile::tempdir().unwrap();
        let v = dir.path();
        write(v, &payload(&[("a", "1", 0o644), ("gone", "x", 0o644)])).unwrap();
        let old = fs::read_link(v.join(DATA)).unwrap();
        assert!(write(v, &payload(&[("a", "2", 0o644), ("new", "y", 0o644)])).unwrap());
        assert_eq!(fs::read_to_string(v.join("a")).unwrap(), "2");
        assert_eq!(fs::read_to_string(v.join("new")).unwrap(), "y");
        assert!(fs::symlink_metadata(v.join("gone")).is_err());
        assert!(!v.join(&old).exists(), "the old data directory is removed");
        let entries: Vec<String> = fs::read_dir(v)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            entries.len(),
            4,
            "{entries:?}: ..data, one data dir, a, new"
        );
    }

    #[test]
    fn escaping_paths_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        for bad in ["../x", "/etc/x", "..x", "a/../../x", ""] {
            assert!(
                matches!(
                    write(dir.path(), &payload(&[(bad, "1", 0o644)])),
                    Err(WriteError::InvalidPath(_))
                ),
                "{bad}"
            );
        }
    }
}
