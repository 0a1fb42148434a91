//! The real engine: youki's libcontainer (cgroupfs driver, v1 or v2 as
//! libcgroups detects), with the container state root in the pod directory.
//!
//! libcontainer runs parts of its work in the calling process: it writes the
//! container's `oom_score_adj` to the *caller's* `/proc/self/oom_score_adj`
//! (children inherit it), so the shim puts its own value back afterwards;
//! and it marks the caller non-dumpable, which only affects the shim's
//! `/proc` ownership. Init and exec processes are cloned as siblings of
//! libcontainer's intermediate process, so the shim is their parent.

use std::collections::{BTreeSet, HashMap};
use std::error::Error as _;
use std::os::fd::{AsFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};

use libcgroups::common::{CgroupConfig, CgroupManager, ControllerOpt, create_cgroup_manager};
use libcontainer::container::Container;
use libcontainer::container::ContainerStatus as LcStatus;
use libcontainer::container::builder::ContainerBuilder;
use libcontainer::error::LibcontainerError;
use libcontainer::syscall::syscall::SyscallType;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use oci_spec::runtime::{LinuxResources, Process, Spec};

use super::clamp::{HostLimits, clamp_process, own_oom_score_adj, set_own_oom_score_adj};
use super::{
    ChildStdio, CreateSpec, Engine, EngineError, ExecSpec, Spawned, kill_cgroup_procs, open_fds,
    send_signal,
};
use crate::cgroups::{CgroupFs, CgroupProbe};
use crate::fdpass::recv_with_fds;
use crate::protocol::{ErrorKind, ExecProcess};
use crate::unix::{bind_unix, wait_readable};

/// How long a container may take to hand over its pty master.
const CONSOLE_TIMEOUT_MS: u16 = 10_000;

/// Containers made by libcontainer, its state under `state_root`.
#[derive(Debug)]
pub struct Libcontainer {
    state_root: PathBuf,
    containers: HashMap<String, Managed>,
    probe: CgroupFs,
    sockets: u64,
}

#[derive(Debug)]
struct Managed {
    container: Container,
    cgroup: Option<PathBuf>,
    /// The container's process, the base of its exec processes.
    process: Process,
}

impl Libcontainer {
    /// An engine keeping libcontainer's state in `state_root` (created if missing).
    pub fn new(state_root: &Path) -> Result<Self, EngineError> {
        std::fs::create_dir_all(state_root)
            .map_err(|err| EngineError::io(format!("creating {}", state_root.display()), err))?;
        Ok(Libcontainer {
            state_root: state_root.to_path_buf(),
            containers: HashMap::new(),
            probe: CgroupFs::detect(),
            sockets: 0,
        })
    }

    fn managed(&self, id: &str) -> Result<&Managed, EngineError> {
        self.containers
            .get(id)
            .ok_or_else(|| EngineError::NotFound(id.to_owned()))
    }

    fn console_listener(&mut self) -> Result<(UnixListener, PathBuf), EngineError> {
        self.sockets += 1;
        let path = self.state_root.join(format!("tty-{}.sock", self.sockets));
        let _ = std::fs::remove_file(&path);
        let listener = bind_unix(&path)
            .map_err(|err| EngineError::io(format!("binding {}", path.display()), err))?;
        Ok((listener, path))
    }

    fn builder(
        &self,
        id: &str,
        console: Option<&Path>,
        stdio: ChildStdio,
    ) -> Result<ContainerBuilder, EngineError> {
        let mut builder = ContainerBuilder::new(id.to_owned(), SyscallType::default())
            .validate_id()
            .map_err(|err| lc_error("creating", id, err))?
            .with_root_path(&self.state_root)
            .map_err(|err| lc_error("creating", id, err))?
            .with_console_socket(console);
        if let Some(fd) = stdio.stdin {
            builder = builder.with_stdin(fd);
        }
        if let Some(fd) = stdio.stdout {
            builder = builder.with_stdout(fd);
        }
        if let Some(fd) = stdio.stderr {
            builder = builder.with_stderr(fd);
        }
        Ok(builder)
    }
}

