//! ListPodSandboxStats.

use k8s_cri::v1::{ListPodSandboxStatsRequest, ListPodSandboxStatsResponse};
use skiff_runtime::Runtime;
use tonic::Status;

/// Handles the RPC.
pub(crate) async fn handle(
    rt: &Runtime,
    req: ListPodSandboxStatsRequest,
) -> Result<ListPodSandboxStatsResponse, Status> {
    Ok(ListPodSandboxStatsResponse {
        stats: rt.list_pod_sandbox_stats(req.filter.as_ref()).await,
    })
}
