//! UpdateContainerResources: new cgroup limits for a running container.

use k8s_cri::v1::{UpdateContainerResourcesRequest, UpdateContainerResourcesResponse};
use skiff_runtime::Runtime;
use tonic::Status;

use crate::status::runtime_error_status;

/// Handles the RPC.
pub(crate) async fn handle(
    rt: &Runtime,
    req: UpdateContainerResourcesRequest,
) -> Result<UpdateContainerResourcesResponse, Status> {
    rt.update_container_resources(&req.container_id, req.linux)
        .await
        .map_err(runtime_error_status)?;
    Ok(UpdateContainerResourcesResponse {})
}
