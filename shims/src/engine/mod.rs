//! The seam between the shim's bookkeeping and the code that makes
//! containers: [`Engine`], implemented by [`Libcontainer`] (OCI containers)
//! and [`Wasm`] (WebAssembly guests in wasmtime), both behind [`Dispatch`],
//! which picks one per container; and by a fake in unit tests.

mod clamp;
mod dispatch;
mod libcontainer;
mod wasm;

use std::collections::BTreeSet;
use std::os::fd::{OwnedFd, RawFd};
use std::path::Path;

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use oci_spec::runtime::LinuxResources;

pub use self::dispatch::Dispatch;
pub use self::libcontainer::Libcontainer;
pub use self::wasm::Wasm;
use crate::cgroups::{CgroupFs, CgroupProbe};
use crate::protocol::{ErrorKind, ExecProcess};

/// The child's ends of a process's stdio pipes (all `None` with a pty).
#[derive(Debug, Default)]
pub struct ChildStdio {
    /// Read end for the process's stdin.
    pub stdin: Option<OwnedFd>,
    /// Write end for the process's stdout.
    pub stdout: Option<OwnedFd>,
    /// Write end for the process's stderr.
    pub stderr: Option<OwnedFd>,
}

/// A process an engine started (a container's init or an exec).
#[derive(Debug)]
pub struct Spawned {
    /// Its pid; the shim is its parent.
    pub pid: Pid,
    /// The master of its pty, when it has one.
    pub pty_master: Option<OwnedFd>,
}

/// What a container is made from.
#[derive(Debug, Clone, Copy)]
pub struct CreateSpec<'a> {
    /// Container id.
    pub id: &'a str,
    /// The OCI bundle.
    pub bundle: &'a Path,
    /// Whether the process gets a pty.
    pub tty: bool,
}

/// What an exec runs.
#[derive(Debug, Clone, Copy)]
pub struct ExecSpec<'a> {
    /// The container.
    pub id: &'a str,
    /// The exec id.
    pub exec_id: &'a str,
    /// The process.
    pub process: &'a ExecProcess,
    /// Whether the process gets a pty.
    pub tty: bool,
}

/// Makes and manages containers. Calls may fork: the shim calls them from
/// its only thread.
pub trait Engine {
    /// Creates a container whose init waits for [`Engine::start`].
    fn create(&mut self, spec: CreateSpec<'_>, stdio: ChildStdio) -> Result<Spawned, EngineError>;
    /// Lets a created container's init run its process.
    fn start(&mut self, id: &str) -> Result<(), EngineError>;
    /// Runs an extra process in a running container.
    fn exec(&mut self, spec: ExecSpec<'_>, stdio: ChildStdio) -> Result<Spawned, EngineError>;
    /// Removes a container whose processes are gone: state and cgroup.
    fn delete(&mut self, id: &str) -> Result<(), EngineError>;
    /// Applies new resources to a container's cgroup.
    fn update(&mut self, id: &str, resources: &LinuxResources) -> Result<(), EngineError>;
    /// Whether the container's cgroup recorded an OOM kill.
    fn oom_killed(&self, id: &str) -> bool;
    /// Kills what is left in the container's cgroup after its init exited.
    fn kill_leftovers(&self, id: &str);
    /// Sends a signal to a process the engine started.
    fn signal(&self, pid: Pid, signal: i32) -> Result<(), EngineError>;
}

/// A failure making or managing a container.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// The bundle's config.json is missing or malformed.
    #[error("reading {path}: {message}")]
    Bundle {
        /// The config.json.
        path: String,
        /// Why.
        message: String,
    },
    /// The request does not fit the bundle or the container.
    #[error("{0}")]
    Invalid(String),
    /// The container is not known to the engine.
    #[error("container {0:?} not found")]
    NotFound(String),
    /// libcontainer refused or failed.
    #[error("{action} container {id:?}: {message}")]
    Libcontainer {
        /// What was being done.
        action: &'static str,
        /// The container.
        id: String,
        /// libcontainer's error with its causes.
        message: String,
        /// Class of the failure.
        kind: ErrorKind,
    },
    /// A Wasm container's process could not be made or driven.
    #[error("{action} Wasm container {id:?}: {message}")]
    Wasm {
        /// What was being done.
        action: &'static str,
        /// The container.
        id: String,
        /// What failed (the child's report).
        message: String,
        /// Class of the failure.
        kind: ErrorKind,
    },
    /// Receiving the pty master from the container failed.
    #[error("receiving the pty of {id:?}: {message}")]
    Console {
        /// The container.
        id: String,
        /// Why.
        message: String,
    },
    /// A cgroup operation failed.
    #[error("cgroup {cgroup} of {id:?}: {message}")]
    Cgroup {
        /// The container.
        id: String,
        /// The cgroup path.
        cgroup: String,
        /// libcgroups' error.
        message: String,
    },
    /// A signal could not be sent.
    #[error("sending signal {signal} to pid {pid}: {errno}")]
    Signal {
        /// The pid.
        pid: i32,
        /// The signal.
        signal: i32,
        /// Why.
        errno: nix::errno::Errno,
    },
    /// Another system call failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// Why.
        source: std::io::Error,
    },
}

impl EngineError {
    /// The protocol error class.
    pub fn kind(&self) -> ErrorKind {
        match self {
            EngineError::Bundle { .. } | EngineError::Invalid(_) => ErrorKind::InvalidArgument,
            EngineError::NotFound(_) => ErrorKind::NotFound,
            EngineError::Libcontainer { kind, .. } | EngineError::Wasm { kind, .. } => *kind,
            EngineError::Signal { errno, .. } if *errno == nix::errno::Errno::EINVAL => {
                ErrorKind::InvalidArgument
            }
            EngineError::Console { .. }
            | EngineError::Cgroup { .. }
            | EngineError::Signal { .. }
            | EngineError::Io { .. } => ErrorKind::Internal,
        }
    }

    pub(crate) fn io(what: impl Into<String>, source: std::io::Error) -> Self {
        EngineError::Io {
            what: what.into(),
            source,
        }
    }
}

/// Sends `signal` to `pid`, a process an engine started.
pub(crate) fn send_signal(pid: Pid, signal: i32) -> Result<(), EngineError> {
    let errno = |errno| EngineError::Signal {
        pid: pid.as_raw(),
        signal,
        errno,
    };
    let signal = Signal::try_from(signal).map_err(errno)?;
    kill(pid, signal).map_err(errno)
}

/// SIGKILLs every process still in container `id`'s cgroup.
pub(crate) fn kill_cgroup_procs(probe: &CgroupFs, cgroup: &Path, id: &str) {
    for pid in probe.procs(cgroup) {
        tracing::debug!(container_id = id, %pid, "killing a process left behind");
        let _ = kill(pid, Signal::SIGKILL);
    }
}

/// The descriptors open in this process.
pub(crate) fn open_fds() -> BTreeSet<RawFd> {
    std::fs::read_dir("/proc/self/fd")
        .map(|dir| {
            dir.flatten()
                .filter_map(|entry| entry.file_name().to_str()?.parse().ok())
                .collect()
        })
        .unwrap_or_default()
}
