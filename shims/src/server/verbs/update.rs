//! `Update`: new resources for a container's cgroup.

use oci_spec::runtime::LinuxResources;

use crate::engine::Engine;
use crate::server::{Reply, Shim};

impl<E: Engine> Shim<E> {
    pub(crate) fn update(&mut self, id: &str, resources: &LinuxResources) -> Reply {
        if let Err(reply) = self.live_record(id, "update") {
            return reply;
        }
        match self.engine.update(id, resources) {
            Ok(()) => {
                tracing::info!(container_id = id, "resources updated");
                Reply::ok()
            }
            Err(err) => Reply::error(err.kind(), err.to_string()),
        }
    }
}
