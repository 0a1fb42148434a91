//! What one tar entry asks for, parsed and checked before anything touches
//! the disk.

use std::ffi::{OsStr, OsString};
use std::io::Read;
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;

use super::UnpackError;

/// Seconds and nanoseconds since the epoch, as `utimensat` wants them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Timestamp {
    pub sec: i64,
    pub nsec: u32,
}

impl Timestamp {
    pub fn to_timespec(self) -> libc::timespec {
        libc::timespec {
            tv_sec: self.sec,
            tv_nsec: i64::from(self.nsec),
        }
    }

    /// Parses a PAX time (`1700000000`, `1700000000.5`, `-1.25`).
    fn parse_pax(value: &[u8]) -> Option<Self> {
        let text = std::str::from_utf8(value).ok()?;
        let (negative, unsigned) = match text.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, text),
        };
        let (whole, frac) = unsigned.split_once('.').unwrap_or((unsigned, ""));
        let sec: i64 = whole.parse().ok()?;
        if !frac.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        // Only the first nine digits matter; pad short fractions with zeros.
        let digits: String = frac.chars().chain(std::iter::repeat('0')).take(9).collect();
        let nsec: u32 = digits.parse().ok()?;
        Some(match (negative, nsec) {
            (false, _) => Self { sec, nsec },
            (true, 0) => Self { sec: -sec, nsec: 0 },
            (true, _) => Self {
                sec: -sec - 1,
                nsec: 1_000_000_000 - nsec,
            },
        })
    }
}

/// The kind of filesystem object an entry creates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Kind {
    File,
    Dir,
    /// The target exactly as recorded; never interpreted while unpacking.
    Symlink(OsString),
    /// Another entry of the same layer, as a normalized relative path.
    HardLink(PathBuf),
    CharDevice(libc::dev_t),
    BlockDevice(libc::dev_t),
    Fifo,
}

/// One entry's metadata, with its path normalized below the layer root.
#[derive(Debug)]
pub(super) struct EntryMeta {
    /// Relative, without `.`/`..`/empty components; empty for the root itself.
    pub path: PathBuf,
    /// The name as the tar spells it, for error messages.
    pub name: String,
    pub kind: Kind,
    /// Permission bits including setuid/setgid/sticky.
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub mtime: Timestamp,
    pub atime: Timestamp,
    pub xattrs: Vec<(OsString, Vec<u8>)>,
}

impl EntryMeta {
    /// Reads the header and PAX records of `entry`; `None` for entries that
    /// describe no file (PAX global headers).
    pub fn parse<R: Read>(entry: &mut tar::Entry<'_, R>) -> Result<Option<Self>, UnpackError> {
        let name = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
        let invalid = |reason: String| UnpackError::Invalid {
            entry: name.clone(),
            reason,
        };
        let header = entry.header();
        let entry_type = header.entry_type();
        if entry_type.is_pax_global_extensions() {
            tracing::debug!(entry = %name, "skipping PAX global header");
            return Ok(None);
        }
        let path = normalize(&entry.path_bytes()).map_err(|reason| UnpackError::Unsafe {
            entry: name.clone(),
            reason: reason.into(),
        })?;
        let field = |what: &str, e: std::io::Error| invalid(format!("bad {what} field: {e}"));
        let device = || -> Result<libc::dev_t, UnpackError> {
            let major = header
                .device_major()
                .map_err(|e| field("device major", e))?;
            let minor = header
                .device_minor()
                .map_err(|e| field("device minor", e))?;
            Ok(libc::makedev(major.unwrap_or(0), minor.unwrap_or(0)))
        };
        let link_target = || {
            entry
                .link_name_bytes()
                .ok_or_else(|| invalid("link entry without a target".into()))
        };
        let kind = match entry_type {
            tar::EntryType::Regular | tar::EntryType::Continuous | tar::EntryType::GNUSparse => {
                Kind::File
            }
            tar::EntryType::Directory => Kind::Dir,
            tar::EntryType::Symlink => Kind::Symlink(OsStr::from_bytes(&link_target()?).into()),
            tar::EntryType::Link => {
                let target = link_target()?;
                let target = normalize(&target).map_err(|reason| UnpackError::Unsafe {
                    entry: name.clone(),
                    reason: format!(
                        "hard link target {:?}: {reason}",
                        String::from_utf8_lossy(&target)
                    ),
                })?;
                Kind::HardLink(target)
            }
            tar::EntryType::Char => Kind::CharDevice(device()?),
            tar::EntryType::Block => Kind::BlockDevice(device()?),
            tar::EntryType::Fifo => Kind::Fifo,
            other => {
                let byte = char::from(other.as_byte());
                return Err(invalid(format!("unsupported entry type {byte:?}")));
            }
        };
        if path.as_os_str().is_empty() && kind != Kind::Dir {
            return Err(invalid("only a directory may name the layer root".into()));
        }
        // Go's archive/tar (which most image builders use) reads an empty
        // numeric field as 0; so do we, where the tar crate would refuse it.
        let old = header.as_old();
        let numeric = |what: &str, raw: &[u8], value: std::io::Result<u64>| match value {
            Err(_) if raw.iter().all(|b| matches!(b, 0 | b' ')) => Ok(0),
            value => value.map_err(|e| field(what, e)),
        };
        let mode = numeric("mode", &old.mode, header.mode().map(u64::from))? as u32 & 0o7777;
        // The tar crate already applied PAX `uid`/`gid` overrides to the header.
        let id = |what: &str, raw: &[u8], value| -> Result<u32, UnpackError> {
            let value = numeric(what, raw, value)?;
            u32::try_from(value).map_err(|_| invalid(format!("{what} {value} out of range")))
        };
        let uid = id("uid", &old.uid, header.uid())?;
        let gid = id("gid", &old.gid, header.gid())?;
        let header_mtime = numeric("mtime", &old.mtime, header.mtime())?;
        let mut mtime = Timestamp {
            sec: i64::try_from(header_mtime).unwrap_or(i64::MAX),
            nsec: 0,
        };
        let mut atime = None;
        let mut xattrs = Vec::new();
        if let Some(records) = entry.pax_extensions().map_err(|e| field("PAX", e))? {
            for record in records {
                let record = record.map_err(|e| field("PAX", e))?;
                let key = record.key_bytes();
                if key == b"mtime" {
                    mtime = Timestamp::parse_pax(record.value_bytes())
                        .ok_or_else(|| invalid("bad PAX mtime".into()))?;
                } else if key == b"atime" {
                    atime = Timestamp::parse_pax(record.value_bytes());
                } else if let Some(xattr) = key.strip_prefix(b"SCHILY.xattr.") {
                    xattrs.push((
                        OsStr::from_bytes(xattr).into(),
                        record.value_bytes().to_vec(),
                    ));
                }
            }
        }
        Ok(Some(Self {
            path,
            name,
            kind,
            mode,
            uid,
            gid,
            mtime,
            atime: atime.unwrap_or(mtime),
            xattrs,
        }))
    }
}

