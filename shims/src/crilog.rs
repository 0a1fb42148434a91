//! CRI container logs: `<RFC3339Nano UTC> <stdout|stderr> <P|F> <text>\n`.
//!
//! As containerd's cri plugin writes them: a line longer than
//! [`MAX_LINE_CONTENT`] becomes partial (`P`) records of exactly that size
//! and a full (`F`) record with the rest. A line still unterminated when the
//! stream ends is flushed as `F`.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

/// Longest content of one record (kubelet's and containerd's 16 KiB).
pub const MAX_LINE_CONTENT: usize = 16 * 1024;

/// Which stream a record comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogStream {
    /// The process's stdout (or its terminal).
    Stdout,
    /// The process's stderr.
    Stderr,
}

impl LogStream {
    fn as_str(self) -> &'static str {
        match self {
            LogStream::Stdout => "stdout",
            LogStream::Stderr => "stderr",
        }
    }
}

/// Whether a record ends its line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogTag {
    /// A piece of a longer line.
    Partial,
    /// The end of a line.
    Full,
}

impl LogTag {
    fn as_str(self) -> &'static str {
        match self {
            LogTag::Partial => "P",
            LogTag::Full => "F",
        }
    }
}

/// Cuts a byte stream into log records.
#[derive(Debug, Default)]
pub struct LineSplitter {
    pending: Vec<u8>,
}

impl LineSplitter {
    /// Feeds bytes read from the stream, emitting every complete record.
    pub fn push(&mut self, mut data: &[u8], emit: &mut impl FnMut(LogTag, &[u8])) {
        while !data.is_empty() {
            let newline = data.iter().position(|&b| b == b'\n');
            let (piece, rest, ends_line) = match newline {
                Some(at) => (&data[..at], &data[at + 1..], true),
                None => (data, &[][..], false),
            };
            self.pending.extend_from_slice(piece);
            // Only more than the maximum splits, so a line of exactly 16 KiB stays one record.
            while self.pending.len() > MAX_LINE_CONTENT {
                emit(LogTag::Partial, &self.pending[..MAX_LINE_CONTENT]);
                self.pending.drain(..MAX_LINE_CONTENT);
            }
            if ends_line {
                emit(LogTag::Full, &self.pending);
                self.pending.clear();
            }
            data = rest;
        }
    }

    /// The stream ended: flushes an unterminated line.
    pub fn finish(&mut self, emit: &mut impl FnMut(LogTag, &[u8])) {
        if !self.pending.is_empty() {
            emit(LogTag::Full, &self.pending);
            self.pending.clear();
        }
    }
}

/// A container's CRI log file.
#[derive(Debug)]
pub struct CriLogFile {
    path: PathBuf,
    file: File,
    record: Vec<u8>,
}

impl CriLogFile {
    /// Opens (creating) the log for appending.
    pub fn open(path: &Path) -> io::Result<Self> {
        Ok(CriLogFile {
            path: path.to_path_buf(),
            file: open_log(path)?,
            record: Vec::new(),
        })
    }

    /// The log's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Reopens the path, after the kubelet renamed the file for rotation.
    pub fn reopen(&mut self) -> io::Result<()> {
        self.file = open_log(&self.path)?;
        Ok(())
    }

    /// Appends one record, in a single write so readers never see half of it.
    pub fn write_record(
        &mut self,
        at: SystemTime,
        stream: LogStream,
        tag: LogTag,
        content: &[u8],
    ) -> io::Result<()> {
        self.record.clear();
        format_timestamp(at, &mut self.record);
        self.record.push(b' ');
        self.record.extend_from_slice(stream.as_str().as_bytes());
        self.record.push(b' ');
        self.record.extend_from_slice(tag.as_str().as_bytes());
        self.record.push(b' ');
        self.record.extend_from_slice(content);
        self.record.push(b'\n');
        self.file.write_all(&self.record)
    }
}

fn open_log(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o640)
        .custom_flags(libc::O_CLOEXEC)
        .open(path)
}

