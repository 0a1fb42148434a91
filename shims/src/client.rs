//! The runtime's side: [`ShimClient`] (async, tokio) and [`spawn_shim`].
//!
//! Each call opens a connection to `<pod-dir>/shim.sock`, sends one request
//! line and reads one answer line, with any descriptors the answer carries.
//! Holding no connection between calls, a client survives shim restarts of
//! the runtime itself: a new runtime just makes a new client.

use std::io;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use oci_spec::runtime::LinuxResources;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Interest};
use tokio::net::UnixStream;

use crate::args::ShimArgs;
use crate::fdpass::recv_with_fds;
use crate::protocol::{
    ContainerState, ErrorKind, Event, ExecProcess, FdRole, LOG_FILE, MAX_LINE, Request, Response,
    SOCKET_NAME,
};

/// How long a new shim may take to answer.
const SPAWN_TIMEOUT: Duration = Duration::from_secs(20);

/// A failure talking to a shim.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// No shim answers at the socket (it is gone, or never started).
    #[error("connecting to the shim at {socket}: {source}")]
    Connect {
        /// The socket.
        socket: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// The connection failed mid-call.
    #[error("talking to the shim at {socket}: {source}")]
    Io {
        /// The socket.
        socket: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// The shim answered something this client does not expect.
    #[error("unexpected answer from the shim at {socket}: {message}")]
    Protocol {
        /// The socket.
        socket: PathBuf,
        /// What was wrong.
        message: String,
    },
    /// The shim refused or failed the request.
    #[error("{message}")]
    Shim {
        /// Class of the failure.
        kind: ErrorKind,
        /// The shim's message.
        message: String,
    },
    /// Starting a shim failed.
    #[error("starting the shim of {pod_dir} with {binary}: {message}")]
    Spawn {
        /// The binary run as `<binary> shim ...`.
        binary: PathBuf,
        /// The pod directory.
        pod_dir: PathBuf,
        /// Its stderr, exit status and the tail of `shim.log`.
        message: String,
    },
}

impl ClientError {
    /// The protocol error class (Internal for transport failures).
    pub fn kind(&self) -> ErrorKind {
        match self {
            ClientError::Shim { kind, .. } => *kind,
            _ => ErrorKind::Internal,
        }
    }

    /// Whether no shim listens: the pod's shim is gone.
    pub fn is_unreachable(&self) -> bool {
        matches!(self, ClientError::Connect { .. })
    }
}

/// Who a shim is ([`Response::Hello`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShimInfo {
    /// The shim's pid.
    pub pid: u32,
    /// Its crate version.
    pub version: String,
    /// Its protocol version.
    pub protocol: u32,
    /// The pod it serves.
    pub sandbox_id: String,
}

/// A process's stdio handed over by the shim.
#[derive(Debug)]
pub enum ProcessIo {
    /// Pipes: a writer to stdin (when asked for), readers of stdout and stderr.
    Pipes {
        /// Write end of the process's stdin.
        stdin: Option<OwnedFd>,
        /// Read end of its stdout.
        stdout: Option<OwnedFd>,
        /// Read end of its stderr.
        stderr: Option<OwnedFd>,
    },
    /// A terminal: read output from it, write input to it.
    Terminal(OwnedFd),
}

/// A started exec process.
#[derive(Debug)]
pub struct ExecStarted {
    /// Its pid in the shim's PID namespace.
    pub pid: i32,
    /// Its stdio.
    pub io: ProcessIo,
}

/// What to create ([`Request::Create`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CreateOptions {
    /// CRI log file.
    pub log_path: Option<PathBuf>,
    /// Keep stdin open for attach.
    pub stdin: bool,
    /// Close stdin after the first attach session.
    pub stdin_once: bool,
    /// Allocate a pty.
    pub tty: bool,
}

/// The runtime's handle on one pod's shim.
#[derive(Debug, Clone)]
pub struct ShimClient {
    pod_dir: PathBuf,
    socket: PathBuf,
}

impl ShimClient {
    /// A client for the shim of `pod_dir`, without talking to it yet.
    pub fn new(pod_dir: impl Into<PathBuf>) -> Self {
        let pod_dir = pod_dir.into();
        let socket = pod_dir.join(SOCKET_NAME);
        ShimClient { pod_dir, socket }
    }

    /// Connects to the shim of `pod_dir` and checks that it answers.
    pub async fn connect(pod_dir: impl Into<PathBuf>) -> Result<Self, ClientError> {
        let client = ShimClient::new(pod_dir);
        client.hello().await?;
        Ok(client)
    }

