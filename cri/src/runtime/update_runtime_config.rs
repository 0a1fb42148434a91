//! UpdateRuntimeConfig: the node's pod CIDR.

use k8s_cri::v1::{UpdateRuntimeConfigRequest, UpdateRuntimeConfigResponse};
use skiff_runtime::Runtime;
use tonic::Status;

use crate::status::runtime_error_status;

/// Handles the RPC.
pub(crate) async fn handle(
    rt: &Runtime,
    req: UpdateRuntimeConfigRequest,
) -> Result<UpdateRuntimeConfigResponse, Status> {
    let cidr = req
        .runtime_config
        .and_then(|c| c.network_config)
        .map(|n| n.pod_cidr)
        .unwrap_or_default();
    rt.set_pod_cidr(&cidr).await.map_err(runtime_error_status)?;
    Ok(UpdateRuntimeConfigResponse {})
}
