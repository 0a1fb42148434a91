//! ListContainerStats.

use k8s_cri::v1::{ListContainerStatsRequest, ListContainerStatsResponse};
use skiff_runtime::Runtime;
use tonic::Status;

/// Handles the RPC.
pub(crate) async fn handle(
    rt: &Runtime,
    req: ListContainerStatsRequest,
) -> Result<ListContainerStatsResponse, Status> {
    Ok(ListContainerStatsResponse {
        stats: rt.list_container_stats(req.filter.as_ref()).await,
    })
}
