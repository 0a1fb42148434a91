//! `/healthz`, `/livez`, `/readyz` (and their `/<check>` sub-paths) and
//! `/version`, open to anonymous clients as kube-apiserver's
//! `system:public-info-viewer` role allows.

use bytes::Bytes;
use hyper::{Response, header};
use skiff_agent::kubelet::node::kubelet_version;

use super::Body;

/// The Kubernetes version the API speaks.
pub const KUBERNETES_VERSION: (&str, &str) = ("1", "32");

/// The answer for `path` when it is a health or version endpoint.
pub fn answer(path: &str) -> Option<Response<Body>> {
    let health = ["/healthz", "/livez", "/readyz"]
        .iter()
        .any(|p| path == *p || path.strip_prefix(p).is_some_and(|r| r.starts_with('/')));
    if health {
        return Some(text("ok"));
    }
    (path == "/version").then(version)
}

fn text(body: &'static str) -> Response<Body> {
    let mut response = Response::new(super::full(Bytes::from_static(body.as_bytes())));
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

fn version() -> Response<Body> {
    let body = serde_json::json!({
        "major": KUBERNETES_VERSION.0,
        "minor": KUBERNETES_VERSION.1,
        // As `kubectl version` shows it, and as the kubelet reports itself.
        "gitVersion": kubelet_version(env!("CARGO_PKG_VERSION")),
        "gitCommit": "",
        "gitTreeState": "clean",
        "buildDate": "",
        "goVersion": "",
        "compiler": "rustc",
        "platform": format!("linux/{}", std::env::consts::ARCH),
    });
    let mut response = Response::new(super::full(Bytes::from(body.to_string())));
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/json"),
    );
    response
}
