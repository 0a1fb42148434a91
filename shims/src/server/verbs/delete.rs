//! `Delete`: removes a container that is not running.

use nix::sys::wait::waitpid;
use nix::unistd::Pid;

use crate::engine::Engine;
use crate::protocol::{ContainerStatus, ErrorKind, Event};
use crate::server::exits::{exit_code, remove_exit_record};
use crate::server::{Reply, Shim};

impl<E: Engine> Shim<E> {
    pub(crate) fn delete(&mut self, id: &str) -> Reply {
        let (status, pid) = match self.record(id) {
            Ok(record) => (record.state.status, Pid::from_raw(record.state.pid)),
            Err(reply) => return reply,
        };
        match status {
            ContainerStatus::Running => {
                return Reply::error(
                    ErrorKind::FailedPrecondition,
                    format!("container {id:?} is running: stop it first"),
                );
            }
            ContainerStatus::Created => {
                // Never started: its init waits; end it as runc's delete does.
                let _ = self.engine.signal(pid, libc::SIGKILL);
                let code = waitpid(pid, None)
                    .ok()
                    .and_then(exit_code)
                    .map_or(137, |(_, code)| code);
                self.container_exited(id, code);
            }
            ContainerStatus::Exited => {}
        }
        if let Err(err) = self.engine.delete(id) {
            tracing::warn!(container_id = id, %err, "delete failed");
            return Reply::error(err.kind(), err.to_string());
        }
        self.containers.remove(id);
        self.execs.retain(|_, exec| exec.container != id);
        remove_exit_record(&self.pod_dir, id);
        tracing::info!(container_id = id, "container deleted");
        self.publish(Event::Deleted { id: id.to_owned() });
        Reply::ok()
    }
}
