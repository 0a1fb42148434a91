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
use super::timefmt::{now_nanos, parse_since, rfc3339_nano};
use super::{CrictlError, Session};
use crate::client::CriClient;
use crate::logfile::{CHUNK, Format, Record, Stream, tail_start};

/// How often a followed file is checked for new data or rotation.
const POLL_INTERVAL: Duration = Duration::from_millis(100);
/// How long to wait before checking again whether the container runs.
const FORCE_CHECK_PERIOD: Duration = Duration::from_secs(1);

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
    // A negative --tail (the default) shows the whole file.
    let start = u64::try_from(options.tail)
        .map_or(Ok(0), |lines| tail_start(&mut log.file, lines))
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

    use super::*;

    #[test]
    fn previous_logs_are_the_attempt_before() {
        assert_eq!(
            previous_log_path("/var/log/pods/ns_pod_uid/web/2.log", 1),
            "/var/log/pods/ns_pod_uid/web/1.log"
        );
        assert_eq!(previous_log_path("web.log", 0), "0.log");
    }
}
