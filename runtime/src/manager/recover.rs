//! Start-up: load records, find the shims that kept running while the
//! runtime was away, and reconcile.

use skiff_shims::ShimClient;

use super::Runtime;
use crate::error::RuntimeError;
use crate::records::{SandboxState, container_name};

impl Runtime {
    pub(super) async fn recover(&self) -> Result<(), RuntimeError> {
        let sandboxes = self.inner.sandbox_store.load_all()?;
        let containers = self.inner.container_store.load_all()?;
        {
            let mut state = self.state();
            for sandbox in &sandboxes {
                state
                    .sandbox_names
                    .insert(sandbox.name(), sandbox.id.clone());
                state.sandboxes.insert(sandbox.id.clone(), sandbox.clone());
            }
            for container in &containers {
                let sandbox_meta = state
                    .sandboxes
                    .get(&container.sandbox_id)
                    .and_then(|s| s.config.metadata.clone());
                let name =
                    container_name(container.config.metadata.as_ref(), sandbox_meta.as_ref());
                state.container_names.insert(name, container.id.clone());
                state
                    .containers
                    .insert(container.id.clone(), container.clone());
            }
        }
        for sandbox in sandboxes {
            let client = ShimClient::new(&sandbox.pod_dir);
            match client.hello().await {
                Ok(info) => {
                    tracing::info!(sandbox = %sandbox.id, shim_pid = info.pid, "found the pod's shim");
                    if let Ok(states) = client.states().await {
                        states.iter().for_each(|s| self.apply_shim_state(s));
                    }
                    self.watch_shim(&sandbox.id, client);
                }
                Err(err) => {
                    tracing::warn!(sandbox = %sandbox.id, error = %err, "the pod's shim is gone");
                    if sandbox.state == SandboxState::Ready {
                        let mut record = sandbox.clone();
                        record.state = SandboxState::NotReady;
                        self.save_sandbox(record)?;
                    }
                    for container in self.containers_of(&sandbox.id) {
                        self.settle_orphan(&container);
                    }
                }
            }
        }
        let count = self.state().containers.len();
        tracing::info!(
            sandboxes = self.state().sandboxes.len(),
            containers = count,
            "runtime records loaded"
        );
        Ok(())
    }
}
