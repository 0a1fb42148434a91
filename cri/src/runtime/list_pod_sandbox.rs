//! ListPodSandbox, filtered by ID (prefix), state and labels.

use k8s_cri::v1::{ListPodSandboxRequest, ListPodSandboxResponse};
use skiff_runtime::Runtime;
use tonic::Status;

/// Handles the RPC.
pub(crate) async fn handle(
    rt: &Runtime,
    req: ListPodSandboxRequest,
) -> Result<ListPodSandboxResponse, Status> {
    Ok(ListPodSandboxResponse {
        items: rt.list_pod_sandboxes(req.filter.as_ref()),
    })
}
