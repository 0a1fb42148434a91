//! `crictl logs`: like crictl, it asks ContainerStatus for the log path
//! and reads the file itself — CRI log records (`<RFC3339Nano> <stream>
//! <P|F> <text>`, partial records joined) or docker's JSON lines — writing
//! stdout records to stdout and stderr records to stderr. `-f` follows the
//! file while the container runs, across rotation (kubelet renames the
//! file and has the runtime reopen it).

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::time::{Duration, Instant};

use k8s_cri::v1::{ContainerState, ReopenContainerLogRequest};

use super::console::{Level, rpc_error};
use super::lookup::{Deadline, resolve_container};
use super::ps::container_status;
use super::timefmt::{now_nanos, parse_rfc3339, parse_since, rfc3339_nano};
use super::{CrictlError, Session};
use crate::client::CriClient;

/// How often a followed file is checked for new data or rotation.
const POLL_INTERVAL: Duration = Duration::from_millis(100);
/// How long to wait before checking again whether the container runs.
const FORCE_CHECK_PERIOD: Duration = Duration::from_secs(1);
/// How much is read at a time.
const CHUNK: usize = 64 * 1024;

/// `crictl logs` options.
#[derive(Debug, Clone, clap::Args)]
pub struct LogsArgs {
    /// Follow log output
    #[arg(short, long)]
    follow: bool,
    /// Print the logs for the previous instance of the container in a pod if it exists
    #[arg(short, long)]
    previous: bool,
    /// Reopen the container logs for the provided container
    #[arg(short, long)]
    reopen: bool,
    /// Number of lines to show from the end of the logs. Defaults to all
    #[arg(long, allow_negative_numbers = true)]
    tail: Option<i64>,
    /// Maximum bytes of logs to return. Defaults to no limit
    #[arg(long, default_value_t = -1, allow_negative_numbers = true)]
    limit_bytes: i64,
    /// Show logs since timestamp (e.g. 2013-01-02T13:23:37) or relative (e.g. 42m for 42 minutes)
    #[arg(long)]
    since: Option<String>,
    /// Show timestamps
    #[arg(short, long)]
    timestamps: bool,
    /// Show specified stream (stdout or stderr). Defaults to both.
    #[arg(short, long)]
    stream: Option<String>,
    /// The container
    #[arg(value_name = "CONTAINER-ID")]
    id: Option<String>,
}

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
    let mut text = fields.next().ok_or("log tag is not found")?.to_vec();
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
/// file when `n` is negative or there are fewer lines). An unfinished last
/// line does not count, as kubelet's tail does not count it.
pub fn tail_start(file: &mut File, n: i64) -> io::Result<u64> {
    if n < 0 {
        return Ok(0);
    }
    let size = file.seek(SeekFrom::End(0))?;
    let wanted = n as u64 + 1;
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

/// What the reader shows, from the command's flags.
#[derive(Debug, Clone)]
struct Options {
    follow: bool,
    tail: i64,
    limit_bytes: i64,
    since: Option<i64>,
    timestamps: bool,
    stdout: bool,
    stderr: bool,
}

pub(super) async fn run(args: &LogsArgs, session: &mut Session<'_, '_>) -> Result<(), CrictlError> {
    let given = args.id.clone().unwrap_or_default();
    if given.is_empty() {
        return Err(CrictlError::Failed("ID cannot be empty".to_owned()));
    }
    let mut client = session.runtime_client().await?;
    let id = resolve_container(session, &mut client, &given).await?;
    if args.reopen {
        let request = ReopenContainerLogRequest {
            container_id: id.clone(),
        };
        session
            .call(
                Deadline::Default,
                client.runtime.reopen_container_log(request),
            )
            .await
            .map_err(|s| {
                CrictlError::Failed(format!("reopen container logs: {}", rpc_error(&s)))
            })?;
        session.console.log(Level::Info, "Container logs reopened");
    }
    let since = match args.since.as_deref().filter(|s| !s.is_empty()) {
        Some(text) => Some(parse_since(text, now_nanos()).map_err(CrictlError::Failed)?),
        None => None,
    };
    let stream = args.stream.as_deref().unwrap_or("");
    if !matches!(stream, "" | "stdout" | "stderr") {
        return Err(CrictlError::Failed(format!(
            "invalid stream {stream:?}, must be \"stdout\" or \"stderr\""
        )));
    }
    if args.tail.is_some() && args.stream.is_some() {
        return Err(CrictlError::Failed(
            "--tail and --stream are mutually exclusive".to_owned(),
        ));
    }
    let status = container_status(session, &mut client, &id, false)
        .await
        .map_err(|s| CrictlError::Failed(rpc_error(&s)))?
        .status
        .unwrap_or_default();
    if status.log_path.is_empty() {
        return Err(CrictlError::Failed(
            "the container has not set log path".to_owned(),
        ));
    }
    let mut path = status.log_path.clone();
    if args.previous {
        let attempt = status.metadata.as_ref().map_or(0, |m| m.attempt);
        if attempt == 0 {
            let name = status.metadata.as_ref().map_or("", |m| m.name.as_str());
            return Err(CrictlError::Failed(format!(
                "previous terminated container {name} not found"
            )));
        }
        path = previous_log_path(&path, attempt - 1);
    }
    let options = Options {
        follow: args.follow,
        tail: args.tail.unwrap_or(-1),
        limit_bytes: args.limit_bytes,
        since,
        timestamps: args.timestamps,
        stdout: stream != "stderr",
        stderr: stream != "stdout",
    };
    read_logs(session, &mut client, Path::new(&path), &status.id, &options)
        .await
        .map_err(CrictlError::Failed)
}

/// `/var/log/pods/…/web/2.log` → `/var/log/pods/…/web/1.log` for attempt 1.
fn previous_log_path(path: &str, attempt: u32) -> String {
    let dir_end = path.rfind('/').map_or(0, |i| i + 1);
    let ext = path[dir_end..]
        .rfind('.')
        .map_or("", |i| &path[dir_end + i..]);
    format!("{}{attempt}{ext}", &path[..dir_end])
}

/// An open log file, read line by line.
struct LogFile {
    file: File,
    inode: u64,
    /// Read but not yet returned: the start of an unfinished line.
    buffer: Vec<u8>,
}

impl LogFile {
    fn open(path: &Path) -> io::Result<Self> {
        let file = File::open(path)?;
        let inode = file.metadata()?.ino();
        Ok(Self {
            file,
            inode,
            buffer: Vec::new(),
        })
    }

    /// The next whole line, or `None` at the end of what is written so far.
    fn next_line(&mut self) -> io::Result<Option<Vec<u8>>> {
        loop {
            if let Some(end) = self.buffer.iter().position(|b| *b == b'\n') {
                let rest = self.buffer.split_off(end + 1);
                return Ok(Some(std::mem::replace(&mut self.buffer, rest)));
            }
            let mut chunk = vec![0u8; CHUNK];
            let n = self.file.read(&mut chunk)?;
            if n == 0 {
                return Ok(None);
            }
            self.buffer.extend_from_slice(&chunk[..n]);
        }
    }

    /// Whether the file grew past what was read.
    fn grew(&mut self) -> bool {
        let position = self.file.stream_position().unwrap_or(0);
        self.file.metadata().is_ok_and(|m| m.len() > position)
    }
}

/// Writes records as kubelet's log reader does.
struct Writer<'o> {
    options: &'o Options,
    remaining: i64,
    at_line_start: bool,
}

