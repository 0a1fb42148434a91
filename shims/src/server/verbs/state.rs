//! `State`: one container, or all of them.

use crate::engine::Engine;
use crate::protocol::Response;
use crate::server::{Reply, Shim};

impl<E: Engine> Shim<E> {
    pub(crate) fn state(&self, id: Option<&str>) -> Reply {
        let containers = match id {
            Some(id) => match self.record(id) {
                Ok(record) => vec![record.state.clone()],
                Err(reply) => return reply,
            },
            None => self.containers.values().map(|r| r.state.clone()).collect(),
        };
        Reply::Now(Response::States { containers }, Vec::new())
    }
}