impl Engine for Libcontainer {
    fn create(&mut self, spec: CreateSpec<'_>, stdio: ChildStdio) -> Result<Spawned, EngineError> {
        let id = spec.id;
        let config = spec.bundle.join("config.json");
        let bundle_error = |message: String| EngineError::Bundle {
            path: config.display().to_string(),
            message,
        };
        let mut oci = Spec::load(&config).map_err(|err| bundle_error(err.to_string()))?;
        let mut process = oci
            .process()
            .clone()
            .ok_or_else(|| bundle_error("no process".into()))?;
        let terminal = process.terminal().unwrap_or(false);
        if terminal != spec.tty {
            return Err(EngineError::Invalid(format!(
                "container {id:?}: tty is {} but the bundle's process.terminal is {terminal}",
                spec.tty
            )));
        }
        let changes = clamp_process(&mut process, &HostLimits::current());
        if !changes.is_empty() {
            tracing::warn!(
                container_id = id,
                ?changes,
                "clamped what this host cannot grant"
            );
            oci.set_process(Some(process.clone()));
            rewrite_config(&oci, &config)?;
        }
        let cgroup = oci.linux().as_ref().and_then(|l| l.cgroups_path().clone());

        let console = if spec.tty {
            Some(self.console_listener()?)
        } else {
            None
        };
        let builder = self.builder(id, console.as_ref().map(|(_, p)| p.as_path()), stdio)?;
        let own_oom = own_oom_score_adj();
        let fds_before = open_fds();
        let built = builder
            .as_init(spec.bundle)
            .with_systemd(false)
            .with_detach(true)
            .as_sibling(false)
            .build();
        restore_oom_score_adj(own_oom);
        if built.is_err() {
            close_leaked_sockets(&fds_before);
        }
        if let Some((_, path)) = &console {
            let _ = std::fs::remove_file(path);
        }
        let mut container = built.map_err(|err| lc_error("creating", id, err))?;
        let Some(pid) = container.pid() else {
            let _ = container.delete(true);
            return Err(EngineError::Libcontainer {
                action: "creating",
                id: id.to_owned(),
                message: "no init pid in its state".into(),
                kind: ErrorKind::Internal,
            });
        };
        let pty_master = match console {
            Some((listener, _)) => match receive_pty(&listener, id) {
                Ok(master) => Some(master),
                Err(err) => {
                    let _ = kill(pid, Signal::SIGKILL);
                    let _ = nix::sys::wait::waitpid(pid, None);
                    container.state.pid = None;
                    let _ = container.delete(true);
                    return Err(err);
                }
            },
            None => None,
        };
        self.containers.insert(
            id.to_owned(),
            Managed {
                container,
                cgroup,
                process,
            },
        );
        Ok(Spawned { pid, pty_master })
    }

    fn start(&mut self, id: &str) -> Result<(), EngineError> {
        let managed = self
            .containers
            .get_mut(id)
            .ok_or_else(|| EngineError::NotFound(id.to_owned()))?;
        managed
            .container
            .start()
            .map_err(|err| lc_error("starting", id, err))
    }

    fn exec(&mut self, spec: ExecSpec<'_>, stdio: ChildStdio) -> Result<Spawned, EngineError> {
        let id = spec.id;
        let managed = self.managed(id)?;
        let process = exec_process(&managed.process, spec.process, spec.tty)?;
        self.sockets += 1;
        let process_path = self.state_root.join(format!("exec-{}.json", self.sockets));
        let json = serde_json::to_vec(&process)
            .map_err(|err| EngineError::io("encoding the exec process", err.into()))?;
        std::fs::write(&process_path, json)
            .map_err(|err| EngineError::io(format!("writing {}", process_path.display()), err))?;
        let console = if spec.tty {
            Some(self.console_listener()?)
        } else {
            None
        };
        let builder = self.builder(id, console.as_ref().map(|(_, p)| p.as_path()), stdio)?;
        let own_oom = own_oom_score_adj();
        let fds_before = open_fds();
        let built = builder
            .as_tenant()
            .with_process(Some(&process_path))
            .with_detach(spec.tty)
            .as_sibling(false)
            .build();
        restore_oom_score_adj(own_oom);
        if built.is_err() {
            close_leaked_sockets(&fds_before);
        }
        let _ = std::fs::remove_file(&process_path);
        if let Some((_, path)) = &console {
            let _ = std::fs::remove_file(path);
        }
        let pid = built.map_err(|err| lc_error("exec in", id, err))?;
        let pty_master = match console {
            Some((listener, _)) => match receive_pty(&listener, id) {
                Ok(master) => Some(master),
                Err(err) => {
                    let _ = kill(pid, Signal::SIGKILL);
                    return Err(err);
                }
            },
            None => None,
        };
        tracing::debug!(container_id = id, exec_id = spec.exec_id, %pid, "exec started");
        Ok(Spawned { pid, pty_master })
    }