impl Writer<'_> {
    /// Writes one record; `false` once the byte limit is reached.
    fn write(&mut self, session: &mut Session<'_, '_>, record: &Record) -> Result<bool, String> {
        let at_line_start = self.at_line_start;
        self.at_line_start = record.text.last().is_none_or(|b| *b == b'\n');
        if self
            .options
            .since
            .is_some_and(|since| record.timestamp < since)
        {
            return Ok(true);
        }
        let mut line = Vec::with_capacity(record.text.len() + 32);
        if self.options.timestamps && at_line_start {
            line.extend_from_slice(rfc3339_nano(record.timestamp).as_bytes());
            line.push(b' ');
        }
        line.extend_from_slice(&record.text);
        if line.len() as i64 > self.remaining {
            line.truncate(self.remaining.max(0) as usize);
        }
        match record.stream {
            Stream::Stdout if self.options.stdout => {
                session
                    .console
                    .out
                    .write_all(&line)
                    .map_err(|e| format!("write stdout: {e}"))?;
            }
            Stream::Stderr if self.options.stderr => {
                session.console.write_err(&line);
            }
            _ => return Ok(true),
        }
        self.remaining -= line.len() as i64;
        Ok(self.remaining > 0)
    }
}

async fn read_logs(
    session: &mut Session<'_, '_>,
    client: &mut CriClient,
    path: &Path,
    container_id: &str,
    options: &Options,
) -> Result<(), String> {
    let path = std::fs::canonicalize(path).map_err(|e| {
        format!(
            "failed to try resolving symlinks in path {:?}: {}",
            path.display().to_string(),
            super::go_errno_text(&e)
        )
    })?;
    let open_failed = |e: io::Error| {
        format!(
            "failed to open log file {:?}: {}",
            path.display().to_string(),
            super::go_errno_text(&e)
        )
    };
    let mut log = LogFile::open(&path).map_err(open_failed)?;
    let start = tail_start(&mut log.file, options.tail)
        .and_then(|start| log.file.seek(SeekFrom::Start(start)))
        .map_err(|e| {
            format!(
                "failed to tail {} lines of log file {path:?}: {e}",
                options.tail
            )
        })?;
    session.debug(format!("reading {} from offset {start}", path.display()));
    let limited = options.tail >= 0 && !options.follow;
    let mut left = options.tail;
    let mut format = None;
    let mut writer = Writer {
        options,
        remaining: if options.limit_bytes < 0 {
            i64::MAX
        } else {
            options.limit_bytes
        },
        at_line_start: true,
    };
    let mut stop = false;
    let mut found = true;
    loop {
        if stop || (limited && left == 0) {
            return Ok(());
        }
        let read_failed = |e: io::Error| format!("failed to read log file {path:?}: {e}");
        let line = match log.next_line().map_err(read_failed)? {
            Some(line) => line,
            None if options.follow => {
                if !found {
                    return Ok(());
                }
                let (still_running, recreated) =
                    wait_logs(session, client, container_id, &path, &mut log).await?;
                found = still_running;
                if recreated {
                    match LogFile::open(&path) {
                        Ok(new) => log = new,
                        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                        Err(e) => return Err(open_failed(e)),
                    }
                }
                continue;
            }
            None => {
                stop = true;
                if log.buffer.is_empty() {
                    continue;
                }
                std::mem::take(&mut log.buffer)
            }
        };
        let format = match format {
            Some(format) => format,
            None => *format.insert(
                Format::detect(&line).map_err(|e| format!("failed to get parse function: {e}"))?,
            ),
        };
        let record = match format.parse(&line) {
            Ok(record) => record,
            Err(e) => {
                session.debug(format!(
                    "failed when parsing line in log file {path:?}: {e}"
                ));
                continue;
            }
        };
        if !writer.write(session, &record)? {
            return Ok(());
        }
        if limited {
            left -= 1;
        }
    }
}

