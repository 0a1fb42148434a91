//! StopPodSandbox: containers killed, network detached; idempotent.

use k8s_cri::v1::{StopPodSandboxRequest, StopPodSandboxResponse};
use skiff_runtime::Runtime;
use tonic::Status;

use crate::status::runtime_error_status;

/// Handles the RPC.
pub(crate) async fn handle(
    rt: &Runtime,
    req: StopPodSandboxRequest,
) -> Result<StopPodSandboxResponse, Status> {
    rt.stop_pod_sandbox(&req.pod_sandbox_id)
        .await
        .map_err(runtime_error_status)?;
    Ok(StopPodSandboxResponse {})
}
