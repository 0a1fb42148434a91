//! `Start`: lets a created container's process run.

use crate::engine::Engine;
use crate::protocol::{ContainerStatus, ErrorKind, Event, Response};
use crate::server::{Reply, Shim, now_ns};

impl<E: Engine> Shim<E> {
    pub(crate) fn start(&mut self, id: &str) -> Reply {
        let status = match self.record(id) {
            Ok(record) => record.state.status,
            Err(reply) => return reply,
        };
        if status != ContainerStatus::Created {
            return Reply::error(
                ErrorKind::FailedPrecondition,
                format!("cannot start container {id:?}: it is {status:?}, not Created"),
            );
        }
        if let Err(err) = self.engine.start(id) {
            return Reply::error(err.kind(), err.to_string());
        }
        let started_at_ns = now_ns();
        let Some(record) = self.containers.get_mut(id) else {
            return Reply::error(ErrorKind::Internal, format!("container {id:?} vanished"));
        };
        // The process may have exited (and been reaped) in between: keep Exited.
        if record.state.status == ContainerStatus::Created {
            record.state.status = ContainerStatus::Running;
        }
        record.state.started_at_ns = Some(started_at_ns);
        let pid = record.state.pid;
        tracing::info!(container_id = id, pid, "container started");
        self.publish(Event::Started {
            id: id.to_owned(),
            pid,
            started_at_ns,
        });
        Reply::Now(Response::Started { pid, started_at_ns }, Vec::new())
    }
}
