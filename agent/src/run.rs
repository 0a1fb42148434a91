//! The agent role: the node runtime (image store, air-gap images, pod
//! network, shims, streaming server) opened in this process, the CRI
//! socket served for crictl, and the kubelet (node registration and
//! heartbeat, the kubelet API, pod sync) on the same CRI service,
//! called in-process.
//!
//! Start-up order: the runtime opens (finding the shims that kept running)
//! and the kubelet API's port is bound before the node registers, so the
//! node reports a port that answers; pod sync starts beside registration.
//! On shutdown everything stops, and containers keep running.

use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;

use skiff_cri::CriService;
use skiff_cri::node::{
    NodeError as RuntimeError, collect_images_periodically, import_airgap_images, open_image_store,
    open_runtime,
};
use skiff_cri::server::CriSocket;
use skiff_cri::streaming::{StreamingConfig, StreamingServer};
use skiff_cri::streaming_backend::RuntimeStreams;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::api_client::{ApiClientError, ApiEndpoint};
use crate::config::AgentConfig;
use crate::kubelet::{self, Kubelet};

/// Why the agent could not start.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The node runtime could not be opened.
    #[error("node runtime: {0}")]
    Runtime(#[from] RuntimeError),
    /// The streaming server could not start.
    #[error("streaming server: {0}")]
    Streaming(#[from] skiff_cri::streaming::ServeError),
    /// The CRI socket could not be bound.
    #[error(transparent)]
    Socket(#[from] skiff_cri::ServeError),
    /// The kubelet API's certificates are unusable.
    #[error(transparent)]
    Tls(#[from] kubelet::server::ServerError),
    /// The kubelet API's port could not be bound.
    #[error("binding the kubelet API to {address}: {source}")]
    Bind {
        /// The address.
        address: SocketAddr,
        /// The OS error.
        source: std::io::Error,
    },
    /// The apiserver client could not be made.
    #[error(transparent)]
    Client(#[from] ApiClientError),
}

/// Runs the agent until `shutdown` completes. `endpoint` is the apiserver
/// as `system:node:<node>`; `kubelet_serving` the kubelet API's
/// certificate and key (PEM, signed by the server CA); `client_ca_pem` the
/// CA whose client certificates the kubelet API accepts.
pub async fn run(
    config: AgentConfig,
    endpoint: ApiEndpoint,
    kubelet_serving: (String, String),
    client_ca_pem: String,
    shutdown: impl Future<Output = ()>,
) -> Result<(), RunError> {
    let node_config = config.node_config();
    let store = open_image_store(&node_config).await?;
    import_airgap_images(&store, &node_config.airgap_dir()).await;
    let runtime = open_runtime(&node_config, store.clone()).await?;
    let streaming = StreamingServer::bind(
        StreamingConfig {
            address: config.streaming_address,
            ..StreamingConfig::default()
        },
        Arc::new(RuntimeStreams::new(runtime.clone())),
    )
    .await?;
    let cri = CriService::with_runtime(runtime.clone(), streaming.urls());
    let socket = CriSocket::bind(&config.cri_socket)?;
    let tls = kubelet::server::tls_config(&kubelet_serving.0, &kubelet_serving.1, &client_ca_pem)?;
    // Every address, as kubelet; a node on loopback (tests, a machine kept
    // to itself) listens on loopback only.
    let listen_ip = if config.node_ip.is_loopback() {
        config.node_ip
    } else {
        IpAddr::V4(Ipv4Addr::UNSPECIFIED)
    };
    let address = SocketAddr::new(listen_ip, config.kubelet_port);
    let listener = TcpListener::bind(address)
        .await
        .map_err(|source| RunError::Bind { address, source })?;
    let bound = listener
        .local_addr()
        .map_err(|source| RunError::Bind { address, source })?;
    let mut kubelet_config = config.kubelet_config();
    kubelet_config.kubelet_port = bound.port();
    let client = endpoint.connect().await?;
    let kubelet = Kubelet {
        client,
        cri: cri.clone(),
        config: Arc::new(kubelet_config),
    };
    tracing::info!(node = %config.node_name, kubelet_port = bound.port(), "agent starting");

    let stop = CancellationToken::new();
    let tasks = vec![
        tokio::spawn(streaming.serve(stop.clone())),
        tokio::spawn(collect_images_periodically(store, stop.clone())),
        tokio::spawn(kubelet::server::serve(
            listener,
            tls,
            kubelet.clone(),
            stop.clone(),
        )),
        tokio::spawn(kubelet::node::run(kubelet.clone(), stop.clone())),
        tokio::spawn(kubelet::pods::run(kubelet.clone(), stop.clone())),
    ];
    let serving = tokio::spawn(socket.serve(cri, stop.clone().cancelled_owned()));
    shutdown.await;
    tracing::info!(node = %config.node_name, "agent stopping; containers keep running");
    stop.cancel();
    for task in tasks {
        let _ = task.await;
    }
    match serving.await {
        Ok(Err(err)) => tracing::warn!(%err, "CRI socket"),
        Err(err) => tracing::warn!(%err, "CRI socket task"),
        Ok(Ok(())) => {}
    }
    runtime.close();
    Ok(())
}