/// Makes `raw` a relative path below the layer root, resolving `.` and `..`
/// lexically (symlinks are never followed, so `a/../b` is `b` whatever `a` is).
pub(super) fn normalize(raw: &[u8]) -> Result<PathBuf, &'static str> {
    if raw.first() == Some(&b'/') {
        return Err("absolute path");
    }
    if raw.contains(&0) {
        return Err("NUL byte in path");
    }
    let mut parts: Vec<&[u8]> = Vec::new();
    for part in raw.split(|b| *b == b'/') {
        match part {
            b"" | b"." => {}
            b".." => {
                if parts.pop().is_none() {
                    return Err("`..` leaves the layer root");
                }
            }
            part => parts.push(part),
        }
    }
    Ok(PathBuf::from(OsStr::from_bytes(&parts.join(&b'/'))))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalize_keeps_paths_below_the_root() {
        let ok = |raw: &str, want: &str| assert_eq!(normalize(raw.as_bytes()), Ok(want.into()));
        ok("etc/passwd", "etc/passwd");
        ok("./etc/passwd", "etc/passwd");
        ok("./usr//bin/./sh/", "usr/bin/sh");
        ok("a/../b", "b");
        ok("./", "");
        ok(".", "");
        assert_eq!(normalize(b"/etc/passwd"), Err("absolute path"));
        assert_eq!(normalize(b"../x"), Err("`..` leaves the layer root"));
        assert_eq!(normalize(b"a/../../x"), Err("`..` leaves the layer root"));
        assert_eq!(normalize(b"./.."), Err("`..` leaves the layer root"));
    }

    #[test]
    fn pax_times_parse_with_fractions_and_signs() {
        let t = |s: &str| Timestamp::parse_pax(s.as_bytes());
        assert_eq!(
            t("1700000000"),
            Some(Timestamp {
                sec: 1_700_000_000,
                nsec: 0
            })
        );
        assert_eq!(
            t("12.5"),
            Some(Timestamp {
                sec: 12,
                nsec: 500_000_000
            })
        );
        assert_eq!(
            t("1.1234567891"),
            Some(Timestamp {
                sec: 1,
                nsec: 123_456_789
            })
        );
        assert_eq!(
            t("-1.25"),
            Some(Timestamp {
                sec: -2,
                nsec: 750_000_000
            })
        );
        assert_eq!(t("abc"), None);
        assert_eq!(t("1.x"), None);
    }
}
