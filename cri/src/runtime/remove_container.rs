//! RemoveContainer (forcibly, as CRI asks); idempotent.

use k8s_cri::v1::{RemoveContainerRequest, RemoveContainerResponse};
use skiff_runtime::Runtime;
use tonic::Status;

use crate::status::runtime_error_status;

/// Handles the RPC.
pub(crate) async fn handle(
    rt: &Runtime,
    req: RemoveContainerRequest,
) -> Result<RemoveContainerResponse, Status> {
    rt.remove_container(&req.container_id)
        .await
        .map_err(runtime_error_status)?;
    Ok(RemoveContainerResponse {})
}
