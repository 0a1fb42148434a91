//! StartContainer.

use k8s_cri::v1::{StartContainerRequest, StartContainerResponse};
use skiff_runtime::Runtime;
use tonic::Status;

use crate::status::runtime_error_status;

/// Handles the RPC.
pub(crate) async fn handle(
    rt: &Runtime,
    req: StartContainerRequest,
) -> Result<StartContainerResponse, Status> {
    rt.start_container(&req.container_id)
        .await
        .map_err(runtime_error_status)?;
    Ok(StartContainerResponse {})
}