    fn delete(&mut self, id: &str) -> Result<(), EngineError> {
        let Some(mut managed) = self.containers.remove(id) else {
            return Ok(());
        };
        // The shim reaped the init already: its pid may belong to someone else now.
        managed.container.state.pid = None;
        managed.container.set_status(LcStatus::Stopped);
        match managed.container.delete(true) {
            Ok(()) => Ok(()),
            Err(err) => {
                let err = lc_error("deleting", id, err);
                self.containers.insert(id.to_owned(), managed);
                Err(err)
            }
        }
    }

    fn update(&mut self, id: &str, resources: &LinuxResources) -> Result<(), EngineError> {
        let managed = self.managed(id)?;
        let Some(cgroup) = &managed.cgroup else {
            return Err(EngineError::Invalid(format!(
                "container {id:?} has no linux.cgroupsPath"
            )));
        };
        let error = |message: String| EngineError::Cgroup {
            id: id.to_owned(),
            cgroup: cgroup.display().to_string(),
            message,
        };
        let manager = create_cgroup_manager(CgroupConfig {
            cgroup_path: cgroup.clone(),
            systemd_cgroup: false,
            container_name: id.to_owned(),
        })
        .map_err(|err| error(err.to_string()))?;
        manager
            .apply(&ControllerOpt {
                resources,
                disable_oom_killer: false,
                oom_score_adj: None,
                freezer_state: None,
            })
            .map_err(|err| error(err.to_string()))
    }

    fn oom_killed(&self, id: &str) -> bool {
        self.containers
            .get(id)
            .and_then(|managed| managed.cgroup.as_deref())
            .is_some_and(|cgroup| self.probe.oom_kills(cgroup) > 0)
    }

    fn kill_leftovers(&self, id: &str) {
        let Some(cgroup) = self.containers.get(id).and_then(|m| m.cgroup.as_deref()) else {
            return;
        };
        kill_cgroup_procs(&self.probe, cgroup, id);
    }

    fn signal(&self, pid: Pid, signal: i32) -> Result<(), EngineError> {
        send_signal(pid, signal)
    }
}

/// The exec process: the container's process with the request's command,
/// environment, working directory and user.
pub(crate) fn exec_process(
    base: &Process,
    request: &ExecProcess,
    tty: bool,
) -> Result<Process, EngineError> {
    if request.args.is_empty() {
        return Err(EngineError::Invalid("exec needs a command".into()));
    }
    let mut process = base.clone();
    process.set_args(Some(request.args.clone()));
    process.set_command_line(None);
    let mut env = base.env().clone().unwrap_or_default();
    for entry in &request.env {
        let key = entry.split_once('=').map_or(entry.as_str(), |(k, _)| k);
        env.retain(|existing| {
            existing
                .split_once('=')
                .map_or(existing.as_str(), |(k, _)| k)
                != key
        });
        env.push(entry.clone());
    }
    if tty && !env.iter().any(|e| e.starts_with("TERM=")) {
        env.push("TERM=xterm".into());
    }
    process.set_env(Some(env));
    if let Some(cwd) = &request.cwd {
        if !cwd.is_absolute() {
            return Err(EngineError::Invalid(format!(
                "exec working directory {} is not absolute",
                cwd.display()
            )));
        }
        process.set_cwd(cwd.clone());
    }
    if let Some(user) = &request.user {
        process.set_user(user.clone());
    }
    process.set_terminal(Some(tty));
    process.set_console_size(None);
    Ok(process)
}

fn rewrite_config(spec: &Spec, config: &Path) -> Result<(), EngineError> {
    let tmp = config.with_extension("json.tmp");
    spec.save(&tmp).map_err(|err| {
        EngineError::io(
            format!("writing {}", tmp.display()),
            std::io::Error::other(err),
        )
    })?;
    std::fs::rename(&tmp, config)
        .map_err(|err| EngineError::io(format!("replacing {}", config.display()), err))
}

/// Closes the sockets a failed libcontainer call left open: its channels
/// are raw descriptors that early error returns never close, 4 per failed
/// create. Only sockets: other new descriptors may be caches (pathrs keeps
/// a /proc handle). The shim has one thread, so nothing else opened them.
fn close_leaked_sockets(before: &BTreeSet<RawFd>) {
    let mut closed = 0;
    for fd in open_fds().difference(before) {
        let is_socket = nix::sys::stat::fstat(*fd)
            .is_ok_and(|stat| stat.st_mode & libc::S_IFMT == libc::S_IFSOCK);
        if is_socket {
            // SAFETY: a descriptor nothing in this process owns (see above).
            drop(unsafe { OwnedFd::from_raw_fd(*fd) });
            closed += 1;
        }
    }
    if closed > 0 {
        tracing::debug!(closed, "closed sockets libcontainer leaked");
    }
}

