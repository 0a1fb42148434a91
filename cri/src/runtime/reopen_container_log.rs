//! ReopenContainerLog: the shim reopens the log after rotation.

use k8s_cri::v1::{ReopenContainerLogRequest, ReopenContainerLogResponse};
use skiff_runtime::Runtime;
use tonic::Status;

use crate::status::runtime_error_status;

/// Handles the RPC.
pub(crate) async fn handle(
    rt: &Runtime,
    req: ReopenContainerLogRequest,
) -> Result<ReopenContainerLogResponse, Status> {
    rt.reopen_container_log(&req.container_id)
        .await
        .map_err(runtime_error_status)?;
    Ok(ReopenContainerLogResponse {})
}
