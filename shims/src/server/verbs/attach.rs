//! `Attach`: the container's live output (and its stdin, when it has one)
//! through new descriptors, alongside the log.

use crate::engine::Engine;
use crate::protocol::{ErrorKind, Response};
use crate::server::{Reply, Shim};

impl<E: Engine> Shim<E> {
    pub(crate) fn attach(&mut self, id: &str) -> Reply {
        if let Err(reply) = self.live_record(id, "attach to") {
            return reply;
        }
        let token = self.next_token;
        self.next_token += 1;
        let Some(record) = self.containers.get_mut(id) else {
            return Reply::error(ErrorKind::NotFound, format!("container {id:?} not found"));
        };
        match record.io.attach(token) {
            Ok((fds, roles)) => Reply::Now(Response::Attached { fds: roles }, fds),
            Err(err) => Reply::error(ErrorKind::Internal, format!("attaching to {id:?}: {err}")),
        }
    }
}
