//! CreateContainer in a ready sandbox, from an image already pulled.

use k8s_cri::v1::{CreateContainerRequest, CreateContainerResponse};
use skiff_runtime::Runtime;
use tonic::Status;

use crate::status::runtime_error_status;

/// Handles the RPC.
pub(crate) async fn handle(
    rt: &Runtime,
    req: CreateContainerRequest,
) -> Result<CreateContainerResponse, Status> {
    let config = req
        .config
        .ok_or_else(|| Status::invalid_argument("CreateContainer: config is required"))?;
    let container_id = rt
        .create_container(&req.pod_sandbox_id, config)
        .await
        .map_err(runtime_error_status)?;
    Ok(CreateContainerResponse { container_id })
}
