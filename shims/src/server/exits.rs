//! Child exits: containers' init processes (exit status, reason, OOM,
//! `exits/<id>.json`, the Exited event), exec processes, the pod's PID 1,
//! and orphans reparented to the shim (it is their subreaper).

use std::fs;
use std::io::Write;
use std::path::Path;

use nix::sys::signal::{Signal, kill};
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::Pid;

use super::{Shim, now_ns};
use crate::engine::Engine;
use crate::protocol::{ContainerState, ContainerStatus, EXITS_DIR, Event, Response};

/// `Completed`, `Error` or `OOMKilled`, as CRI reports them.
pub(crate) fn exit_reason(exit_code: i32, oom_killed: bool) -> &'static str {
    if oom_killed {
        "OOMKilled"
    } else if exit_code == 0 {
        "Completed"
    } else {
        "Error"
    }
}

/// The exit code of a wait status: 128 + signal for a killed process.
pub(crate) fn exit_code(status: WaitStatus) -> Option<(Pid, i32)> {
    match status {
        WaitStatus::Exited(pid, code) => Some((pid, code)),
        WaitStatus::Signaled(pid, signal, _) => Some((pid, 128 + signal as i32)),
        _ => None,
    }
}

impl<E: Engine> Shim<E> {
    /// Reaps every exited child.
    pub(crate) fn reap(&mut self) {
        loop {
            match waitpid(None::<Pid>, Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::StillAlive) | Err(_) => return,
                Ok(status) => {
                    if let Some((pid, code)) = exit_code(status) {
                        self.on_exit(pid, code);
                    }
                }
            }
        }
    }

    /// A child exited with `code`.
    pub(crate) fn on_exit(&mut self, pid: Pid, code: i32) {
        if self.pod_init == Some(pid) {
            tracing::error!(%pid, code, "the pod's PID 1 exited: the pod's PID namespace is gone");
            self.pod_init = None;
            return;
        }
        let container = self
            .containers
            .iter()
            .find(|(_, record)| {
                record.state.pid == pid.as_raw() && record.state.status != ContainerStatus::Exited
            })
            .map(|(id, _)| id.clone());
        if let Some(id) = container {
            self.container_exited(&id, code);
            return;
        }
        let exec = self
            .execs
            .iter()
            .find(|(_, exec)| exec.pid == pid && exec.exit_code.is_none())
            .map(|(id, _)| id.clone());
        if let Some(exec_id) = exec {
            self.exec_exited(&exec_id, code);
            return;
        }
        tracing::debug!(%pid, code, "reaped an orphan");
    }

    /// Records a container's exit and tells subscribers.
    pub(crate) fn container_exited(&mut self, id: &str, code: i32) {
        let oom_killed = self.engine.oom_killed(id);
        // In a shared PID namespace nothing kills what the init left behind.
        self.engine.kill_leftovers(id);
        let execs: Vec<Pid> = self
            .execs
            .values()
            .filter(|exec| exec.container == id && exec.exit_code.is_none())
            .map(|exec| exec.pid)
            .collect();
        for pid in execs {
            let _ = self.engine.signal(pid, Signal::SIGKILL as i32);
        }
        let Some(record) = self.containers.get_mut(id) else {
            return;
        };
        record.io.drain(&mut self.buf);
        record.io.close_input();
        let finished_at_ns = now_ns();
        let reason = exit_reason(code, oom_killed);
        let state = &mut record.state;
        state.status = ContainerStatus::Exited;
        state.exit_code = Some(code);
        state.finished_at_ns = Some(finished_at_ns);
        state.oom_killed = oom_killed;
        state.reason = Some(reason.to_owned());
        if oom_killed {
            state.message = Some("the container's cgroup ran out of memory".into());
        }
        tracing::info!(container_id = id, code, reason, "container exited");
        if let Err(err) = write_exit_record(&self.pod_dir, state) {
            tracing::error!(container_id = id, %err, "writing the exit record");
        }
        let event = Event::Exited {
            id: id.to_owned(),
            pid: state.pid,
            exit_code: code,
            finished_at_ns,
            oom_killed,
            reason: reason.to_owned(),
        };
        self.publish(event);
    }

    fn exec_exited(&mut self, exec_id: &str, code: i32) {
        let Some(exec) = self.execs.get_mut(exec_id) else {
            return;
        };
        exec.exit_code = Some(code);
        exec.pty = None;
        tracing::debug!(exec_id, code, "exec process exited");
        let waiters = std::mem::take(&mut exec.waiters);
        if !waiters.is_empty() {
            self.execs.remove(exec_id);
        }
        for token in waiters {
            self.answer(token, Response::ExecExited { exit_code: code });
        }
    }

    /// Kills the pod's PID 1 (Shutdown), which ends its PID namespace.
    pub(crate) fn stop_pod_init(&mut self) {
        if let Some(pid) = self.pod_init.take() {
            let _ = kill(pid, Signal::SIGKILL);
            let _ = waitpid(pid, None);
        }
    }
}

/// Writes `exits/<id>.json` atomically, so a restarted runtime finds it whole.
pub(crate) fn write_exit_record(pod_dir: &Path, state: &ContainerState) -> std::io::Result<()> {
    let dir = pod_dir.join(EXITS_DIR);
    fs::create_dir_all(&dir)?;
    let path = dir.join(format!("{}.json", state.id));
    let tmp = dir.join(format!(".{}.json.tmp", state.id));
    let mut file = fs::File::create(&tmp)?;
    file.write_all(&serde_json::to_vec(state)?)?;
    file.sync_all()?;
    fs::rename(&tmp, &path)
}

/// Removes `exits/<id>.json` (the container was deleted).
pub(crate) fn remove_exit_record(pod_dir: &Path, id: &str) {
    let _ = fs::remove_file(pod_dir.join(EXITS_DIR).join(format!("{id}.json")));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_follow_cri() {
        assert_eq!(exit_reason(0, false), "Completed");
        assert_eq!(exit_reason(3, false), "Error");
        assert_eq!(exit_reason(137, true), "OOMKilled");
    }

    #[test]
    fn killed_processes_exit_with_128_plus_signal() {
        let pid = Pid::from_raw(10);
        assert_eq!(exit_code(WaitStatus::Exited(pid, 3)), Some((pid, 3)));
        assert_eq!(
            exit_code(WaitStatus::Signaled(pid, Signal::SIGKILL, false)),
            Some((pid, 137))
        );
        assert_eq!(exit_code(WaitStatus::StillAlive), None);
    }
}
