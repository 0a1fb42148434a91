//! Exec: a URL on the streaming server where the client runs the command.

use k8s_cri::v1::{ExecRequest, ExecResponse};
use skiff_runtime::Runtime;
use tonic::Status;

use crate::status::runtime_error_status;
use crate::streaming::StreamingUrls;

/// Handles the RPC: checks the container runs, then hands out a URL.
pub(crate) async fn handle(
    rt: &Runtime,
    urls: &StreamingUrls,
    mut req: ExecRequest,
) -> Result<ExecResponse, Status> {
    req.container_id = rt
        .resolve_container(&req.container_id)
        .map_err(runtime_error_status)?;
    rt.container_status(&req.container_id, false)
        .map_err(runtime_error_status)?;
    let url = urls
        .exec_url(&req)
        .map_err(|e| Status::invalid_argument(e.to_string()))?;
    Ok(ExecResponse { url })
}