    /// The pod directory.
    pub fn pod_dir(&self) -> &Path {
        &self.pod_dir
    }

    /// Who the shim is.
    pub async fn hello(&self) -> Result<ShimInfo, ClientError> {
        match self.call(&Request::Hello).await? {
            (
                Response::Hello {
                    pid,
                    version,
                    protocol,
                    sandbox_id,
                },
                _,
            ) => Ok(ShimInfo {
                pid,
                version,
                protocol,
                sandbox_id,
            }),
            (other, _) => Err(self.unexpected(&other)),
        }
    }

    /// Creates container `id` from `bundle`; returns its init pid.
    pub async fn create(
        &self,
        id: &str,
        bundle: &Path,
        options: &CreateOptions,
    ) -> Result<i32, ClientError> {
        let request = Request::Create {
            id: id.to_owned(),
            bundle: bundle.to_path_buf(),
            log_path: options.log_path.clone(),
            stdin: options.stdin,
            stdin_once: options.stdin_once,
            tty: options.tty,
        };
        match self.call(&request).await? {
            (Response::Created { pid }, _) => Ok(pid),
            (other, _) => Err(self.unexpected(&other)),
        }
    }

    /// Starts container `id`; returns its pid and start time (ns since the epoch).
    pub async fn start(&self, id: &str) -> Result<(i32, i64), ClientError> {
        match self.call(&Request::Start { id: id.to_owned() }).await? {
            (Response::Started { pid, started_at_ns }, _) => Ok((pid, started_at_ns)),
            (other, _) => Err(self.unexpected(&other)),
        }
    }

    /// Sends `signal` to container `id`'s init (a no-op once it exited).
    pub async fn signal(&self, id: &str, signal: i32) -> Result<(), ClientError> {
        self.call_ok(&Request::Signal {
            id: id.to_owned(),
            exec_id: None,
            signal,
        })
        .await
    }

    /// Sends `signal` to exec process `exec_id` of container `id`.
    pub async fn signal_exec(
        &self,
        id: &str,
        exec_id: &str,
        signal: i32,
    ) -> Result<(), ClientError> {
        self.call_ok(&Request::Signal {
            id: id.to_owned(),
            exec_id: Some(exec_id.to_owned()),
            signal,
        })
        .await
    }

    /// The state of container `id`.
    pub async fn state(&self, id: &str) -> Result<ContainerState, ClientError> {
        let mut states = self.states_of(Some(id)).await?;
        states.pop().ok_or_else(|| ClientError::Protocol {
            socket: self.socket.clone(),
            message: format!("no state for container {id:?}"),
        })
    }

    /// The state of every container in the pod.
    pub async fn states(&self) -> Result<Vec<ContainerState>, ClientError> {
        self.states_of(None).await
    }

    async fn states_of(&self, id: Option<&str>) -> Result<Vec<ContainerState>, ClientError> {
        let request = Request::State {
            id: id.map(str::to_owned),
        };
        match self.call(&request).await? {
            (Response::States { containers }, _) => Ok(containers),
            (other, _) => Err(self.unexpected(&other)),
        }
    }

    /// Deletes container `id` (refused while it runs).
    pub async fn delete(&self, id: &str) -> Result<(), ClientError> {
        self.call_ok(&Request::Delete { id: id.to_owned() }).await
    }

    /// Runs `process` in container `id` as exec `exec_id`.
    pub async fn exec(
        &self,
        id: &str,
        exec_id: &str,
        process: &ExecProcess,
        stdin: bool,
        tty: bool,
    ) -> Result<ExecStarted, ClientError> {
        let request = Request::Exec {
            id: id.to_owned(),
            exec_id: exec_id.to_owned(),
            process: process.clone(),
            stdin,
            tty,
        };
        match self.call(&request).await? {
            (Response::ExecStarted { pid, fds: roles }, fds) => Ok(ExecStarted {
                pid,
                io: self.process_io(&roles, fds)?,
            }),
            (other, _) => Err(self.unexpected(&other)),
        }
    }

    /// Waits for exec `exec_id` to exit; returns its exit code.
    pub async fn exec_wait(&self, exec_id: &str) -> Result<i32, ClientError> {
        let request = Request::ExecWait {
            exec_id: exec_id.to_owned(),
        };
        match self.call(&request).await? {
            (Response::ExecExited { exit_code }, _) => Ok(exit_code),
            (other, _) => Err(self.unexpected(&other)),
        }
    }

