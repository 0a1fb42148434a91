//! A small deterministic tar writer (ustar headers, PAX records for long
//! names, large ids and xattrs).
//!
//! Written by hand rather than with the `tar` crate because the harness must
//! also produce hostile archives (`../escape`, absolute paths, entries under
//! a symlink) that a careful library refuses to write.

use std::collections::BTreeMap;

use super::EPOCH_SECONDS;

/// What a tar entry is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EntryKind {
    /// A regular file with its content.
    File(Vec<u8>),
    /// A directory.
    Dir,
    /// A symbolic link to the target.
    Symlink(String),
    /// A hard link to an earlier entry's path.
    HardLink(String),
    /// A named pipe.
    Fifo,
    /// A character device.
    CharDevice {
        /// Device major number.
        major: u32,
        /// Device minor number.
        minor: u32,
    },
}

/// One tar entry. Paths are written exactly as given (a trailing `/` is
/// added to directories), so they may be absolute or contain `..`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TarEntry {
    /// The path inside the archive.
    pub path: String,
    /// The entry type and its payload.
    pub kind: EntryKind,
    /// Permission bits, including setuid/setgid/sticky.
    pub mode: u32,
    /// Owner uid.
    pub uid: u64,
    /// Owner gid.
    pub gid: u64,
    /// Modification time, seconds since the epoch.
    pub mtime: u64,
    /// Extended attributes, written as `SCHILY.xattr.*` PAX records.
    pub xattrs: BTreeMap<String, Vec<u8>>,
}

impl TarEntry {
    fn new(path: &str, kind: EntryKind, mode: u32) -> TarEntry {
        TarEntry {
            path: path.to_string(),
            kind,
            mode,
            uid: 0,
            gid: 0,
            mtime: EPOCH_SECONDS,
            xattrs: BTreeMap::new(),
        }
    }

    /// A regular file, mode 0644.
    pub fn file(path: &str, contents: impl Into<Vec<u8>>) -> TarEntry {
        TarEntry::new(path, EntryKind::File(contents.into()), 0o644)
    }

    /// A directory, mode 0755.
    pub fn dir(path: &str) -> TarEntry {
        TarEntry::new(path, EntryKind::Dir, 0o755)
    }

    /// A symlink, mode 0777.
    pub fn symlink(path: &str, target: &str) -> TarEntry {
        TarEntry::new(path, EntryKind::Symlink(target.to_string()), 0o777)
    }

    /// A hard link to `target` (an earlier entry's path), mode 0644.
    pub fn hardlink(path: &str, target: &str) -> TarEntry {
        TarEntry::new(path, EntryKind::HardLink(target.to_string()), 0o644)
    }

    /// A named pipe, mode 0644.
    pub fn fifo(path: &str) -> TarEntry {
        TarEntry::new(path, EntryKind::Fifo, 0o644)
    }

    /// A character device, mode 0666.
    pub fn char_device(path: &str, major: u32, minor: u32) -> TarEntry {
        TarEntry::new(path, EntryKind::CharDevice { major, minor }, 0o666)
    }

    /// Sets the permission bits (e.g. `0o4755`).
    pub fn mode(mut self, mode: u32) -> TarEntry {
        self.mode = mode;
        self
    }

    /// Sets the owner.
    pub fn owner(mut self, uid: u64, gid: u64) -> TarEntry {
        self.uid = uid;
        self.gid = gid;
        self
    }

    /// Sets the modification time.
    pub fn mtime(mut self, seconds: u64) -> TarEntry {
        self.mtime = seconds;
        self
    }

    /// Adds an extended attribute (e.g. `user.skiff` = `yes`).
    pub fn xattr(mut self, name: &str, value: impl Into<Vec<u8>>) -> TarEntry {
        self.xattrs.insert(name.to_string(), value.into());
        self
    }
}

const BLOCK: usize = 512;
/// The largest value an 8-byte octal field holds (7 digits).
const MAX_OCTAL_7: u64 = 0o7_777_777;

/// Writes `entries` in the given order as a tar archive, ending with the two
/// zero blocks.
pub fn write_tar(entries: &[TarEntry]) -> Vec<u8> {
    let mut out = Vec::new();
    for entry in entries {
        append_entry(&mut out, entry);
    }
    out.resize(out.len() + 2 * BLOCK, 0);
    out
}

