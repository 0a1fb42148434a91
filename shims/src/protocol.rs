//! The shim protocol: JSON lines over the pod's unix socket `shim.sock`.
//!
//! One request per connection: the client writes one [`Request`] line, the
//! shim answers one [`Response`] line. Answers that hand over file
//! descriptors (exec and attach) carry them as `SCM_RIGHTS` on that line, in
//! the order their `fds` field lists. [`Request::Events`] keeps the
//! connection open and streams one [`Event`] line per event.

use std::path::PathBuf;

use oci_spec::runtime::{LinuxResources, User};
use serde::{Deserialize, Serialize};

/// The shim's socket, in the pod directory.
pub const SOCKET_NAME: &str = "shim.sock";
/// The shim's pid file, in the pod directory.
pub const PID_FILE: &str = "shim.pid";
/// The shim's own log, in the pod directory.
pub const LOG_FILE: &str = "shim.log";
/// Directory of exit records (`<container-id>.json`), in the pod directory.
pub const EXITS_DIR: &str = "exits";
/// Directory of namespace pins (`net`, `ipc`, `uts`, `pid`), in the pod directory.
pub const NS_DIR: &str = "ns";
/// libcontainer's state root (one directory per container), in the pod directory.
pub const STATE_DIR: &str = "libcontainer";
/// The Wasm engine's state root (one directory per container), in the pod directory.
pub const WASM_STATE_DIR: &str = "wasm";
/// The protocol version a shim reports in [`Response::Hello`].
pub const PROTOCOL_VERSION: u32 = 1;
/// The longest request or response line either side accepts.
pub const MAX_LINE: usize = 4 << 20;

/// What the runtime asks of a shim.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum Request {
    /// Who are you? Answered by [`Response::Hello`].
    Hello,
    /// Create a container from an OCI bundle (not started yet).
    Create {
        /// Container id.
        id: String,
        /// Bundle directory holding `config.json`; `root.path` is already mounted.
        bundle: PathBuf,
        /// CRI log file; no log is written when absent.
        #[serde(default)]
        log_path: Option<PathBuf>,
        /// Keep a stdin pipe open for attach.
        #[serde(default)]
        stdin: bool,
        /// Close stdin after the first attach session ends.
        #[serde(default)]
        stdin_once: bool,
        /// Allocate a pty (must match `process.terminal` in the bundle).
        #[serde(default)]
        tty: bool,
    },
    /// Start a created container.
    Start {
        /// Container id.
        id: String,
    },
    /// Send a signal to a container's init process, or to one of its exec processes.
    Signal {
        /// Container id.
        id: String,
        /// Exec process to signal instead of the init process.
        #[serde(default)]
        exec_id: Option<String>,
        /// Signal number.
        signal: i32,
    },
    /// Report one container, or all when `id` is absent.
    State {
        /// Container id.
        #[serde(default)]
        id: Option<String>,
    },
    /// Remove a container that is not running (its libcontainer state, cgroup and exit record).
    Delete {
        /// Container id.
        id: String,
    },
    /// Run an extra process in a running container.
    Exec {
        /// Container id.
        id: String,
        /// Caller-chosen id of the exec process, unique in the pod.
        exec_id: String,
        /// What to run; everything else is the container's own process settings.
        process: ExecProcess,
        /// Give the caller a stdin writer.
        #[serde(default)]
        stdin: bool,
        /// Run on a pty; the caller gets its master.
        #[serde(default)]
        tty: bool,
    },
    /// Wait for an exec process to exit (answered when it has).
    ExecWait {
        /// Exec id.
        exec_id: String,
    },
    /// Receive a running container's live output and, when it has stdin, write to it.
    Attach {
        /// Container id.
        id: String,
    },
    /// Resize the pty of a container or one of its exec processes.
    Resize {
        /// Container id.
        id: String,
        /// Exec process whose pty to resize instead of the container's.
        #[serde(default)]
        exec_id: Option<String>,
        /// Columns.
        width: u16,
        /// Rows.
        height: u16,
    },
    /// Close and reopen the container's log file (after the kubelet renamed it).
    ReopenLog {
        /// Container id.
        id: String,
    },
    /// Apply new resources to the container's cgroup.
    Update {
        /// Container id.
        id: String,
        /// The resources to apply.
        resources: Box<LinuxResources>,
    },
    /// Stream events on this connection until it closes.
    Events,
    /// Stop the pod's PID-1 process and exit; refused while a container runs.
    Shutdown,
}

