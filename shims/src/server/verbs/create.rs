//! `Create`: a container from its bundle, with its stdio wired to the shim.

use std::os::fd::OwnedFd;
use std::path::PathBuf;

use nix::fcntl::OFlag;
use nix::unistd::pipe2;

use crate::crilog::CriLogFile;
use crate::engine::{ChildStdio, CreateSpec, Engine};
use crate::protocol::{ContainerState, ContainerStatus, ErrorKind, Event, Response};
use crate::server::io::ContainerIo;
use crate::server::{ContainerRecord, Reply, Shim, now_ns};

/// The fields of a Create request.
#[derive(Debug)]
pub(crate) struct CreateRequest {
    pub id: String,
    pub bundle: PathBuf,
    pub log_path: Option<PathBuf>,
    pub stdin: bool,
    pub stdin_once: bool,
    pub tty: bool,
}

/// The shim's ends of a container's pipes.
struct ShimEnds {
    stdout: OwnedFd,
    stderr: OwnedFd,
    stdin: Option<OwnedFd>,
}

fn pipes(stdin: bool) -> std::io::Result<(ShimEnds, ChildStdio)> {
    let (out_r, out_w) = pipe2(OFlag::O_CLOEXEC)?;
    let (err_r, err_w) = pipe2(OFlag::O_CLOEXEC)?;
    let (in_shim, in_child) = if stdin {
        let (in_r, in_w) = pipe2(OFlag::O_CLOEXEC)?;
        (Some(in_w), Some(in_r))
    } else {
        (None, None)
    };
    Ok((
        ShimEnds {
            stdout: out_r,
            stderr: err_r,
            stdin: in_shim,
        },
        ChildStdio {
            stdin: in_child,
            stdout: Some(out_w),
            stderr: Some(err_w),
        },
    ))
}

impl<E: Engine> Shim<E> {
    pub(crate) fn create(&mut self, request: CreateRequest) -> Reply {
        let id = request.id.as_str();
        if self.exiting {
            return Reply::error(ErrorKind::FailedPrecondition, "the shim is shutting down");
        }
        if self.containers.contains_key(id) {
            return Reply::error(
                ErrorKind::AlreadyExists,
                format!("container {id:?} already exists"),
            );
        }
        if id.is_empty() || id.contains('/') || id.starts_with('.') {
            return Reply::error(
                ErrorKind::InvalidArgument,
                format!("invalid container id {id:?}"),
            );
        }
        if !request.bundle.is_absolute() {
            return Reply::error(
                ErrorKind::InvalidArgument,
                format!(
                    "bundle {} is not an absolute path",
                    request.bundle.display()
                ),
            );
        }
        let log = match &request.log_path {
            Some(path) => match CriLogFile::open(path) {
                Ok(log) => Some(log),
                Err(err) => {
                    return Reply::error(
                        ErrorKind::InvalidArgument,
                        format!("opening log {}: {err}", path.display()),
                    );
                }
            },
            None => None,
        };
        let (shim_ends, child) = if request.tty {
            (None, ChildStdio::default())
        } else {
            match pipes(request.stdin) {
                Ok((ours, theirs)) => (Some(ours), theirs),
                Err(err) => {
                    return Reply::error(ErrorKind::Internal, format!("creating pipes: {err}"));
                }
            }
        };
        let spec = CreateSpec {
            id,
            bundle: &request.bundle,
            tty: request.tty,
        };
        let spawned = match self.engine.create(spec, child) {
            Ok(spawned) => spawned,
            Err(err) => {
                tracing::warn!(container_id = id, %err, "create failed");
                return Reply::error(err.kind(), err.to_string());
            }
        };
        let io = match (shim_ends, spawned.pty_master) {
            (Some(ends), _) => ContainerIo::pipes(
                log,
                ends.stdout,
                ends.stderr,
                ends.stdin,
                request.stdin_once,
            ),
            (None, Some(master)) => ContainerIo::terminal(log, master, request.stdin),
            (None, None) => Err(std::io::Error::other("the engine returned no pty")),
        };
        let io = match io {
            Ok(io) => io,
            Err(err) => {
                let _ = self.engine.signal(spawned.pid, libc::SIGKILL);
                let _ = nix::sys::wait::waitpid(spawned.pid, None);
                let _ = self.engine.delete(id);
                return Reply::error(
                    ErrorKind::Internal,
                    format!("wiring stdio of {id:?}: {err}"),
                );
            }
        };
        let pid = spawned.pid.as_raw();
        let state = ContainerState {
            id: id.to_owned(),
            status: ContainerStatus::Created,
            pid,
            exit_code: None,
            created_at_ns: now_ns(),
            started_at_ns: None,
            finished_at_ns: None,
            reason: None,
            message: None,
            oom_killed: false,
            log_path: request.log_path.clone(),
            tty: request.tty,
            stdin: request.stdin,
        };
        tracing::info!(container_id = id, pid, "container created");
        self.containers
            .insert(id.to_owned(), ContainerRecord { state, io });
        self.publish(Event::Created {
            id: id.to_owned(),
            pid,
        });
        Reply::Now(Response::Created { pid }, Vec::new())
    }
}
