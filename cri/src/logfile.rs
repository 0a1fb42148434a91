//! Container log files as the CRI writes them (`<RFC3339Nano> <stream>
//! <P|F> <text>` records, partial ones continued by the next) and docker's
//! JSON lines: the one parser `crictl logs` and the kubelet's log endpoint
//! both read them with.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};

use crate::crictl::timefmt::parse_rfc3339;

/// How much of a file is read at a time when looking for its last lines.
pub const CHUNK: usize = 64 * 1024;

/// The stream a log record belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    /// Standard output.
    Stdout,
    /// Standard error.
    Stderr,
}

/// One parsed log record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// When it was written, in nanoseconds since the epoch.
    pub timestamp: i64,
    /// Where it came from.
    pub stream: Stream,
    /// The text: with its newline for a full line, without for a partial one.
    pub text: Vec<u8>,
}

/// The log formats crictl reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// `<RFC3339Nano> <stream> <P|F> <text>`.
    Cri,
    /// docker's `{"log":…,"stream":…,"time":…}` lines.
    DockerJson,
}

impl Format {
    /// The format of a file whose first line is `line`.
    pub fn detect(line: &[u8]) -> Result<Self, String> {
        if parse_cri(line).is_ok() {
            Ok(Self::Cri)
        } else if parse_docker_json(line).is_ok() {
            Ok(Self::DockerJson)
        } else {
            Err(format!(
                "unsupported log format: {:?}",
                String::from_utf8_lossy(line)
            ))
        }
    }

    /// Parses one line (with its newline, if it has one).
    pub fn parse(self, line: &[u8]) -> Result<Record, String> {
        match self {
            Self::Cri => parse_cri(line),
            Self::DockerJson => parse_docker_json(line),
        }
    }
}

/// Parses a CRI log line; a partial (`P`) record loses its newline so the
/// next record continues the same line.
pub fn parse_cri(line: &[u8]) -> Result<Record, String> {
    let mut fields = line.splitn(4, |b| *b == b' ');
    let timestamp = fields.next().ok_or("timestamp is not found")?;
    let timestamp = std::str::from_utf8(timestamp)
        .ok()
        .and_then(parse_rfc3339)
        .ok_or_else(|| {
            format!(
                "unexpected timestamp format {:?}",
                "2006-01-02T15:04:05.999999999Z07:00"
            )
        })?;
    let stream = match fields.next().ok_or("stream type is not found")? {
        b"stdout" => Stream::Stdout,
        b"stderr" => Stream::Stderr,
        other => {
            return Err(format!(
                "unexpected stream type {:?}",
                String::from_utf8_lossy(other)
            ));
        }
    };
    let tag = fields.next().ok_or("log tag is not found")?;
    // Tags are `:`-separated for forward compatibility; the first says P or F.
    let partial = tag.split(|b| *b == b':').next() == Some(b"P");
    let mut text = fields.next().ok_or("log content is not found")?.to_vec();
    if partial && text.last() == Some(&b'\n') {
        text.pop();
    }
    Ok(Record {
        timestamp,
        stream,
        text,
    })
}

/// Parses one of docker's json-file log lines.
pub fn parse_docker_json(line: &[u8]) -> Result<Record, String> {
    #[derive(serde::Deserialize)]
    struct Line {
        log: String,
        stream: String,
        time: String,
    }
    let parsed: Line = serde_json::from_slice(line).map_err(|e| e.to_string())?;
    let stream = match parsed.stream.as_str() {
        "stdout" => Stream::Stdout,
        "stderr" => Stream::Stderr,
        other => return Err(format!("unexpected stream type {other:?}")),
    };
    let timestamp = parse_rfc3339(&parsed.time)
        .ok_or_else(|| format!("unexpected timestamp {:?}", parsed.time))?;
    Ok(Record {
        timestamp,
        stream,
        text: parsed.log.into_bytes(),
    })
}

/// The offset where the last `n` lines of `file` start (the start of the
/// file when there are fewer lines). An unfinished last line does not
/// count, as kubelet's tail does not count it.
pub fn tail_start(file: &mut File, n: u64) -> io::Result<u64> {
    let size = file.seek(SeekFrom::End(0))?;
    let wanted = n.saturating_add(1);
    let mut seen = 0u64;
    let mut right = size;
    let mut buf = vec![0u8; CHUNK];
    while right > 0 {
        let left = right.saturating_sub(CHUNK as u64);
        let len = (right - left) as usize;
        file.seek(SeekFrom::Start(left))?;
        file.read_exact(&mut buf[..len])?;
        for (i, b) in buf[..len].iter().enumerate().rev() {
            if *b == b'\n' {
                seen += 1;
                if seen == wanted {
                    return Ok(left + i as u64 + 1);
                }
            }
        }
        right = left;
    }
    Ok(0)
}

#[cfg(test)]
mod tests {
    use std::io::Write as _;

    use super::*;

    #[test]
    fn cri_lines_parse_and_partial_ones_lose_their_newline() {
        let record = parse_cri(b"2023-11-14T22:13:20.5Z stdout F hello world\n").unwrap();
        assert_eq!(record.timestamp, 1_700_000_000_500_000_000);
        assert_eq!(record.stream, Stream::Stdout);
        assert_eq!(record.text, b"hello world\n");
        let record = parse_cri(b"2023-11-14T22:13:20Z stderr P part\n").unwrap();
        assert_eq!(record.stream, Stream::Stderr);
        assert_eq!(record.text, b"part");
        let record = parse_cri(b"2023-11-14T22:13:20Z stdout F:x \n").unwrap();
        assert_eq!(record.text, b"\n");
        assert!(parse_cri(b"2023-11-14T22:13:20Z stdin F x\n").is_err());
        assert!(parse_cri(b"garbage\n").is_err());
    }

    #[test]
    fn docker_json_lines_parse() {
        let line = br#"{"log":"hi\n","stream":"stderr","time":"2023-11-14T22:13:20Z"}"#;
        assert_eq!(Format::detect(line).unwrap(), Format::DockerJson);
        let record = Format::DockerJson.parse(line).unwrap();
        assert_eq!(record.text, b"hi\n");
        assert_eq!(record.stream, Stream::Stderr);
        assert!(Format::detect(b"plain text\n").is_err());
    }

    #[test]
    fn tail_finds_the_start_of_the_last_lines() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log");
        let mut f = File::create(&path).unwrap();
        f.write_all(b"a\nb\nc\n").unwrap();
        let mut f = File::open(&path).unwrap();
        assert_eq!(tail_start(&mut f, 0).unwrap(), 6);
        assert_eq!(tail_start(&mut f, 1).unwrap(), 4);
        assert_eq!(tail_start(&mut f, 3).unwrap(), 0);
        assert_eq!(tail_start(&mut f, 10).unwrap(), 0);
        std::fs::write(&path, b"a\nb\nc").unwrap();
        let mut f = File::open(&path).unwrap();
        assert_eq!(tail_start(&mut f, 1).unwrap(), 2);

        let big: Vec<u8> = (0..100_000)
            .flat_map(|i| format!("{i}\n").into_bytes())
            .collect();
        std::fs::write(&path, &big).unwrap();
        let mut f = File::open(&path).unwrap();
        let start = tail_start(&mut f, 2).unwrap() as usize;
        assert_eq!(&big[start..], b"99998\n99999\n");
    }
}
