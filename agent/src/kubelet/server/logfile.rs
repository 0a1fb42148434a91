//! Reading a container's CRI log file as kubelet's log reader does:
//! records `<RFC3339Nano> <stdout|stderr> <P|F> <text>` (partial records
//! continue the same line), the CRI prefix stripped unless timestamps are
//! asked for, `tail` lines from the end, records before `since` skipped,
//! at most `limit_bytes`; with `follow`, new records are sent as they are
//! written until the container stops and the file is read to its end,
//! across log rotation.

use std::io::{self, Seek, SeekFrom};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::future::BoxFuture;
use k8s_openapi::jiff::Timestamp;
use tokio::io::{AsyncReadExt, AsyncSeekExt};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use skiff_cri::logfile::{CHUNK, Record, parse_cri, tail_start};

/// How often a followed file is checked for growth or rotation.
const POLL_INTERVAL: Duration = Duration::from_millis(100);
/// How often a followed container is checked to still run.
const RUNNING_CHECK_PERIOD: Duration = Duration::from_secs(1);
/// Output is sent in pieces of about this size.
const FLUSH_AT: usize = 32 * 1024;

/// What to read (kubelet's `LogOptions`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LogOptions {
    /// Keep sending records while the container runs.
    pub follow: bool,
    /// Lines from the end to start at; `None`: the whole file.
    pub tail: Option<u64>,
    /// Records written before this are skipped.
    pub since: Option<Timestamp>,
    /// Prefix each line with its RFC3339Nano time.
    pub timestamps: bool,
    /// Bytes to send at most.
    pub limit_bytes: Option<u64>,
}

/// A log file could not be read.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    /// Opening or positioning it failed.
    #[error("failed to open log file {path:?}: {source}")]
    Open {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: io::Error,
    },
    /// Reading it failed.
    #[error("failed to read log file {path:?}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: io::Error,
    },
}

/// Turns records into output as kubelet's log writer does.
#[derive(Debug)]
struct Writer {
    timestamps: bool,
    since: Option<Timestamp>,
    remaining: u64,
    at_line_start: bool,
}

impl Writer {
    /// Appends `record` to `out`; `false` once the byte limit is reached.
    fn write(&mut self, record: &Record, out: &mut Vec<u8>) -> bool {
        let at_line_start = self.at_line_start;
        self.at_line_start = record.text.last().is_none_or(|b| *b == b'\n');
        let timestamp = Timestamp::from_nanosecond(i128::from(record.timestamp))
            .unwrap_or(Timestamp::UNIX_EPOCH);
        if self.since.is_some_and(|since| timestamp < since) {
            return true;
        }
        let start = out.len();
        if self.timestamps && at_line_start {
            out.extend_from_slice(timestamp.to_string().as_bytes());
            out.push(b' ');
        }
        out.extend_from_slice(&record.text);
        let written = (out.len() - start) as u64;
        if written >= self.remaining {
            out.truncate(start + self.remaining as usize);
            self.remaining = 0;
            return false;
        }
        self.remaining -= written;
        true
    }
}

/// An open log file, read line by line.
struct LogFile {
    path: PathBuf,
    file: tokio::fs::File,
    inode: u64,
    /// Read but not yet returned: the start of an unfinished line.
    buffer: Vec<u8>,
}

impl LogFile {
    /// Opens `path` at the start of its last `tail` lines.
    async fn open(path: &Path, tail: Option<u64>) -> Result<LogFile, LogError> {
        let open_error = |source| LogError::Open {
            path: path.to_owned(),
            source,
        };
        let owned = path.to_owned();
        let (file, inode) = tokio::task::spawn_blocking(move || {
            let mut file = std::fs::File::open(&owned)?;
            let inode = file.metadata()?.ino();
            let start = match tail {
                Some(n) => tail_start(&mut file, n)?,
                None => 0,
            };
            file.seek(SeekFrom::Start(start))?;
            Ok::<_, io::Error>((file, inode))
        })
        .await
        .map_err(|e| open_error(io::Error::other(e)))?
        .map_err(open_error)?;
        Ok(LogFile {
            path: path.to_owned(),
            file: tokio::fs::File::from_std(file),
            inode,
            buffer: Vec::new(),
        })
    }

    /// The next whole line, or `None` at the end of what is written so far.
    async fn next_line(&mut self) -> io::Result<Option<Vec<u8>>> {
        let mut chunk = vec![0u8; CHUNK];
        loop {
            if let Some(end) = self.buffer.iter().position(|b| *b == b'\n') {
                let rest = self.buffer.split_off(end + 1);
                return Ok(Some(std::mem::replace(&mut self.buffer, rest)));
            }
            let n = self.file.read(&mut chunk).await?;
            if n == 0 {
                return Ok(None);
            }
            self.buffer.extend_from_slice(&chunk[..n]);
        }
    }

