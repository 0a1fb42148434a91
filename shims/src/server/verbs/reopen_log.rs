//! `ReopenLog`: the kubelet renamed the log to rotate it; write a new one.

use crate::engine::Engine;
use crate::protocol::{ContainerStatus, ErrorKind};
use crate::server::{Reply, Shim};

impl<E: Engine> Shim<E> {
    pub(crate) fn reopen_log(&mut self, id: &str) -> Reply {
        let Some(record) = self.containers.get_mut(id) else {
            return Reply::error(ErrorKind::NotFound, format!("container {id:?} not found"));
        };
        if record.state.status != ContainerStatus::Running {
            return Reply::error(
                ErrorKind::FailedPrecondition,
                format!("container {id:?} is not running"),
            );
        }
        let Some(log) = record.io.log.as_mut() else {
            return Reply::error(
                ErrorKind::FailedPrecondition,
                format!("container {id:?} has no log"),
            );
        };
        match log.reopen() {
            Ok(()) => Reply::ok(),
            Err(err) => Reply::error(
                ErrorKind::Internal,
                format!("reopening {}: {err}", log.path().display()),
            ),
        }
    }
}
