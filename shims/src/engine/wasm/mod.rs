//! The Wasm engine: containers whose process is a WebAssembly guest run by
//! wasmtime inside a child of the shim.
//!
//! `create` forks the (single-threaded) shim; the child sets itself up as
//! the container's process and loads the guest (see `child`), reports on
//! a ready pipe and waits on a start pipe, which `start` writes. The shim
//! is the child's parent, so exits, logs and signals work as for any
//! container. There is nothing to exec into: a guest is one process.
//!
//! # Layout
//!
//! - `bundle`: config.json and the runtime's annotations, read into a `WasmBundle`.
//! - `child`: the forked child: stdio, signals, namespaces, cgroup, user, then the guest.
//! - `guest`: wasmtime and WASI: linking, running, exit codes.
//! - `http`: `wasi:http/proxy` components served over HTTP/1.1 on the pod's network.
//! - `cache`: the on-disk compile cache.
//! - `limits`: the memory limit and the OOM marker.
//! - `interrupt`: SIGTERM as an epoch interruption.
//! - `report`: the child's ready report.

pub(crate) mod bundle;
mod cache;
mod child;
mod guest;
mod http;
mod interrupt;
mod limits;
mod report;

use std::collections::HashMap;
use std::fs;
use std::io::Read;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use libcgroups::common::{CgroupConfig, CgroupManager, ControllerOpt, create_cgroup_manager};
use nix::fcntl::{FcntlArg, FdFlag, OFlag, fcntl};
use nix::sys::signal::{Signal, kill};
use nix::sys::wait::waitpid;
use nix::unistd::{ForkResult, Gid, Pid, Uid, chown, fork, pipe2};
use oci_spec::runtime::LinuxResources;

use self::bundle::WasmBundle;
use self::child::{ChildIo, ChildPlan};
use self::report::Report;
use super::{
    ChildStdio, CreateSpec, Engine, EngineError, ExecSpec, Spawned, kill_cgroup_procs, send_signal,
};
use crate::cgroups::{CgroupFs, CgroupProbe};
use crate::protocol::ErrorKind;
use crate::unix::wait_readable;

/// How long a child may take to load (and compile) its guest.
const READY_TIMEOUT: Duration = Duration::from_secs(600);

/// Wasm containers, their state under `state_root/<id>/`.
#[derive(Debug)]
pub struct Wasm {
    state_root: PathBuf,
    containers: HashMap<String, WasmContainer>,
    probe: CgroupFs,
}

#[derive(Debug)]
struct WasmContainer {
    pid: Pid,
    /// The start pipe's write end, until started.
    start: Option<OwnedFd>,
    cgroup: Option<PathBuf>,
}

impl Wasm {
    /// An engine keeping its state in `state_root` (created if missing).
    pub fn new(state_root: &Path) -> Result<Self, EngineError> {
        fs::create_dir_all(state_root)
            .map_err(|err| EngineError::io(format!("creating {}", state_root.display()), err))?;
        Ok(Wasm {
            state_root: state_root.to_path_buf(),
            containers: HashMap::new(),
            probe: CgroupFs::detect(),
        })
    }

    fn state_dir(&self, id: &str) -> PathBuf {
        self.state_root.join(id)
    }

    /// A fresh state directory owned by the guest's user (it leaves its
    /// OOM marker there after dropping privileges).
    fn make_state_dir(&self, id: &str, bundle: &WasmBundle) -> Result<PathBuf, EngineError> {
        let dir = self.state_dir(id);
        let _ = fs::remove_dir_all(&dir);
        let io = |what: &str, err| EngineError::io(format!("{what} {}", dir.display()), err);
        fs::create_dir(&dir).map_err(|err| io("creating", err))?;
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o700))
            .map_err(|err| io("restricting", err))?;
        chown(
            &dir,
            Some(Uid::from_raw(bundle.user.uid)),
            Some(Gid::from_raw(bundle.user.gid)),
        )
        .map_err(|errno| io("handing over", errno.into()))?;
        Ok(dir)
    }

    fn cgroup_error(id: &str, cgroup: &Path, message: String) -> EngineError {
        EngineError::Cgroup {
            id: id.to_owned(),
            cgroup: cgroup.display().to_string(),
            message,
        }
    }
}

