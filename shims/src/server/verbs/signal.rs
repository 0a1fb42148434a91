//! `Signal`: delivers a signal to a container's init or one of its exec
//! processes. Stopping with a timeout (TERM, then KILL) is the runtime's.

use nix::unistd::Pid;

use crate::engine::Engine;
use crate::protocol::{ContainerStatus, ErrorKind};
use crate::server::{Reply, Shim};

impl<E: Engine> Shim<E> {
    pub(crate) fn signal(&mut self, id: &str, exec_id: Option<&str>, signal: i32) -> Reply {
        let record = match self.record(id) {
            Ok(record) => record,
            Err(reply) => return reply,
        };
        let pid = match exec_id {
            Some(exec_id) => match self.execs.get(exec_id) {
                Some(exec) if exec.container == id => {
                    if exec.exit_code.is_some() {
                        return Reply::ok();
                    }
                    exec.pid
                }
                _ => {
                    return Reply::error(
                        ErrorKind::NotFound,
                        format!("exec {exec_id:?} of container {id:?} not found"),
                    );
                }
            },
            None => {
                // The process is gone and reaped: nothing to signal, as asked.
                if record.state.status == ContainerStatus::Exited {
                    return Reply::ok();
                }
                Pid::from_raw(record.state.pid)
            }
        };
        match self.engine.signal(pid, signal) {
            Ok(()) => {
                tracing::info!(container_id = id, exec_id, signal, "signalled");
                Reply::ok()
            }
            Err(err) => Reply::error(err.kind(), err.to_string()),
        }
    }
}