fn append_entry(out: &mut Vec<u8>, entry: &TarEntry) {
    let mut path = entry.path.clone();
    if entry.kind == EntryKind::Dir && !path.ends_with('/') {
        path.push('/');
    }
    let (typeflag, data, link): (u8, &[u8], &str) = match &entry.kind {
        EntryKind::File(data) => (b'0', data, ""),
        EntryKind::Dir => (b'5', &[], ""),
        EntryKind::Symlink(target) => (b'2', &[], target),
        EntryKind::HardLink(target) => (b'1', &[], target),
        EntryKind::Fifo => (b'6', &[], ""),
        EntryKind::CharDevice { .. } => (b'3', &[], ""),
    };

    let mut pax: Vec<(String, Vec<u8>)> = Vec::new();
    if path.len() > 100 {
        pax.push(("path".to_string(), path.clone().into_bytes()));
    }
    if link.len() > 100 {
        pax.push(("linkpath".to_string(), link.as_bytes().to_vec()));
    }
    if entry.uid > MAX_OCTAL_7 {
        pax.push(("uid".to_string(), entry.uid.to_string().into_bytes()));
    }
    if entry.gid > MAX_OCTAL_7 {
        pax.push(("gid".to_string(), entry.gid.to_string().into_bytes()));
    }
    for (name, value) in &entry.xattrs {
        pax.push((format!("SCHILY.xattr.{name}"), value.clone()));
    }
    if !pax.is_empty() {
        let records = pax_records(&pax);
        let base = path
            .trim_end_matches('/')
            .rsplit('/')
            .next()
            .unwrap_or("entry");
        let pax_name = format!("PaxHeaders/{base}");
        let pax_name = truncate(&pax_name, 100);
        let header = ustar_header(&HeaderFields {
            name: pax_name.as_bytes(),
            mode: 0o644,
            uid: 0,
            gid: 0,
            size: records.len() as u64,
            mtime: entry.mtime,
            typeflag: b'x',
            linkname: b"",
            device: (0, 0),
        });
        out.extend_from_slice(&header);
        append_padded(out, &records);
    }

    let device = match entry.kind {
        EntryKind::CharDevice { major, minor } => (major, minor),
        _ => (0, 0),
    };
    let header = ustar_header(&HeaderFields {
        name: truncate(&path, 100).as_bytes(),
        mode: entry.mode,
        uid: entry.uid.min(MAX_OCTAL_7),
        gid: entry.gid.min(MAX_OCTAL_7),
        size: data.len() as u64,
        mtime: entry.mtime,
        typeflag,
        linkname: truncate(link, 100).as_bytes(),
        device,
    });
    out.extend_from_slice(&header);
    append_padded(out, data);
}

fn append_padded(out: &mut Vec<u8>, data: &[u8]) {
    out.extend_from_slice(data);
    let rest = data.len() % BLOCK;
    if rest != 0 {
        out.resize(out.len() + BLOCK - rest, 0);
    }
}

/// Cuts `s` to at most `max` bytes on a char boundary.
fn truncate(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// Encodes PAX records: each is `<len> <key>=<value>\n` where `<len>`
/// counts the whole record including its own digits.
fn pax_records(records: &[(String, Vec<u8>)]) -> Vec<u8> {
    let mut out = Vec::new();
    for (key, value) in records {
        let base = key.len() + value.len() + 3;
        let mut len = base + base.to_string().len();
        while base + len.to_string().len() != len {
            len = base + len.to_string().len();
        }
        out.extend_from_slice(format!("{len} {key}=").as_bytes());
        out.extend_from_slice(value);
        out.push(b'\n');
    }
    out
}

struct HeaderFields<'a> {
    name: &'a [u8],
    mode: u32,
    uid: u64,
    gid: u64,
    size: u64,
    mtime: u64,
    typeflag: u8,
    linkname: &'a [u8],
    device: (u32, u32),
}

fn ustar_header(fields: &HeaderFields<'_>) -> [u8; BLOCK] {
    let mut h = [0u8; BLOCK];
    h[..fields.name.len()].copy_from_slice(fields.name);
    octal(&mut h[100..108], u64::from(fields.mode));
    octal(&mut h[108..116], fields.uid);
    octal(&mut h[116..124], fields.gid);
    octal(&mut h[124..136], fields.size);
    octal(&mut h[136..148], fields.mtime);
    h[156] = fields.typeflag;
    h[157..157 + fields.linkname.len()].copy_from_slice(fields.linkname);
    h[257..263].copy_from_slice(b"ustar\0");
    h[263..265].copy_from_slice(b"00");
    octal(&mut h[329..337], u64::from(fields.device.0));
    octal(&mut h[337..345], u64::from(fields.device.1));
    // The checksum is computed with its own field read as spaces.
    h[148..156].copy_from_slice(b"        ");
    let sum: u32 = h.iter().map(|&b| u32::from(b)).sum();
    let checksum = format!("{sum:06o}\0 ");
    h[148..156].copy_from_slice(checksum.as_bytes());
    h
}

/// Writes `value` as zero-padded octal filling all but the last byte of
/// `field`, which stays NUL.
fn octal(field: &mut [u8], value: u64) {
    let width = field.len() - 1;
    let text = format!("{value:0width$o}");
    let text = &text.as_bytes()[text.len().saturating_sub(width)..];
    field[..width].copy_from_slice(text);
    field[width] = 0;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pax_record_length_counts_itself() {
        let records = pax_records(&[("path".to_string(), vec![b'a'; 5])]);
        assert_eq!(records, b"14 path=aaaaa\n");
        // 96 bytes of key/value + 3 separators: the length needs 3 digits.
        let long = pax_records(&[("k".to_string(), vec![b'x'; 95])]);
        let text = String::from_utf8(long.clone()).unwrap_or_default();
        let declared: usize = text.split(' ').next().unwrap_or("0").parse().unwrap_or(0);
        assert_eq!(declared, long.len());
    }

    #[test]
    fn octal_fields_are_nul_terminated() {
        let mut field = [0xffu8; 8];
        octal(&mut field, 0o755);
        assert_eq!(&field, b"0000755\0");
    }
}