fn wasm_error(id: &str, message: String, kind: ErrorKind) -> EngineError {
    EngineError::Wasm {
        action: "creating",
        id: id.to_owned(),
        message,
        kind,
    }
}

impl Engine for Wasm {
    fn create(&mut self, spec: CreateSpec<'_>, stdio: ChildStdio) -> Result<Spawned, EngineError> {
        let id = spec.id;
        if self.containers.contains_key(id) {
            return Err(wasm_error(
                id,
                "it exists already".into(),
                ErrorKind::AlreadyExists,
            ));
        }
        let bundle = WasmBundle::load(spec.bundle)?;
        if bundle.terminal != spec.tty {
            return Err(EngineError::Invalid(format!(
                "container {id:?}: tty is {} but the bundle's process.terminal is {}",
                spec.tty, bundle.terminal
            )));
        }
        let state_dir = self.make_state_dir(id, &bundle)?;
        let pipe =
            || pipe2(OFlag::O_CLOEXEC).map_err(|errno| EngineError::io("pipe", errno.into()));
        let (ready_r, ready_w) = pipe()?;
        let (start_r, start_w) = pipe()?;
        let (io, pty_master) = if spec.tty {
            let pty = nix::pty::openpty(None, None)
                .map_err(|errno| EngineError::io("opening a pty", errno.into()))?;
            fcntl(
                pty.master.as_raw_fd(),
                FcntlArg::F_SETFD(FdFlag::FD_CLOEXEC),
            )
            .map_err(|errno| EngineError::io("pty", errno.into()))?;
            (ChildIo::Pty(pty.slave), Some(pty.master))
        } else {
            (ChildIo::Pipes(stdio), None)
        };
        // SAFETY: the shim has one thread (the Engine contract); the child
        // runs `child::run`, which never returns.
        let pid = match unsafe { fork() } {
            Err(errno) => return Err(EngineError::io("fork", errno.into())),
            Ok(ForkResult::Child) => child::run(ChildPlan {
                id,
                bundle: &bundle,
                io,
                state_dir: &state_dir,
                ready: ready_w,
                start: start_r,
            }),
            Ok(ForkResult::Parent { child }) => child,
        };
        drop((ready_w, start_r, io));
        match wait_report(ready_r) {
            Some(Report::Ready {
                cache,
                phases,
                note,
            }) => {
                tracing::info!(container_id = id, %pid, %cache, %phases, ?note, "wasm guest ready");
                self.containers.insert(
                    id.to_owned(),
                    WasmContainer {
                        pid,
                        start: Some(start_w),
                        cgroup: bundle.cgroup,
                    },
                );
                Ok(Spawned { pid, pty_master })
            }
            report => {
                let _ = kill(pid, Signal::SIGKILL);
                let status = waitpid(pid, None);
                remove_cgroup(id, bundle.cgroup.as_deref());
                let _ = fs::remove_dir_all(&state_dir);
                Err(match report {
                    Some(Report::Failed { invalid, message }) => {
                        wasm_error(id, message, Report::kind(invalid))
                    }
                    _ => wasm_error(
                        id,
                        format!("its process ended before it was ready ({status:?})"),
                        ErrorKind::Internal,
                    ),
                })
            }
        }
    }

    fn start(&mut self, id: &str) -> Result<(), EngineError> {
        let container = self
            .containers
            .get_mut(id)
            .ok_or_else(|| EngineError::NotFound(id.to_owned()))?;
        let Some(start) = container.start.take() else {
            return Err(EngineError::Wasm {
                action: "starting",
                id: id.to_owned(),
                message: "it was started already".into(),
                kind: ErrorKind::FailedPrecondition,
            });
        };
        match nix::unistd::write(&start, b"s") {
            Ok(1) => Ok(()),
            Ok(_) => Err(EngineError::io(
                format!("starting {id:?}"),
                std::io::ErrorKind::WriteZero.into(),
            )),
            Err(errno) => Err(EngineError::Wasm {
                action: "starting",
                id: id.to_owned(),
                message: format!("its process is gone ({errno})"),
                kind: ErrorKind::FailedPrecondition,
            }),
        }
    }

