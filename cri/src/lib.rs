//! Skiff's CRI v1 service: the ImageService over Skiff's image store, the
//! RuntimeService over the node runtime (sandboxes, containers, shims), the unix
//! socket that serves both to crictl and any kubelet, and `skiff crictl`.
//!
//! [`CriService`] is a plain Rust value implementing the tonic server
//! traits, so Skiff's own kubelet calls it in-process with no gRPC hop;
//! [`server::serve`] is a thin wrapper putting it on a socket.
//!
//! # Layout
//!
//! - [`image`]: the ImageService, one file per RPC, and the CRI `Image`
//!   message as containerd fills it.
//! - [`runtime`]: the RuntimeService over the node runtime.
//! - [`logfile`]: reading container log files (CRI and docker JSON
//!   records), for `crictl logs` and the kubelet's log endpoint.
//! - [`progress`]: the pull-progress side channel (`skiff.images.v1.PullProgress`)
//!   that lets `skiff crictl pull` draw a progress bar.
//! - [`proto`]: the generated code of that small protocol.
//! - [`status`]: the one mapping from image-store errors to gRPC statuses.
//! - [`server`]: serving everything on a unix socket, with shutdown.
//! - [`client`]: connecting to a CRI endpoint as crictl spells it.
//! - [`crictl`]: `skiff crictl`, printing as crictl 1.3x does.
//! - [`node`]: the node runtime role (`skiff runtime`): image store, air-gap
//!   import, image GC and the socket, until shutdown.
//! - [`streaming`]: the exec/attach/port-forward streaming server (SPDY
//!   and WebSocket, as kubelet's) and its client.
//! - [`streaming_backend`]: exec/attach/port-forward sessions over the node runtime.
//! - [`error`]: the errors of serving and connecting.
#![deny(missing_docs)]

use std::sync::Arc;

use skiff_images::ImageStore;

pub mod client;
pub mod crictl;
pub mod error;
pub mod idle;
pub mod image;
pub mod logfile;
pub mod node;
pub mod progress;
pub mod runtime;
pub mod server;
pub mod status;
pub mod streaming;
pub mod streaming_backend;

pub mod proto {
    //! Skiff's own pull-progress protocol (`skiff.images.v1`), generated
    //! from `proto/skiff/images/v1/progress.proto`.
    #![allow(missing_docs, missing_debug_implementations, clippy::all)]
    tonic::include_proto!("skiff.images.v1");
}

pub use error::{ConnectError, ServeError};
pub use progress::{PULL_ID_METADATA, PullTracker};

/// The CRI v1 service of one node: cheap to clone, shared by the socket
/// server and the in-process kubelet.
#[derive(Debug, Clone)]
pub struct CriService {
    images: ImageStore,
    pulls: Arc<PullTracker>,
    runtime: Option<skiff_runtime::Runtime>,
    streaming: Option<streaming::StreamingUrls>,
}

impl CriService {
    /// The service over an opened image store.
    pub fn new(images: ImageStore) -> Self {
        Self {
            images,
            pulls: Arc::new(PullTracker::new()),
            runtime: None,
            streaming: None,
        }
    }

    /// The full service: images, the node runtime, and streaming URLs.
    pub fn with_runtime(
        runtime: skiff_runtime::Runtime,
        streaming: streaming::StreamingUrls,
    ) -> Self {
        Self {
            images: runtime.images().clone(),
            pulls: Arc::new(PullTracker::new()),
            runtime: Some(runtime),
            streaming: Some(streaming),
        }
    }

    /// The node runtime behind the RuntimeService, if any.
    pub fn runtime(&self) -> Option<&skiff_runtime::Runtime> {
        self.runtime.as_ref()
    }

    /// Where streaming URLs come from, if a streaming server runs.
    pub fn streaming_urls(&self) -> Option<&streaming::StreamingUrls> {
        self.streaming.as_ref()
    }

    /// The image store behind the ImageService.
    pub fn images(&self) -> &ImageStore {
        &self.images
    }

    /// Pulls that clients are watching.
    pub fn pulls(&self) -> &Arc<PullTracker> {
        &self.pulls
    }
}
