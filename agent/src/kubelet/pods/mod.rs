//! The pods bound to this node. Pod sync is being built: until it lands,
//! the kubelet registers the node and serves its API, and says loudly that
//! it runs no pods.

use tokio_util::sync::CancellationToken;

use super::Kubelet;

/// Would sync the pods bound to this node until `shutdown`.
pub async fn run(kubelet: Kubelet, shutdown: CancellationToken) {
    tracing::error!(
        node = %kubelet.config.node_name,
        "pod sync is not built yet: pods bound to this node will not run"
    );
    shutdown.cancelled().await;
}