    /// Attaches to container `id`: its live output, and its stdin when it has one.
    pub async fn attach(&self, id: &str) -> Result<ProcessIo, ClientError> {
        match self.call(&Request::Attach { id: id.to_owned() }).await? {
            (Response::Attached { fds: roles }, fds) => self.process_io(&roles, fds),
            (other, _) => Err(self.unexpected(&other)),
        }
    }

    /// Resizes the pty of container `id`, or of its exec `exec_id`.
    pub async fn resize(
        &self,
        id: &str,
        exec_id: Option<&str>,
        width: u16,
        height: u16,
    ) -> Result<(), ClientError> {
        self.call_ok(&Request::Resize {
            id: id.to_owned(),
            exec_id: exec_id.map(str::to_owned),
            width,
            height,
        })
        .await
    }

    /// Reopens container `id`'s log file.
    pub async fn reopen_log(&self, id: &str) -> Result<(), ClientError> {
        self.call_ok(&Request::ReopenLog { id: id.to_owned() })
            .await
    }

    /// Applies `resources` to container `id`'s cgroup.
    pub async fn update(&self, id: &str, resources: &LinuxResources) -> Result<(), ClientError> {
        self.call_ok(&Request::Update {
            id: id.to_owned(),
            resources: Box::new(resources.clone()),
        })
        .await
    }

    /// Subscribes to the pod's container events.
    pub async fn events(&self) -> Result<EventStream, ClientError> {
        let mut stream = self.connect_socket().await?;
        self.send(&mut stream, &Request::Events).await?;
        Ok(EventStream {
            reader: BufReader::new(stream),
            socket: self.socket.clone(),
            line: String::new(),
        })
    }

    /// Stops the pod's PID 1 and lets the shim exit (refused while a container runs).
    pub async fn shutdown(&self) -> Result<(), ClientError> {
        self.call_ok(&Request::Shutdown).await
    }

    async fn call_ok(&self, request: &Request) -> Result<(), ClientError> {
        match self.call(request).await? {
            (Response::Ok, _) => Ok(()),
            (other, _) => Err(self.unexpected(&other)),
        }
    }

    /// One request, one answer (with descriptors); error answers become errors.
    async fn call(&self, request: &Request) -> Result<(Response, Vec<OwnedFd>), ClientError> {
        let mut stream = self.connect_socket().await?;
        self.send(&mut stream, request).await?;
        let io_error = |source| ClientError::Io {
            socket: self.socket.clone(),
            source,
        };
        let mut line = Vec::new();
        let mut fds = Vec::new();
        let mut chunk = vec![0u8; 16 * 1024];
        let end = loop {
            let n = stream
                .async_io(Interest::READABLE, || {
                    recv_with_fds(stream.as_fd(), &mut chunk, &mut fds).map_err(io::Error::from)
                })
                .await
                .map_err(io_error)?;
            if n == 0 {
                return Err(io_error(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "the shim closed the connection without answering",
                )));
            }
            let start = line.len();
            line.extend_from_slice(&chunk[..n]);
            if let Some(at) = line[start..].iter().position(|&b| b == b'\n') {
                break start + at;
            }
            if line.len() > MAX_LINE {
                return Err(ClientError::Protocol {
                    socket: self.socket.clone(),
                    message: "answer line too long".into(),
                });
            }
        };
        let response: Response =
            serde_json::from_slice(&line[..end]).map_err(|err| ClientError::Protocol {
                socket: self.socket.clone(),
                message: format!("malformed answer: {err}"),
            })?;
        match response {
            Response::Error { kind, message } => Err(ClientError::Shim { kind, message }),
            response => Ok((response, fds)),
        }
    }

    async fn send(&self, stream: &mut UnixStream, request: &Request) -> Result<(), ClientError> {
        let mut line = serde_json::to_vec(request).map_err(|err| ClientError::Protocol {
            socket: self.socket.clone(),
            message: format!("encoding the request: {err}"),
        })?;
        line.push(b'\n');
        stream
            .write_all(&line)
            .await
            .map_err(|source| ClientError::Io {
                socket: self.socket.clone(),
                source,
            })
    }

    async fn connect_socket(&self) -> Result<UnixStream, ClientError> {
        connect_unix(&self.socket)
            .await
            .map_err(|source| ClientError::Connect {
                socket: self.socket.clone(),
                source,
            })
    }

    fn process_io(&self, roles: &[FdRole], fds: Vec<OwnedFd>) -> Result<ProcessIo, ClientError> {
        if roles.len() != fds.len() {
            return Err(ClientError::Protocol {
                socket: self.socket.clone(),
                message: format!(
                    "{} descriptors announced, {} received",
                    roles.len(),
                    fds.len()
                ),
            });
        }
        let mut stdin = None;
        let mut stdout = None;
        let mut stderr = None;
        for (role, fd) in roles.iter().zip(fds) {
            match role {
                FdRole::Terminal => return Ok(ProcessIo::Terminal(fd)),
                FdRole::Stdin => stdin = Some(fd),
                FdRole::Stdout => stdout = Some(fd),
                FdRole::Stderr => stderr = Some(fd),
            }
        }
        Ok(ProcessIo::Pipes {
            stdin,
            stdout,
            stderr,
        })
    }

    fn unexpected(&self, response: &Response) -> ClientError {
        ClientError::Protocol {
            socket: self.socket.clone(),
            message: format!("{response:?}"),
        }
    }
}

