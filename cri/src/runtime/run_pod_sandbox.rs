//! RunPodSandbox: namespaces pinned, network attached, shim started.

use k8s_cri::v1::{RunPodSandboxRequest, RunPodSandboxResponse};
use skiff_runtime::Runtime;
use tonic::Status;

use crate::status::runtime_error_status;

/// Handles the RPC.
pub(crate) async fn handle(
    rt: &Runtime,
    req: RunPodSandboxRequest,
) -> Result<RunPodSandboxResponse, Status> {
    let config = req
        .config
        .ok_or_else(|| Status::invalid_argument("RunPodSandbox: config is required"))?;
    let pod_sandbox_id = rt
        .run_pod_sandbox(config, &req.runtime_handler)
        .await
        .map_err(runtime_error_status)?;
    Ok(RunPodSandboxResponse { pod_sandbox_id })
}
