//! PortForward: a URL on the streaming server that forwards into the pod.

use k8s_cri::v1::{PortForwardRequest, PortForwardResponse};
use skiff_runtime::Runtime;
use tonic::Status;

use crate::status::runtime_error_status;
use crate::streaming::StreamingUrls;

/// Handles the RPC: checks the sandbox exists, then hands out a URL.
pub(crate) async fn handle(
    rt: &Runtime,
    urls: &StreamingUrls,
    mut req: PortForwardRequest,
) -> Result<PortForwardResponse, Status> {
    req.pod_sandbox_id = rt
        .resolve_sandbox(&req.pod_sandbox_id)
        .map_err(runtime_error_status)?;
    let url = urls
        .port_forward_url(&req)
        .map_err(|e| Status::invalid_argument(e.to_string()))?;
    Ok(PortForwardResponse { url })
}
