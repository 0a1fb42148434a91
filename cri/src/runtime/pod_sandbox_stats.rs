//! PodSandboxStats: the pod cgroup, its network and its containers.

use k8s_cri::v1::{PodSandboxStatsRequest, PodSandboxStatsResponse};
use skiff_runtime::Runtime;
use tonic::Status;

use crate::status::runtime_error_status;

/// Handles the RPC.
pub(crate) async fn handle(
    rt: &Runtime,
    req: PodSandboxStatsRequest,
) -> Result<PodSandboxStatsResponse, Status> {
    let stats = rt
        .pod_sandbox_stats(&req.pod_sandbox_id)
        .await
        .map_err(runtime_error_status)?;
    Ok(PodSandboxStatsResponse { stats: Some(stats) })
}
