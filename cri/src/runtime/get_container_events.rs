//! GetContainerEvents: a stream of container created/started/stopped/deleted
//! events, each with the pod's status and its containers' statuses.

use k8s_cri::v1::ContainerEventResponse;
use skiff_runtime::Runtime;
use tokio_stream::StreamExt;
use tokio_stream::wrappers::BroadcastStream;
use tonic::Status;

use super::ContainerEventStream;

/// Handles the RPC. A subscriber that falls behind misses events (and is
/// told so in the log) rather than slowing the runtime down.
pub(crate) fn handle(rt: &Runtime) -> ContainerEventStream {
    let stream = BroadcastStream::new(rt.subscribe()).filter_map(|event| match event {
        Ok(event) => Some(Ok::<ContainerEventResponse, Status>(event)),
        Err(lagged) => {
            tracing::warn!(error = %lagged, "a container event subscriber fell behind");
            None
        }
    });
    Box::pin(stream)
}