/// A stream of container events from a shim.
#[derive(Debug)]
pub struct EventStream {
    reader: BufReader<UnixStream>,
    socket: PathBuf,
    line: String,
}

impl EventStream {
    /// The next event; `None` when the shim closed the stream (it exited).
    pub async fn next(&mut self) -> Result<Option<Event>, ClientError> {
        self.line.clear();
        let n = self
            .reader
            .read_line(&mut self.line)
            .await
            .map_err(|source| ClientError::Io {
                socket: self.socket.clone(),
                source,
            })?;
        if n == 0 {
            return Ok(None);
        }
        serde_json::from_str(self.line.trim_end())
            .map(Some)
            .map_err(|err| ClientError::Protocol {
                socket: self.socket.clone(),
                message: format!("malformed event: {err}"),
            })
    }
}

/// Connects to a unix socket, even past `sun_path`'s length limit (through
/// `/proc/self/fd/<dir>/<name>`).
async fn connect_unix(path: &Path) -> io::Result<UnixStream> {
    if path.as_os_str().len() <= 100 {
        return UnixStream::connect(path).await;
    }
    let (Some(dir), Some(name)) = (path.parent(), path.file_name()) else {
        return UnixStream::connect(path).await;
    };
    let dir = std::fs::File::open(dir)?;
    let short = Path::new("/proc/self/fd")
        .join(dir.as_raw_fd().to_string())
        .join(name);
    let stream = UnixStream::connect(&short).await;
    drop(dir);
    stream
}

/// Starts `<binary> shim <args>` and waits until the shim answers Hello.
pub async fn spawn_shim(binary: &Path, args: &ShimArgs) -> Result<ShimClient, ClientError> {
    let spawn_error = |message: String| ClientError::Spawn {
        binary: binary.to_path_buf(),
        pod_dir: args.pod_dir.clone(),
        message: with_log_tail(message, &args.pod_dir),
    };
    let mut command = tokio::process::Command::new(binary);
    command
        .arg("shim")
        .args(args.to_args())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .env_remove("LISTEN_FDS")
        .env_remove("LISTEN_PID")
        .env_remove("LISTEN_FDNAMES")
        .env_remove("NOTIFY_SOCKET")
        .kill_on_drop(true);
    let output = match tokio::time::timeout(SPAWN_TIMEOUT, command.output()).await {
        Ok(Ok(output)) => output,
        Ok(Err(err)) => return Err(spawn_error(err.to_string())),
        Err(_) => return Err(spawn_error(format!("not ready after {SPAWN_TIMEOUT:?}"))),
    };
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        return Err(spawn_error(format!(
            "{}: {}",
            output.status,
            stderr.trim_end()
        )));
    }
    let client = ShimClient::new(&args.pod_dir);
    match tokio::time::timeout(SPAWN_TIMEOUT, client.hello()).await {
        Ok(Ok(_)) => Ok(client),
        Ok(Err(err)) => Err(spawn_error(format!("ready, but Hello failed: {err}"))),
        Err(_) => Err(spawn_error("ready, but Hello went unanswered".into())),
    }
}

fn with_log_tail(message: String, pod_dir: &Path) -> String {
    let Ok(log) = std::fs::read_to_string(pod_dir.join(LOG_FILE)) else {
        return message;
    };
    let lines: Vec<&str> = log.lines().collect();
    let tail = lines[lines.len().saturating_sub(10)..].join("\n");
    if tail.is_empty() {
        message
    } else {
        format!("{message}\n{LOG_FILE}:\n{tail}")
    }
}
