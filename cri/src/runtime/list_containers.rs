//! ListContainers, filtered by ID, sandbox (prefixes), state and labels.

use k8s_cri::v1::{ListContainersRequest, ListContainersResponse};
use skiff_runtime::Runtime;
use tonic::Status;

/// Handles the RPC.
pub(crate) async fn handle(
    rt: &Runtime,
    req: ListContainersRequest,
) -> Result<ListContainersResponse, Status> {
    Ok(ListContainersResponse {
        containers: rt.list_containers(req.filter.as_ref()),
    })
}