    /// Whether the file grew past what was read.
    async fn grew(&mut self) -> bool {
        let Ok(position) = self.file.stream_position().await else {
            return false;
        };
        self.file.metadata().await.is_ok_and(|m| m.len() > position)
    }

    /// Whether another file now sits at the path (the log was rotated).
    async fn replaced(&self) -> bool {
        tokio::fs::metadata(&self.path)
            .await
            .is_ok_and(|m| m.ino() != self.inode)
    }
}

/// Whether the container still runs; asked while following.
pub type IsRunning = Box<dyn FnMut() -> BoxFuture<'static, bool> + Send>;

/// An opened log ready to be read.
pub struct LogReader {
    log: LogFile,
    options: LogOptions,
}

impl std::fmt::Debug for LogReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogReader")
            .field("path", &self.log.path)
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

enum Waited {
    Grew,
    Rotated,
    NotRunning,
    Stopped,
}

impl LogReader {
    /// Opens the log at `path`, positioned for `options.tail`; failing here
    /// lets the caller answer with an error before streaming anything.
    pub async fn open(path: &Path, options: LogOptions) -> Result<LogReader, LogError> {
        let log = LogFile::open(path, options.tail).await?;
        Ok(LogReader { log, options })
    }

    /// Sends the log to `out` in pieces until it is read (or, following,
    /// until the container stops and its log is read), the byte limit is
    /// reached, the receiver goes away or `stop` is cancelled.
    pub async fn send(
        mut self,
        out: mpsc::Sender<Bytes>,
        mut running: IsRunning,
        stop: CancellationToken,
    ) -> Result<(), LogError> {
        let options = self.options.clone();
        let limited = options.tail.is_some() && !options.follow;
        let mut left = options.tail.unwrap_or(0);
        let mut writer = Writer {
            timestamps: options.timestamps,
            since: options.since,
            remaining: options.limit_bytes.unwrap_or(u64::MAX),
            at_line_start: true,
        };
        let mut pending = Vec::new();
        let mut last_line = false;
        let mut container_runs = true;
        loop {
            if last_line || (limited && left == 0) {
                break;
            }
            let read = self
                .log
                .next_line()
                .await
                .map_err(|source| LogError::Read {
                    path: self.log.path.clone(),
                    source,
                })?;
            let line = match read {
                Some(line) => line,
                None if options.follow => {
                    if !flush(&out, &mut pending).await || !container_runs {
                        return Ok(());
                    }
                    match self.wait(&mut running, &out, &stop).await {
                        Waited::Grew => {}
                        Waited::NotRunning => container_runs = false,
                        Waited::Stopped => return Ok(()),
                        Waited::Rotated => match LogFile::open(&self.log.path, None).await {
                            Ok(new) => self.log = new,
                            Err(LogError::Open { source, .. })
                                if source.kind() == io::ErrorKind::NotFound => {}
                            Err(err) => return Err(err),
                        },
                    }
                    continue;
                }
                None => {
                    last_line = true;
                    if self.log.buffer.is_empty() {
                        continue;
                    }
                    std::mem::take(&mut self.log.buffer)
                }
            };
            let record = match parse_cri(&line) {
                Ok(record) => record,
                Err(err) => {
                    tracing::debug!(path = %self.log.path.display(), %err, "skipping a log line");
                    continue;
                }
            };
            let more = writer.write(&record, &mut pending);
            if !more {
                break;
            }
            if pending.len() >= FLUSH_AT && !flush(&out, &mut pending).await {
                return Ok(());
            }
            if limited {
                left -= 1;
            }
        }
        flush(&out, &mut pending).await;
        Ok(())
    }

    /// Waits for more log, a rotation, the container's end or the reader's.
    async fn wait(
        &mut self,
        running: &mut IsRunning,
        out: &mpsc::Sender<Bytes>,
        stop: &CancellationToken,
    ) -> Waited {
        if !running().await {
            return Waited::NotRunning;
        }
        let deadline = Instant::now() + RUNNING_CHECK_PERIOD;
        loop {
            tokio::select! {
                () = stop.cancelled() => return Waited::Stopped,
                () = out.closed() => return Waited::Stopped,
                () = tokio::time::sleep(POLL_INTERVAL) => {}
            }
            if self.log.grew().await {
                return Waited::Grew;
            }
            if self.log.replaced().await {
                // What was appended before the rename has been read (the
                // old file did not grow): go on with the new one.
                return Waited::Rotated;
            }
            if Instant::now() >= deadline {
                return Waited::Grew;
            }
        }
    }
}