/// The process an [`Request::Exec`] runs. The container's own process
/// settings (capabilities, no-new-privileges, rlimits, AppArmor, ...) apply;
/// these fields replace or extend them.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ExecProcess {
    /// Command and arguments (required).
    pub args: Vec<String>,
    /// Extra environment (`KEY=value`), overriding the container's entries of the same key.
    #[serde(default)]
    pub env: Vec<String>,
    /// Working directory; the container's when absent.
    #[serde(default)]
    pub cwd: Option<PathBuf>,
    /// User; the container's when absent.
    #[serde(default)]
    pub user: Option<User>,
}

/// What a shim answers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum Response {
    /// The answer to [`Request::Hello`].
    Hello {
        /// The shim's pid.
        pid: u32,
        /// The shim's crate version.
        version: String,
        /// The protocol version ([`PROTOCOL_VERSION`]).
        protocol: u32,
        /// The pod this shim serves.
        sandbox_id: String,
    },
    /// The container exists; its init process waits for Start.
    Created {
        /// Init process pid.
        pid: i32,
    },
    /// The container runs.
    Started {
        /// Init process pid.
        pid: i32,
        /// When it started, nanoseconds since the epoch.
        started_at_ns: i64,
    },
    /// Done.
    Ok,
    /// The answer to [`Request::State`].
    States {
        /// One entry per container asked about.
        containers: Vec<ContainerState>,
    },
    /// The exec process runs; its stdio comes as file descriptors in `fds` order.
    ExecStarted {
        /// Exec process pid (in the shim's pid namespace).
        pid: i32,
        /// What each passed descriptor is.
        fds: Vec<FdRole>,
    },
    /// The exec process exited.
    ExecExited {
        /// Exit code (128 + signal when killed by a signal).
        exit_code: i32,
    },
    /// Attached; the container's stdio comes as file descriptors in `fds` order.
    Attached {
        /// What each passed descriptor is.
        fds: Vec<FdRole>,
    },
    /// The request failed.
    Error {
        /// Class of failure, for status codes.
        kind: ErrorKind,
        /// What failed, on what.
        message: String,
    },
}

/// What a descriptor handed over with an answer is, from the receiver's side.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum FdRole {
    /// Write end: bytes written reach the process's stdin.
    Stdin,
    /// Read end: the process's stdout.
    Stdout,
    /// Read end: the process's stderr.
    Stderr,
    /// Read and write: the terminal (output from it, input to it).
    Terminal,
}

/// Classes of failure, each mapping to one gRPC status code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ErrorKind {
    /// Unknown container or exec id.
    NotFound,
    /// The id is taken.
    AlreadyExists,
    /// The request itself is wrong (bad bundle, bad arguments).
    InvalidArgument,
    /// The container is not in a state that allows this.
    FailedPrecondition,
    /// Anything else.
    Internal,
}

/// Something that happened to a container, streamed to [`Request::Events`] subscribers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum Event {
    /// A container was created.
    Created {
        /// Container id.
        id: String,
        /// Init process pid.
        pid: i32,
    },
    /// A container started.
    Started {
        /// Container id.
        id: String,
        /// Init process pid.
        pid: i32,
        /// Nanoseconds since the epoch.
        started_at_ns: i64,
    },
    /// A container's init process exited.
    Exited {
        /// Container id.
        id: String,
        /// Init process pid.
        pid: i32,
        /// Exit code (128 + signal when killed by a signal).
        exit_code: i32,
        /// Nanoseconds since the epoch.
        finished_at_ns: i64,
        /// The cgroup recorded an OOM kill.
        oom_killed: bool,
        /// `Completed`, `Error` or `OOMKilled`.
        reason: String,
    },
    /// A container was deleted.
    Deleted {
        /// Container id.
        id: String,
    },
}

