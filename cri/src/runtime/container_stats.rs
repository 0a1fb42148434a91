//! ContainerStats.

use k8s_cri::v1::{ContainerStatsRequest, ContainerStatsResponse};
use skiff_runtime::Runtime;
use tonic::Status;

use crate::status::runtime_error_status;

/// Handles the RPC.
pub(crate) async fn handle(
    rt: &Runtime,
    req: ContainerStatsRequest,
) -> Result<ContainerStatsResponse, Status> {
    let stats = rt
        .container_stats(&req.container_id)
        .await
        .map_err(runtime_error_status)?;
    Ok(ContainerStatsResponse { stats: Some(stats) })
}