/// Sends what is pending; `false` when the receiver is gone.
async fn flush(out: &mpsc::Sender<Bytes>, pending: &mut Vec<u8>) -> bool {
    if pending.is_empty() {
        return !out.is_closed();
    }
    out.send(Bytes::from(std::mem::take(pending))).await.is_ok()
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use futures::FutureExt;

    use super::*;

    fn never_running() -> IsRunning {
        Box::new(|| async { false }.boxed())
    }

    async fn read(path: &Path, options: LogOptions) -> String {
        let (tx, mut rx) = mpsc::channel(16);
        let reader = LogReader::open(path, options).await.unwrap();
        let task = tokio::spawn(reader.send(tx, never_running(), CancellationToken::new()));
        let mut out = Vec::new();
        while let Some(piece) = rx.recv().await {
            out.extend_from_slice(&piece);
        }
        task.await.unwrap().unwrap();
        String::from_utf8(out).unwrap()
    }

    fn write_log(dir: &Path) -> PathBuf {
        let path = dir.join("0.log");
        std::fs::write(
            &path,
            "2023-11-14T22:13:20Z stdout F one\n\
             2023-11-14T22:13:21Z stderr F two\n\
             2023-11-14T22:13:22Z stdout P thr\n\
             2023-11-14T22:13:22.5Z stdout F ee\n\
             not a record\n\
             2023-11-14T22:13:23Z stdout F four\n",
        )
        .unwrap();
        path
    }

    #[tokio::test]
    async fn options_select_and_shape_the_output() {
        let dir = tempfile::tempdir().unwrap();
        let path = write_log(dir.path());
        assert_eq!(
            read(&path, LogOptions::default()).await,
            "one\ntwo\nthree\nfour\n"
        );
        let tail = LogOptions {
            tail: Some(2),
            ..LogOptions::default()
        };
        assert_eq!(read(&path, tail).await, "four\n");
        let stamped = LogOptions {
            timestamps: true,
            tail: Some(5),
            ..LogOptions::default()
        };
        assert_eq!(
            read(&path, stamped).await,
            "2023-11-14T22:13:21Z two\n2023-11-14T22:13:22Z three\n2023-11-14T22:13:23Z four\n"
        );
        let since = LogOptions {
            since: Some("2023-11-14T22:13:21Z".parse().unwrap()),
            ..LogOptions::default()
        };
        assert_eq!(read(&path, since).await, "two\nthree\nfour\n");
        let limited = LogOptions {
            limit_bytes: Some(6),
            ..LogOptions::default()
        };
        assert_eq!(read(&path, limited).await, "one\ntw");
    }

    #[tokio::test]
    async fn following_sends_new_lines_until_the_container_stops() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("0.log");
        std::fs::write(&path, "2023-11-14T22:13:20Z stdout F first\n").unwrap();
        let runs = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
        let flag = runs.clone();
        let running: IsRunning = Box::new(move || {
            let flag = flag.clone();
            async move { flag.load(std::sync::atomic::Ordering::SeqCst) }.boxed()
        });
        let options = LogOptions {
            follow: true,
            ..LogOptions::default()
        };
        let (tx, mut rx) = mpsc::channel(16);
        let reader = LogReader::open(&path, options).await.unwrap();
        let task = tokio::spawn(reader.send(tx, running, CancellationToken::new()));
        assert_eq!(&rx.recv().await.unwrap()[..], b"first\n");
        let mut file = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap();
        file.write_all(b"2023-11-14T22:13:21Z stdout F second\n")
            .unwrap();
        assert_eq!(&rx.recv().await.unwrap()[..], b"second\n");
        // Rotation: the file is renamed and a new one written.
        std::fs::rename(&path, dir.path().join("0.log.1")).unwrap();
        std::fs::write(&path, "2023-11-14T22:13:22Z stdout F third\n").unwrap();
        assert_eq!(&rx.recv().await.unwrap()[..], b"third\n");
        // The container ends after writing a last line: it is still sent.
        file = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap();
        file.write_all(b"2023-11-14T22:13:23Z stdout F last\n")
            .unwrap();
        runs.store(false, std::sync::atomic::Ordering::SeqCst);
        let mut rest = Vec::new();
        while let Some(piece) = rx.recv().await {
            rest.extend_from_slice(&piece);
        }
        assert_eq!(rest, b"last\n");
        task.await.unwrap().unwrap();
    }
}
