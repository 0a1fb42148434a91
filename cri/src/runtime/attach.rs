//! Attach: a URL on the streaming server where the client attaches.

use k8s_cri::v1::{AttachRequest, AttachResponse};
use skiff_runtime::Runtime;
use tonic::Status;

use crate::status::runtime_error_status;
use crate::streaming::StreamingUrls;

/// Handles the RPC: checks the container exists, then hands out a URL.
pub(crate) async fn handle(
    rt: &Runtime,
    urls: &StreamingUrls,
    mut req: AttachRequest,
) -> Result<AttachResponse, Status> {
    req.container_id = rt
        .resolve_container(&req.container_id)
        .map_err(runtime_error_status)?;
    let url = urls
        .attach_url(&req)
        .map_err(|e| Status::invalid_argument(e.to_string()))?;
    Ok(AttachResponse { url })
}