/// Lifecycle state of a container in a shim.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ContainerStatus {
    /// Created, init process waiting for Start.
    Created,
    /// Started and not exited.
    Running,
    /// The init process exited.
    Exited,
}

/// A container as its shim knows it; also the format of exit records
/// (`exits/<id>.json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ContainerState {
    /// Container id.
    pub id: String,
    /// Lifecycle state.
    pub status: ContainerStatus,
    /// Init process pid.
    pub pid: i32,
    /// Exit code once exited (128 + signal when killed by a signal).
    #[serde(default)]
    pub exit_code: Option<i32>,
    /// Nanoseconds since the epoch.
    pub created_at_ns: i64,
    /// Nanoseconds since the epoch.
    #[serde(default)]
    pub started_at_ns: Option<i64>,
    /// Nanoseconds since the epoch.
    #[serde(default)]
    pub finished_at_ns: Option<i64>,
    /// `Completed`, `Error` or `OOMKilled` once exited.
    #[serde(default)]
    pub reason: Option<String>,
    /// Human-readable detail about the exit.
    #[serde(default)]
    pub message: Option<String>,
    /// The cgroup recorded an OOM kill.
    #[serde(default)]
    pub oom_killed: bool,
    /// The CRI log file.
    #[serde(default)]
    pub log_path: Option<PathBuf>,
    /// Created with a pty.
    #[serde(default)]
    pub tty: bool,
    /// Created with stdin.
    #[serde(default)]
    pub stdin: bool,
}

impl Response {
    /// An error answer.
    pub fn error(kind: ErrorKind, message: impl Into<String>) -> Self {
        Response::Error {
            kind,
            message: message.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_tagged_json_lines() {
        let request = Request::Signal {
            id: "c1".into(),
            exec_id: None,
            signal: 15,
        };
        let line = serde_json::to_string(&request).unwrap();
        assert_eq!(
            line,
            r#"{"type":"Signal","id":"c1","exec_id":null,"signal":15}"#
        );
        let back: Request =
            serde_json::from_str(r#"{"type":"Signal","id":"c1","signal":9}"#).unwrap();
        assert_eq!(
            back,
            Request::Signal {
                id: "c1".into(),
                exec_id: None,
                signal: 9
            }
        );
        let state: Request = serde_json::from_str(r#"{"type":"State"}"#).unwrap();
        assert_eq!(state, Request::State { id: None });
    }

    #[test]
    fn responses_round_trip() {
        for response in [
            Response::Ok,
            Response::error(ErrorKind::NotFound, "container \"x\" not found"),
            Response::Attached {
                fds: vec![FdRole::Stdin, FdRole::Stdout, FdRole::Stderr],
            },
            Response::States { containers: vec![] },
        ] {
            let line = serde_json::to_string(&response).unwrap();
            assert!(!line.contains('\n'));
            let back: Response = serde_json::from_str(&line).unwrap();
            assert_eq!(back, response);
        }
    }

    #[test]
    fn update_carries_oci_resources() {
        let line = r#"{"type":"Update","id":"c","resources":{"memory":{"limit":1048576},"cpu":{"shares":512}}}"#;
        let request: Request = serde_json::from_str(line).unwrap();
        let Request::Update { resources, .. } = request else {
            panic!("not an update: {request:?}");
        };
        assert_eq!(resources.memory().as_ref().unwrap().limit(), Some(1048576));
        assert_eq!(resources.cpu().as_ref().unwrap().shares(), Some(512));
    }
}
