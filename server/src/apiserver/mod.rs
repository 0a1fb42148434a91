//! The apiserver's front door: HTTPS with x509 client-certificate
//! authentication, and the endpoints that need no API objects (`/healthz`,
//! `/livez`, `/readyz`, `/version`). The API itself (discovery, resources,
//! verbs) is being built; until then every other path answers with a
//! Kubernetes `Status` (401 without a client certificate, 404 with one).
//!
//! # Layout
//!
//! - `auth`: who a request is, from its client certificate.
//! - `status`: Kubernetes `Status` responses.
//! - `health`: health and version endpoints.

mod auth;
mod health;
mod status;

use std::convert::Infallible;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;

pub use auth::User;

use crate::tls::ClusterTls;

/// A response body.
pub type Body = Full<Bytes>;

/// A failure setting the apiserver up.
#[derive(Debug, thiserror::Error)]
pub enum ApiServerError {
    /// The certificates could not be used for TLS.
    #[error("apiserver TLS: {0}")]
    Tls(String),
}

/// The TLS configuration: the serving certificate, and client certificates
/// from the client CA verified when presented (anonymous clients may reach
/// the health endpoints only).
pub fn tls_config(tls: &ClusterTls) -> Result<rustls::ServerConfig, ApiServerError> {
    let err = |what: &str| {
        let what = what.to_owned();
        move |e: &dyn std::fmt::Display| ApiServerError::Tls(format!("{what}: {e}"))
    };
    let certs = |pem: &str| -> Result<Vec<CertificateDer<'static>>, ApiServerError> {
        CertificateDer::pem_slice_iter(pem.as_bytes())
            .collect::<Result<_, _>>()
            .map_err(|e| err("certificate")(&e))
    };
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    for cert in certs(&tls.client_ca.cert_pem)? {
        roots.add(cert).map_err(|e| err("client CA")(&e))?;
    }
    let verifier =
        rustls::server::WebPkiClientVerifier::builder_with_provider(roots.into(), provider.clone())
            .allow_unauthenticated()
            .build()
            .map_err(|e| err("client verifier")(&e))?;
    let key = PrivateKeyDer::from_pem_slice(tls.serving.key_pem.as_bytes())
        .map_err(|e| err("serving key")(&e))?;
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| err("protocols")(&e))?
        .with_client_cert_verifier(verifier)
        .with_single_cert(certs(&tls.serving.cert_pem)?, key)
        .map_err(|e| err("serving certificate")(&e))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

/// Serves HTTPS on `listener` until `shutdown` is cancelled.
pub async fn serve(listener: TcpListener, tls: rustls::ServerConfig, shutdown: CancellationToken) {
    let acceptor = TlsAcceptor::from(Arc::new(tls));
    loop {
        let (stream, peer) = tokio::select! {
            () = shutdown.cancelled() => return,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(err) => {
                    tracing::warn!(%err, "accepting a connection");
                    continue;
                }
            },
        };
        let acceptor = acceptor.clone();
        let shutdown = shutdown.clone();
        tokio::spawn(async move {
            let stream = match acceptor.accept(stream).await {
                Ok(stream) => stream,
                Err(err) => {
                    tracing::debug!(%peer, %err, "TLS handshake failed");
                    return;
                }
            };
            let user = auth::user_of(stream.get_ref().1.peer_certificates());
            let service = service_fn(move |request| {
                let user = user.clone();
                async move { Ok::<_, Infallible>(route(&user, request)) }
            });
            let connection = http1::Builder::new().serve_connection(TokioIo::new(stream), service);
            tokio::select! {
                () = shutdown.cancelled() => {}
                result = connection => {
                    if let Err(err) = result {
                        tracing::debug!(%peer, %err, "connection ended");
                    }
                }
            }
        });
    }
}

/// Answers one request.
fn route(user: &Option<User>, request: Request<Incoming>) -> Response<Body> {
    let path = request.uri().path();
    if let Some(response) = health::answer(path) {
        return response;
    }
    match user {
        None => status::unauthorized(),
        Some(user) => {
            tracing::debug!(user = %user.name, %path, "not served yet");
            status::not_found(path)
        }
    }
}
