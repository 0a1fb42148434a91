//! StopContainer: the stop signal, then SIGKILL after the timeout.

use k8s_cri::v1::{StopContainerRequest, StopContainerResponse};
use skiff_runtime::Runtime;
use tonic::Status;

use crate::status::runtime_error_status;

/// Handles the RPC.
pub(crate) async fn handle(
    rt: &Runtime,
    req: StopContainerRequest,
) -> Result<StopContainerResponse, Status> {
    rt.stop_container(&req.container_id, req.timeout)
        .await
        .map_err(runtime_error_status)?;
    Ok(StopContainerResponse {})
}
