//! RemovePodSandbox: everything of the pod goes; an unknown pod is already removed.

use k8s_cri::v1::{RemovePodSandboxRequest, RemovePodSandboxResponse};
use skiff_runtime::Runtime;
use tonic::Status;

use crate::status::runtime_error_status;

/// Handles the RPC.
pub(crate) async fn handle(
    rt: &Runtime,
    req: RemovePodSandboxRequest,
) -> Result<RemovePodSandboxResponse, Status> {
    rt.remove_pod_sandbox(&req.pod_sandbox_id)
        .await
        .map_err(runtime_error_status)?;
    Ok(RemovePodSandboxResponse {})
}
