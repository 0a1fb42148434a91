//! `Shutdown`: the pod is done; stop its PID 1 and exit.

use crate::engine::Engine;
use crate::protocol::ErrorKind;
use crate::server::{Reply, Shim};

impl<E: Engine> Shim<E> {
    pub(crate) fn shutdown(&mut self) -> Reply {
        let live = self.live_containers();
        if !live.is_empty() {
            return Reply::error(
                ErrorKind::FailedPrecondition,
                format!("containers still run: {}", live.join(", ")),
            );
        }
        self.stop_pod_init();
        self.exiting = true;
        tracing::info!("shutting down");
        Reply::ok()
    }
}
