//! `Exec` and `ExecWait`: extra processes in a running container, their
//! stdio handed to the caller, their exit codes kept until waited for.

use std::os::fd::OwnedFd;

use nix::fcntl::OFlag;
use nix::unistd::pipe2;

use crate::engine::{ChildStdio, Engine, ExecSpec};
use crate::protocol::{ContainerStatus, ErrorKind, ExecProcess, FdRole, Response};
use crate::server::{ExecRecord, Reply, Shim};

/// Exited exec processes kept for an ExecWait that may still come.
const MAX_UNWAITED_EXECS: usize = 256;

/// The caller's ends of an exec's pipes, in the order they are handed over.
fn exec_pipes(stdin: bool) -> std::io::Result<(Vec<OwnedFd>, Vec<FdRole>, ChildStdio)> {
    let mut give = Vec::new();
    let mut roles = Vec::new();
    let mut child = ChildStdio::default();
    if stdin {
        let (read_end, write_end) = pipe2(OFlag::O_CLOEXEC)?;
        child.stdin = Some(read_end);
        give.push(write_end);
        roles.push(FdRole::Stdin);
    }
    let (read_end, write_end) = pipe2(OFlag::O_CLOEXEC)?;
    child.stdout = Some(write_end);
    give.push(read_end);
    roles.push(FdRole::Stdout);
    let (read_end, write_end) = pipe2(OFlag::O_CLOEXEC)?;
    child.stderr = Some(write_end);
    give.push(read_end);
    roles.push(FdRole::Stderr);
    Ok((give, roles, child))
}

impl<E: Engine> Shim<E> {
    pub(crate) fn exec(
        &mut self,
        id: &str,
        exec_id: String,
        process: &ExecProcess,
        stdin: bool,
        tty: bool,
    ) -> Reply {
        match self.record(id) {
            Ok(record) if record.state.status == ContainerStatus::Running => {}
            Ok(record) => {
                return Reply::error(
                    ErrorKind::FailedPrecondition,
                    format!(
                        "cannot exec in container {id:?}: it is {:?}",
                        record.state.status
                    ),
                );
            }
            Err(reply) => return reply,
        }
        if self.execs.contains_key(&exec_id) {
            return Reply::error(
                ErrorKind::AlreadyExists,
                format!("exec {exec_id:?} already exists"),
            );
        }
        let (mut give, mut roles, child) = if tty {
            (Vec::new(), vec![FdRole::Terminal], ChildStdio::default())
        } else {
            match exec_pipes(stdin) {
                Ok(pipes) => pipes,
                Err(err) => {
                    return Reply::error(ErrorKind::Internal, format!("creating pipes: {err}"));
                }
            }
        };
        let spec = ExecSpec {
            id,
            exec_id: &exec_id,
            process,
            tty,
        };
        let spawned = match self.engine.exec(spec, child) {
            Ok(spawned) => spawned,
            Err(err) => {
                tracing::warn!(container_id = id, exec_id, %err, "exec failed");
                return Reply::error(err.kind(), err.to_string());
            }
        };
        let mut pty = None;
        if let Some(master) = spawned.pty_master {
            match master.try_clone() {
                Ok(copy) => pty = Some(copy),
                Err(err) => tracing::warn!(exec_id, %err, "keeping the exec pty for resizing"),
            }
            give = vec![master];
        } else if tty {
            roles.clear();
        }
        let pid = spawned.pid;
        self.forget_unwaited_execs();
        self.execs.insert(
            exec_id,
            ExecRecord {
                container: id.to_owned(),
                pid,
                exit_code: None,
                pty,
                waiters: Vec::new(),
            },
        );
        Reply::Now(
            Response::ExecStarted {
                pid: pid.as_raw(),
                fds: roles,
            },
            give,
        )
    }

    /// Exec records live until waited for; a caller that never waits must
    /// not make them pile up (probes exec every few seconds for days).
    fn forget_unwaited_execs(&mut self) {
        let exited = self
            .execs
            .values()
            .filter(|e| e.exit_code.is_some())
            .count();
        if exited < MAX_UNWAITED_EXECS {
            return;
        }
        let forget: Vec<String> = self
            .execs
            .iter()
            .filter(|(_, exec)| exec.exit_code.is_some() && exec.waiters.is_empty())
            .map(|(id, _)| id.clone())
            .take(exited - MAX_UNWAITED_EXECS / 2)
            .collect();
        tracing::warn!(
            count = forget.len(),
            "forgetting exec exits nobody waited for"
        );
        for id in forget {
            self.execs.remove(&id);
        }
    }

    pub(crate) fn exec_wait(&mut self, token: u64, exec_id: &str) -> Reply {
        let Some(exec) = self.execs.get_mut(exec_id) else {
            return Reply::error(ErrorKind::NotFound, format!("exec {exec_id:?} not found"));
        };
        match exec.exit_code {
            Some(exit_code) => {
                self.execs.remove(exec_id);
                Reply::Now(Response::ExecExited { exit_code }, Vec::new())
            }
            None => {
                exec.waiters.push(token);
                Reply::Later
            }
        }
    }
}
