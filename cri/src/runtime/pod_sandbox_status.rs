//! PodSandboxStatus, verbose info included when asked.

use k8s_cri::v1::{PodSandboxStatusRequest, PodSandboxStatusResponse};
use skiff_runtime::Runtime;
use tonic::Status;

use crate::status::runtime_error_status;

/// Handles the RPC.
pub(crate) async fn handle(
    rt: &Runtime,
    req: PodSandboxStatusRequest,
) -> Result<PodSandboxStatusResponse, Status> {
    rt.pod_sandbox_status(&req.pod_sandbox_id, req.verbose)
        .map_err(runtime_error_status)
}
