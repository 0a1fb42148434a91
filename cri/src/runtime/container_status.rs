//! ContainerStatus, verbose info included when asked.

use k8s_cri::v1::{ContainerStatusRequest, ContainerStatusResponse};
use skiff_runtime::Runtime;
use tonic::Status;

use crate::status::runtime_error_status;

/// Handles the RPC.
pub(crate) async fn handle(
    rt: &Runtime,
    req: ContainerStatusRequest,
) -> Result<ContainerStatusResponse, Status> {
    rt.container_status(&req.container_id, req.verbose)
        .map_err(runtime_error_status)
}
