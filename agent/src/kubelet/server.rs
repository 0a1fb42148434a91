//! The kubelet API (:10250) over TLS, for the apiserver: container logs,
//! and exec, attach and port-forward proxied to the in-process CRI
//! streaming server, which speaks kubelet's SPDY and WebSocket protocols.
//!
//! Clients authenticate with a certificate from the cluster's client CA;
//! only the apiserver's kubelet client (`kube-apiserver-kubelet-client`)
//! and `system:masters` members are allowed, as a kubelet without
//! anonymous access and with webhook authorization answers: 401 without a
//! certificate, 403 for anyone else.
//!
//! | path | what |
//! |---|---|
//! | `GET /healthz` | `ok` |
//! | `GET /containerLogs/{ns}/{pod}/{container}` | logs (`follow`, `tailLines`, `sinceSeconds`, `sinceTime`, `previous`, `timestamps`, `limitBytes`) |
//! | `/exec/{ns}/{pod}[/{uid}]/{container}?command=…` | exec (`stdin`, `stdout`, `stderr`, `tty`) |
//! | `/attach/{ns}/{pod}[/{uid}]/{container}` | attach |
//! | `/portForward/{ns}/{pod}[/{uid}]` | port-forward (`port` for WebSocket) |
//!
//! Not served yet: `/pods`, `/runningpods`, `/stats`, `/metrics`,
//! `/configz`, `/logs` (404).
//!
//! # Layout
//!
//! - `auth`: who the client is and whether it may ask.
//! - `query`: query strings as Go's `url.ParseQuery` reads them.
//! - `lookup`: a pod's sandbox and containers from CRI labels.
//! - `logs`, `logfile`: `/containerLogs` and the CRI log file reader.
//! - `stream`, `proxy`: exec, attach, port-forward and the upgrade proxy.

mod auth;
mod logfile;
mod logs;
mod lookup;
mod proxy;
mod query;
mod stream;

use std::convert::Infallible;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::BodyExt;
use http_body_util::combinators::BoxBody;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode, header};
use hyper_util::rt::TokioIo;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub use auth::{APISERVER_CLIENT, User};

use super::Kubelet;

/// A response body: whole, or streamed (followed logs).
pub type Body = BoxBody<Bytes, Infallible>;

/// The kubelet API's TLS could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// A certificate, key or CA is unusable.
    #[error("kubelet API TLS: {what}: {reason}")]
    Tls {
        /// Which one.
        what: &'static str,
        /// Why.
        reason: String,
    },
}

/// The TLS configuration: the kubelet's serving certificate, and client
/// certificates verified against the cluster's client CA when presented
/// (requests without one get 401, as kubelet answers them).
pub fn tls_config(
    cert_pem: &str,
    key_pem: &str,
    client_ca_pem: &str,
) -> Result<rustls::ServerConfig, ServerError> {
    let tls = |what: &'static str| {
        move |e: &dyn std::fmt::Display| ServerError::Tls {
            what,
            reason: e.to_string(),
        }
    };
    let certs = |pem: &str, what: &'static str| {
        CertificateDer::pem_slice_iter(pem.as_bytes())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| tls(what)(&e))
    };
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    for cert in certs(client_ca_pem, "client CA")? {
        roots.add(cert).map_err(|e| tls("client CA")(&e))?;
    }
    let verifier =
        rustls::server::WebPkiClientVerifier::builder_with_provider(roots.into(), provider.clone())
            .allow_unauthenticated()
            .build()
            .map_err(|e| tls("client verifier")(&e))?;
    let key =
        PrivateKeyDer::from_pem_slice(key_pem.as_bytes()).map_err(|e| tls("serving key")(&e))?;
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| tls("protocols")(&e))?
        .with_client_cert_verifier(verifier)
        .with_single_cert(certs(cert_pem, "serving certificate")?, key)
        .map_err(|e| tls("serving certificate")(&e))?;
    // Upgrades (exec, attach, port-forward) need HTTP/1.1.
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