/// Appends `at` as Go's `time.RFC3339Nano` in UTC: nanoseconds without
/// trailing zeros, e.g. `2024-05-01T12:00:00.1234Z`.
pub fn format_timestamp(at: SystemTime, out: &mut Vec<u8>) {
    let since = at.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = since.as_secs();
    let nanos = since.subsec_nanos();
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let (year, month, day) = civil_from_days(days);
    let text = format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    );
    out.extend_from_slice(text.as_bytes());
    if nanos > 0 {
        let fraction = format!("{nanos:09}");
        out.push(b'.');
        out.extend_from_slice(fraction.trim_end_matches('0').as_bytes());
    }
    out.push(b'Z');
}

/// Days since 1970-01-01 to a proleptic Gregorian date (Howard Hinnant's algorithm).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn records(chunks: &[&[u8]], finish: bool) -> Vec<(LogTag, Vec<u8>)> {
        let mut out = Vec::new();
        let mut splitter = LineSplitter::default();
        let mut emit = |tag: LogTag, content: &[u8]| out.push((tag, content.to_vec()));
        for chunk in chunks {
            splitter.push(chunk, &mut emit);
        }
        if finish {
            splitter.finish(&mut emit);
        }
        out
    }

    #[test]
    fn lines_across_reads() {
        let got = records(&[b"hel", b"lo\nwor", b"ld\n\n"], true);
        assert_eq!(
            got,
            vec![
                (LogTag::Full, b"hello".to_vec()),
                (LogTag::Full, b"world".to_vec()),
                (LogTag::Full, b"".to_vec()),
            ]
        );
    }

    #[test]
    fn unterminated_line_waits_then_flushes_at_end() {
        assert!(records(&[b"no newline"], false).is_empty());
        assert_eq!(
            records(&[b"no newline"], true),
            vec![(LogTag::Full, b"no newline".to_vec())]
        );
    }

    #[test]
    fn long_lines_split_into_partials() {
        let exact = vec![b'a'; MAX_LINE_CONTENT];
        let mut line = exact.clone();
        line.push(b'\n');
        assert_eq!(records(&[&line], true), vec![(LogTag::Full, exact)]);

        let long = vec![b'b'; 2 * MAX_LINE_CONTENT + 10];
        let mut line = long.clone();
        line.push(b'\n');
        // Fed in small reads, as a pipe delivers it.
        let chunks: Vec<&[u8]> = line.chunks(4096).collect();
        let got = records(&chunks, true);
        let tags: Vec<LogTag> = got.iter().map(|(tag, _)| *tag).collect();
        assert_eq!(tags, [LogTag::Partial, LogTag::Partial, LogTag::Full]);
        assert_eq!(got[0].1.len(), MAX_LINE_CONTENT);
        assert_eq!(got[2].1.len(), 10);
        let joined: Vec<u8> = got.into_iter().flat_map(|(_, c)| c).collect();
        assert_eq!(joined, long);
    }

    #[test]
    fn timestamps_are_rfc3339nano_utc() {
        let fmt = |secs: u64, nanos: u32| {
            let mut out = Vec::new();
            format_timestamp(UNIX_EPOCH + Duration::new(secs, nanos), &mut out);
            String::from_utf8(out).unwrap()
        };
        assert_eq!(fmt(0, 0), "1970-01-01T00:00:00Z");
        assert_eq!(fmt(951_782_400, 500_000_000), "2000-02-29T00:00:00.5Z");
        assert_eq!(
            fmt(1_700_000_000, 123_456_789),
            "2023-11-14T22:13:20.123456789Z"
        );
        assert_eq!(fmt(4_102_444_799, 1_000), "2099-12-31T23:59:59.000001Z");
    }

    #[test]
    fn records_are_appended_and_reopened() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("0.log");
        let mut log = CriLogFile::open(&path).unwrap();
        let at = UNIX_EPOCH + Duration::from_secs(1);
        log.write_record(at, LogStream::Stdout, LogTag::Full, b"one")
            .unwrap();
        std::fs::rename(&path, dir.path().join("0.log.1")).unwrap();
        log.reopen().unwrap();
        log.write_record(at, LogStream::Stderr, LogTag::Partial, b"two")
            .unwrap();
        assert_eq!(
            std::fs::read_to_string(dir.path().join("0.log.1")).unwrap(),
            "1970-01-01T00:00:01Z stdout F one\n"
        );
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            "1970-01-01T00:00:01Z stderr P two\n"
        );
    }
}