fn restore_oom_score_adj(own: Option<i32>) {
    if let Some(own) = own
        && own_oom_score_adj() != Some(own)
        && let Err(err) = set_own_oom_score_adj(own)
    {
        tracing::warn!(%err, own, "could not restore the shim's oom_score_adj");
    }
}

/// Accepts the container's connection on the console socket and takes the
/// pty master it sends.
fn receive_pty(listener: &UnixListener, id: &str) -> Result<OwnedFd, EngineError> {
    let error = |message: String| EngineError::Console {
        id: id.to_owned(),
        message,
    };
    if !wait_readable(listener.as_fd(), CONSOLE_TIMEOUT_MS).map_err(|err| error(err.to_string()))? {
        return Err(error("the container never connected".into()));
    }
    let (stream, _) = listener.accept().map_err(|err| error(err.to_string()))?;
    if !wait_readable(stream.as_fd(), CONSOLE_TIMEOUT_MS).map_err(|err| error(err.to_string()))? {
        return Err(error("the container sent nothing".into()));
    }
    let mut buf = [0u8; 64];
    let mut fds = Vec::new();
    recv_with_fds(stream.as_fd(), &mut buf, &mut fds).map_err(|err| error(err.to_string()))?;
    fds.pop()
        .ok_or_else(|| error("no descriptor in the message".into()))
}

/// libcontainer's error as an engine error, with its causes (libcontainer
/// logs details and returns terse errors).
fn lc_error(action: &'static str, id: &str, err: LibcontainerError) -> EngineError {
    let kind = match &err {
        LibcontainerError::IncorrectStatus(_) => ErrorKind::FailedPrecondition,
        LibcontainerError::Exist => ErrorKind::AlreadyExists,
        LibcontainerError::NoDirectory => ErrorKind::NotFound,
        LibcontainerError::InvalidInput(_)
        | LibcontainerError::InvalidID(_)
        | LibcontainerError::MissingSpec(_)
        | LibcontainerError::InvalidSpec(_)
        | LibcontainerError::Spec(_) => ErrorKind::InvalidArgument,
        _ => ErrorKind::Internal,
    };
    let mut message = err.to_string();
    if let LibcontainerError::InvalidInput(detail) = &err {
        message = format!("{message}: {detail}");
    }
    let mut source = err.source();
    while let Some(cause) = source {
        let text = cause.to_string();
        if !message.contains(&text) {
            message = format!("{message}: {text}");
        }
        source = cause.source();
    }
    EngineError::Libcontainer {
        action,
        id: id.to_owned(),
        message,
        kind,
    }
}

#[cfg(test)]
mod tests {
    use oci_spec::runtime::UserBuilder;

    use super::*;

    #[test]
    fn exec_process_overrides_the_container_process() {
        let mut base = Process::default();
        base.set_env(Some(vec!["PATH=/bin".into(), "A=1".into()]));
        let request = ExecProcess {
            args: vec!["sh".into(), "-c".into(), "id".into()],
            env: vec!["A=2".into(), "B=3".into()],
            cwd: Some("/tmp".into()),
            user: Some(
                UserBuilder::default()
                    .uid(1000u32)
                    .gid(1000u32)
                    .build()
                    .unwrap(),
            ),
        };
        let process = exec_process(&base, &request, true).unwrap();
        assert_eq!(process.args().as_ref().unwrap(), &request.args);
        assert_eq!(
            process.env().as_ref().unwrap(),
            &["PATH=/bin", "A=2", "B=3", "TERM=xterm"]
        );
        assert_eq!(process.cwd(), Path::new("/tmp"));
        assert_eq!(process.user().uid(), 1000);
        assert_eq!(process.terminal(), Some(true));
        // Security settings stay the container's.
        assert_eq!(process.capabilities(), base.capabilities());
        assert_eq!(process.no_new_privileges(), base.no_new_privileges());
    }

    #[test]
    fn exec_process_needs_a_command_and_an_absolute_cwd() {
        let base = Process::default();
        assert!(exec_process(&base, &ExecProcess::default(), false).is_err());
        let request = ExecProcess {
            args: vec!["true".into()],
            cwd: Some("relative".into()),
            ..ExecProcess::default()
        };
        assert!(matches!(
            exec_process(&base, &request, false),
            Err(EngineError::Invalid(_))
        ));
    }
}