/// Waits for more log: `(false, _)` once the container no longer runs,
/// `(true, true)` when the file at `path` was replaced (rotated),
/// `(true, false)` when it grew or a second passed.
async fn wait_logs(
    session: &mut Session<'_, '_>,
    client: &mut CriClient,
    container_id: &str,
    path: &Path,
    log: &mut LogFile,
) -> Result<(bool, bool), String> {
    let status = container_status(session, client, container_id, false)
        .await
        .map_err(|s| rpc_error(&s))?;
    let running = status
        .status
        .is_some_and(|s| s.state == ContainerState::ContainerRunning as i32);
    if !running {
        return Ok((false, false));
    }
    let deadline = Instant::now() + FORCE_CHECK_PERIOD;
    loop {
        tokio::time::sleep(POLL_INTERVAL).await;
        if log.grew() {
            return Ok((true, false));
        }
        let replaced = std::fs::metadata(path).is_ok_and(|m| m.ino() != log.inode);
        if replaced {
            // What was appended to the old file before it was renamed has
            // been read (it did not grow): switch to the new one.
            return Ok((true, true));
        }
        if Instant::now() >= deadline {
            return Ok((true, false));
        }
    }
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
        assert_eq!(tail_start(&mut f, -1).unwrap(), 0);
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

    #[test]
    fn previous_logs_are_the_attempt_before() {
        assert_eq!(
            previous_log_path("/var/log/pods/ns_pod_uid/web/2.log", 1),
            "/var/log/pods/ns_pod_uid/web/1.log"
        );
        assert_eq!(previous_log_path("web.log", 0), "0.log");
    }
}
