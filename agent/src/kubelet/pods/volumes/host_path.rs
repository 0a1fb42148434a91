//! hostPath volumes: the host's path itself, checked (or created) as its
//! `type` asks, with kubelet's messages.

use std::fs;
use std::io;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::Path;

/// Checks `path` against hostPath type `kind` (`""`: no check), creating
/// it for `DirectoryOrCreate` and `FileOrCreate`.
pub fn check(path: &Path, kind: &str) -> Result<(), String> {
    let shown = path.display();
    let failed = |what: &str| format!("hostPath type check failed: {shown} is not {what}");
    let meta = fs::metadata(path);
    match kind {
        "" => Ok(()),
        "DirectoryOrCreate" => match meta {
            Ok(m) if m.is_dir() => Ok(()),
            Ok(_) => Err(failed("a directory")),
            Err(err) if err.kind() == io::ErrorKind::NotFound => {
                fs::create_dir_all(path).map_err(|e| format!("creating {shown}: {e}"))?;
                fs::set_permissions(path, fs::Permissions::from_mode(0o755))
                    .map_err(|e| format!("chmod {shown}: {e}"))
            }
            Err(err) => Err(format!("checking {shown}: {err}")),
        },
        "FileOrCreate" => match meta {
            Ok(m) if m.is_file() => Ok(()),
            Ok(_) => Err(failed("a file")),
            Err(err) if err.kind() == io::ErrorKind::NotFound => {
                fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)
                    .map_err(|e| format!("creating {shown}: {e}"))?;
                fs::set_permissions(path, fs::Permissions::from_mode(0o644))
                    .map_err(|e| format!("chmod {shown}: {e}"))
            }
            Err(err) => Err(format!("checking {shown}: {err}")),
        },
        "Directory" => meta
            .ok()
            .filter(|m| m.is_dir())
            .map(|_| ())
            .ok_or_else(|| failed("a directory")),
        "File" => meta
            .ok()
            .filter(|m| m.is_file())
            .map(|_| ())
            .ok_or_else(|| failed("a file")),
        "Socket" => meta
            .ok()
            .filter(|m| m.file_type().is_socket())
            .map(|_| ())
            .ok_or_else(|| failed("a socket file")),
        "CharDevice" => meta
            .ok()
            .filter(|m| m.file_type().is_char_device())
            .map(|_| ())
            .ok_or_else(|| failed("a character device")),
        "BlockDevice" => meta
            .ok()
            .filter(|m| m.file_type().is_block_device())
            .map(|_| ())
            .ok_or_else(|| failed("a block device")),
        other => Err(format!("hostPath type {other:?} is not supported")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn types_are_checked_and_created() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().join("made/here");
        check(&d, "DirectoryOrCreate").unwrap();
        assert!(d.is_dir());
        let f = dir.path().join("file");
        check(&f, "FileOrCreate").unwrap();
        assert!(f.is_file());
        check(&f, "File").unwrap();
        check(&d, "Directory").unwrap();
        assert_eq!(
            check(&f, "Directory").unwrap_err(),
            format!(
                "hostPath type check failed: {} is not a directory",
                f.display()
            )
        );
        assert_eq!(
            check(&d, "FileOrCreate").unwrap_err(),
            format!("hostPath type check failed: {} is not a file", d.display())
        );
        assert!(check(&dir.path().join("missing"), "Socket").is_err());
        assert!(check(Path::new("/dev/null"), "CharDevice").is_ok());
        check(&dir.path().join("anything"), "").unwrap();
    }
}