    fn exec(&mut self, spec: ExecSpec<'_>, _stdio: ChildStdio) -> Result<Spawned, EngineError> {
        if !self.containers.contains_key(spec.id) {
            return Err(EngineError::NotFound(spec.id.to_owned()));
        }
        Err(EngineError::Invalid(
            "exec is not supported for Wasm containers".into(),
        ))
    }

    fn delete(&mut self, id: &str) -> Result<(), EngineError> {
        let Some(container) = self.containers.remove(id) else {
            return Ok(());
        };
        tracing::debug!(container_id = id, pid = %container.pid, "deleting wasm container");
        remove_cgroup(id, container.cgroup.as_deref());
        let dir = self.state_dir(id);
        match fs::remove_dir_all(&dir) {
            Ok(()) => Ok(()),
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(err) => Err(EngineError::io(format!("removing {}", dir.display()), err)),
        }
    }

    fn update(&mut self, id: &str, resources: &LinuxResources) -> Result<(), EngineError> {
        let container = self
            .containers
            .get(id)
            .ok_or_else(|| EngineError::NotFound(id.to_owned()))?;
        let Some(cgroup) = &container.cgroup else {
            return Err(EngineError::Invalid(format!(
                "container {id:?} has no linux.cgroupsPath"
            )));
        };
        let manager = create_cgroup_manager(CgroupConfig {
            cgroup_path: cgroup.clone(),
            systemd_cgroup: false,
            container_name: id.to_owned(),
        })
        .map_err(|err| Wasm::cgroup_error(id, cgroup, err.to_string()))?;
        manager
            .apply(&ControllerOpt {
                resources,
                disable_oom_killer: false,
                oom_score_adj: None,
                freezer_state: None,
            })
            .map_err(|err| Wasm::cgroup_error(id, cgroup, err.to_string()))
    }

    fn oom_killed(&self, id: &str) -> bool {
        let Some(container) = self.containers.get(id) else {
            return false;
        };
        limits::oom_recorded(&self.state_dir(id))
            || container
                .cgroup
                .as_deref()
                .is_some_and(|cgroup| self.probe.oom_kills(cgroup) > 0)
    }

    fn kill_leftovers(&self, id: &str) {
        let Some(cgroup) = self.containers.get(id).and_then(|c| c.cgroup.as_deref()) else {
            return;
        };
        kill_cgroup_procs(&self.probe, cgroup, id);
    }

    fn signal(&self, pid: Pid, signal: i32) -> Result<(), EngineError> {
        send_signal(pid, signal)
    }
}

/// Reads the child's report: everything until it closes the pipe.
fn wait_report(ready: OwnedFd) -> Option<Report> {
    let deadline = Instant::now() + READY_TIMEOUT;
    let mut pipe = fs::File::from(ready);
    let mut text = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return None;
        }
        let wait_ms = u16::try_from(left.as_millis()).unwrap_or(u16::MAX);
        match wait_readable(pipe.as_fd(), wait_ms) {
            Ok(true) => {}
            Ok(false) => continue,
            Err(_) => return None,
        }
        let mut chunk = [0u8; 4096];
        match pipe.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => text.extend_from_slice(&chunk[..n]),
            Err(err) if err.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => break,
        }
    }
    Report::parse(&String::from_utf8_lossy(&text))
}

/// Removes a container's cgroup (best effort: its process is gone).
fn remove_cgroup(id: &str, cgroup: Option<&Path>) {
    let Some(cgroup) = cgroup else {
        return;
    };
    let removed = create_cgroup_manager(CgroupConfig {
        cgroup_path: cgroup.to_path_buf(),
        systemd_cgroup: false,
        container_name: id.to_owned(),
    })
    .map_err(|err| err.to_string())
    .and_then(|manager| manager.remove().map_err(|err| err.to_string()));
    if let Err(err) = removed {
        tracing::warn!(container_id = id, cgroup = %cgroup.display(), %err, "removing the cgroup");
    }
}
