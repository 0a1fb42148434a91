//! The node-side subresources, proxied as kube-apiserver proxies them:
//! `pods/log`, `pods/exec`, `pods/attach`, `pods/portforward` and
//! `nodes/proxy` to the kubelet API of the node (TLS, the kubelet's serving
//! certificate checked against the server CA, the apiserver's kubelet
//! client certificate presented), `pods/proxy` and `services/proxy` to the
//! pod. Log streams are relayed as they come; WebSocket and SPDY upgrades
//! are passed through byte for byte after the kubelet's `101`.
//!
//! # Layout
//!
//! - `location`: where a request goes and with which parameters.
//! - `connect`: connections to kubelets and pods, failures in Go's words.
//! - `relay`: sending the request, streaming the answer, splicing upgrades.

mod connect;
mod location;
mod relay;

use std::sync::Arc;

use hyper::Response;
use tokio_util::sync::CancellationToken;

pub use connect::KubeletClient;
pub use location::is_node_side;
pub use relay::Inbound;

use super::context::Call;
use super::error::ApiError;
use super::{Api, Body};
use location::Plan;

/// The apiserver's way to kubelets: its client identity and the shutdown
/// that ends relayed streams.
#[derive(Debug, Clone)]
pub struct KubeletAccess {
    client: KubeletClient,
    shutdown: CancellationToken,
}

impl KubeletAccess {
    /// Access with `client`, relayed streams ending at `shutdown`.
    pub fn new(client: KubeletClient, shutdown: CancellationToken) -> Self {
        Self { client, shutdown }
    }
}

/// Answers a node-side subresource request (see [`is_node_side`]);
/// `raw_path` and `raw_query` are the request's as sent.
pub async fn serve(
    api: Arc<Api>,
    call: Call,
    raw_path: String,
    raw_query: Option<String>,
    inbound: Inbound,
) -> Result<Response<Body>, ApiError> {
    let access =
        api.kubelet.get().cloned().ok_or_else(|| {
            ApiError::unavailable("the apiserver has no kubelet client credentials")
        })?;
    let resolver = api.clone();
    let plan = tokio::task::spawn_blocking(move || {
        let get = |plural: &str, namespace: &str, name: &str| {
            let rt = resolver
                .resources
                .find("", "v1", plural)
                .ok_or_else(ApiError::no_resource)?;
            resolver.store.try_get(&rt, namespace, name, 0)
        };
        let pairs = super::request::Query::pairs(raw_query.as_deref());
        location::plan(
            &get,
            &call.rt.plural,
            call.namespace(),
            call.name(),
            &call.info.subresource,
            &raw_path,
            &pairs,
        )
    })
    .await
    .map_err(|e| ApiError::internal(format!("request task: {e}")))??;
    match plan {
        Plan::EmptyLog => {
            let mut response = Response::new(super::full(bytes::Bytes::new()));
            response.headers_mut().insert(
                hyper::header::CONTENT_TYPE,
                hyper::header::HeaderValue::from_static("text/plain"),
            );
            Ok(response)
        }
        Plan::Forward(target) => {
            relay::relay(&access.client, &access.shutdown, target, inbound).await
        }
    }
}