/// Serves the kubelet API on `listener` until `shutdown` is cancelled;
/// open streams (followed logs, exec sessions) end with it.
pub async fn serve(
    listener: TcpListener,
    tls: rustls::ServerConfig,
    kubelet: Kubelet,
    shutdown: CancellationToken,
) {
    let acceptor = TlsAcceptor::from(Arc::new(tls));
    let connections = TaskTracker::new();
    if let Ok(address) = listener.local_addr() {
        tracing::info!(%address, "kubelet API listening");
    }
    loop {
        let (stream, peer) = tokio::select! {
            () = shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(err) => {
                    tracing::warn!(%err, "kubelet API: accepting a connection");
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let acceptor = acceptor.clone();
        let shutdown = shutdown.clone();
        let kubelet = kubelet.clone();
        connections.spawn(async move {
            let requests = shutdown.clone();
            let stream = match acceptor.accept(stream).await {
                Ok(stream) => stream,
                Err(err) => {
                    tracing::debug!(%peer, %err, "kubelet API: TLS handshake failed");
                    return;
                }
            };
            let user = auth::user_of(stream.get_ref().1.peer_certificates());
            let service = service_fn(move |request| {
                let kubelet = kubelet.clone();
                let user = user.clone();
                let shutdown = requests.clone();
                async move { Ok::<_, Infallible>(route(kubelet, user, request, shutdown).await) }
            });
            let connection = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .with_upgrades();
            tokio::select! {
                () = shutdown.cancelled() => {}
                result = connection => {
                    if let Err(err) = result {
                        tracing::debug!(%peer, %err, "kubelet API: connection ended");
                    }
                }
            }
        });
    }
    connections.close();
    connections.wait().await;
}

/// Answers one request.
async fn route(
    kubelet: Kubelet,
    user: Option<User>,
    request: Request<Incoming>,
    shutdown: CancellationToken,
) -> Response<Body> {
    if let Err(refused) = auth::authorize(user.as_ref(), request.method(), request.uri().path()) {
        return refused.response();
    }
    let path = request.uri().path().to_owned();
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    match segments.as_slice() {
        ["healthz"] => text(StatusCode::OK, "ok"),
        ["containerLogs", namespace, pod, container] => {
            logs::container_logs(&kubelet, &request, namespace, pod, container, shutdown).await
        }
        [kind @ ("exec" | "attach"), namespace, pod, container] => {
            stream::remote_command(&kubelet, request, kind, namespace, pod, None, container).await
        }
        [kind @ ("exec" | "attach"), namespace, pod, uid, container] => {
            stream::remote_command(
                &kubelet,
                request,
                kind,
                namespace,
                pod,
                Some(uid),
                container,
            )
            .await
        }
        ["portForward", namespace, pod] => {
            stream::port_forward(&kubelet, request, namespace, pod, None).await
        }
        ["portForward", namespace, pod, uid] => {
            stream::port_forward(&kubelet, request, namespace, pod, Some(uid)).await
        }
        _ => text(StatusCode::NOT_FOUND, "404 page not found\n"),
    }
}

/// A request the kubelet will not serve, and why, in kubelet's words.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Failure {
    status: StatusCode,
    message: String,
}

impl Failure {
    fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
        }
    }

    fn response(self) -> Response<Body> {
        text(self.status, self.message)
    }
}

/// A whole body.
fn full(bytes: impl Into<Bytes>) -> Body {
    http_body_util::Full::new(bytes.into()).boxed()
}

/// A plain-text answer, as Go's `http.Error` and restful's `WriteError`
/// write them.
fn text(status: StatusCode, body: impl Into<String>) -> Response<Body> {
    let mut body: String = body.into();
    if status != StatusCode::OK && !body.ends_with('\n') {
        body.push('\n');
    }
    let mut response = Response::new(full(body));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response.headers_mut().insert(
        header::X_CONTENT_TYPE_OPTIONS,
        header::HeaderValue::from_static("nosniff"),
    );
    response
}
