//! The apiserver: HTTPS with x509 client-certificate and service-account
//! token authentication, the health endpoints, discovery and OpenAPI, and
//! the Kubernetes API's resources stored in the datastore.
//!
//! A request goes: `serve` (TLS, who is asking) → `route` (health,
//! discovery, OpenAPI, or a resource request read by `request`) → the verb
//! (`verbs`, `subresources`, `watch`, or `kubelet` for the node-side
//! subresources, relayed to the node) → `store` (objects over the
//! datastore). Writes pass through `Api`'s steps (`api.rs`): field
//! validation against the OpenAPI schema, defaulting (`defaults`) and
//! admission, validation (`validation`), field managers (`apply`).
//!
//! # Layout
//!
//! - `auth`: who a request is, from its client certificate or bearer token;
//!   `tokens`: service-account tokens (TokenRequest, bearer tokens, OIDC
//!   discovery).
//! - `kubelet`: logs, exec, attach, port-forward and proxies, relayed to
//!   kubelets and pods.
//! - `api`: the server's state and the steps of every write.
//! - `request`, `context`, `body`, `output`: reading requests, shaping answers;
//!   `protobuf`: kubectl's protobuf request bodies as JSON.
//! - `resources`: the served kinds; `crds`: kinds from CustomResourceDefinitions.
//! - `discovery`, `openapi`: `/api`, `/apis`, `/openapi/v2`, `/openapi/v3`.
//! - `verbs`, `subresources`, `watch`: the verbs.
//! - `store`: objects over the datastore; `object`: metadata the server sets.
//! - `patch`, `apply`, `schema`: patches, server-side apply, patch metadata.
//! - `defaults`, `validation`: per-kind defaulting and validation.
//! - `table`, `selector`: Table output, label and field selectors.
//! - `reviews`: access and identity reviews (`kubectl auth can-i|whoami`).
//! - `services`, `namespaces`, `events`: service IPs and ports, namespace
//!   lifecycle, event expiry.
//! - `error`, `status`, `health`: Status answers, health and version.

mod api;
mod apply;
mod auth;
mod body;
mod context;
mod crds;
mod defaults;
mod discovery;
mod error;
mod events;
mod health;
mod kubelet;
mod kubernetes_endpoints;
mod namespaces;
mod object;
mod openapi;
mod output;
mod patch;
mod protobuf;
mod request;
mod resources;
mod reviews;
mod schema;
pub mod selector;
mod service_accounts;
mod services;
mod status;
mod store;
mod subresources;
mod table;
mod tokens;
mod validation;
mod verbs;
mod watch;

use std::convert::Infallible;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::BodyExt;
use http_body_util::combinators::BoxBody;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::upgrade::OnUpgrade;
use hyper::{Request, Response, StatusCode, header};
use hyper_util::rt::TokioIo;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;

pub use api::Api;
pub use auth::User;
pub use error::ApiError;
pub use events::{EVENT_TTL, expire as expire_events};
pub use namespaces::{bootstrap, run_cleaner};

use crate::tls::ClusterTls;
use context::{Call, Reply};
use request::Query;

/// A response body: whole, or streamed (watches).
pub type Body = BoxBody<Bytes, Infallible>;

/// A whole response body.
pub fn full(bytes: impl Into<Bytes>) -> Body {
    http_body_util::Full::new(bytes.into()).boxed()
}

/// A streamed response body.
pub fn stream<S>(frames: S) -> Body
where
    S: futures::Stream<Item = Result<hyper::body::Frame<Bytes>, Infallible>>
        + Send
        + Sync
        + 'static,
{
    http_body_util::StreamBody::new(frames).boxed()
}

/// A failure setting the apiserver up.
#[derive(Debug, thiserror::Error)]
pub enum ApiServerError {
    /// The certificates could not be used for TLS.
    #[error("apiserver TLS: {0}")]
    Tls(String),
    /// The service-account key or the kubelet client identity could not
    /// be made or used.
    #[error("apiserver credentials: {0}")]
    Credentials(String),
}

/// What the apiserver serves with, from the cluster's certificates: the
/// TLS configuration, the service-account token key, and the client
/// identity it presents to kubelets.
pub struct ServerTls {
    config: rustls::ServerConfig,
    tokens: tokens::Tokens,
    kubelet: kubelet::KubeletClient,
}

impl std::fmt::Debug for ServerTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerTls")
            .field("tokens", &self.tokens)
            .finish_non_exhaustive()
    }
}

/// The apiserver's TLS setup: the serving certificate, and client
/// certificates from the client CA verified when presented (anonymous
/// clients may reach the health endpoints only); with the service-account
/// key (`service.key`, made on first start) and the kubelet client
/// certificate (`client-kube-apiserver-kubelet`).
pub fn tls_config(tls: &ClusterTls) -> Result<ServerTls, ApiServerError> {
    let key = tls
        .service_account_key()
        .map_err(|e| ApiServerError::Credentials(e.to_string()))?;
    let tokens =
        tokens::Tokens::new(&key).map_err(|e| ApiServerError::Credentials(e.to_string()))?;
    let cert = tls
        .component_client(
            "kube-apiserver-kubelet",
            "kube-apiserver-kubelet-client",
            Some("system:masters"),
        )
        .map_err(|e| ApiServerError::Credentials(e.to_string()))?;
    let kubelet =
        kubelet::KubeletClient::new(&tls.server_ca.cert_pem, &cert.cert_pem, &cert.key_pem)
            .map_err(ApiServerError::Credentials)?;
    Ok(ServerTls {
        config: serving_config(tls)?,
        tokens,
        kubelet,
    })
}

fn serving_config(tls: &ClusterTls) -> Result<rustls::ServerConfig, ApiServerError> {
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
pub async fn serve(
    listener: TcpListener,
    tls: ServerTls,
    api: Arc<Api>,
    shutdown: CancellationToken,
) {
    let ServerTls {
        config,
        tokens,
        kubelet,
    } = tls;
    let _ = api.tokens.set(tokens);
    let _ = api
        .kubelet
        .set(kubelet::KubeletAccess::new(kubelet, shutdown.child_token()));
    let acceptor = TlsAcceptor::from(Arc::new(config));
    tokio::spawn(trim_when_quiet(shutdown.clone()));
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
        let api = api.clone();
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
                let api = api.clone();
                async move { Ok::<_, Infallible>(route(api, user, request).await) }
            });
            let connection = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .with_upgrades();
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

/// Answers one request: its user is the client certificate's, else the
/// bearer token's (a token of ours that is not valid is 401 everywhere,
/// as kube-apiserver's authenticator fails on error); anonymous clients
/// reach the health endpoints only.
async fn route(api: Arc<Api>, user: Option<User>, request: Request<Incoming>) -> Response<Body> {
    let path = request.uri().path().to_owned();
    let user = match user {
        Some(user) => Some(user),
        None => match token_user(&api, request.headers()).await {
            Ok(user) => user,
            Err(()) => return status::unauthorized(),
        },
    };
    if let Some(response) = health::answer(&path) {
        return response;
    }
    let Some(user) = user else {
        return status::unauthorized();
    };
    let started = std::time::Instant::now();
    let method = request.method().clone();
    let response = match answer(api, user.clone(), request).await {
        Ok(response) => response,
        Err(err) => body::error(&err),
    };
    tracing::debug!(user = %user.name, %method, %path, status = response.status().as_u16(), elapsed_us = started.elapsed().as_micros() as u64, "request");
    response
}

/// The user of a bearer token: `Ok(None)` without one (or with one that
/// is not ours), `Err` for a token of ours that is not valid.
async fn token_user(api: &Arc<Api>, headers: &header::HeaderMap) -> Result<Option<User>, ()> {
    let Some(token) = auth::bearer_token(headers) else {
        return Ok(None);
    };
    let Some(tokens) = api.tokens.get() else {
        return Ok(None);
    };
    if let Some(user) = tokens.cached(token) {
        return Ok(Some(user));
    }
    let (judge, token) = (api.clone(), token.to_owned());
    let verdict = tokio::task::spawn_blocking(move || {
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        judge
            .tokens
            .get()
            .map(|tokens| tokens.authenticate(&judge, &token, now))
    })
    .await;
    match verdict {
        Ok(Some(tokens::Verdict::User(user))) => Ok(Some(user)),
        Ok(Some(tokens::Verdict::Refused(why))) => {
            tracing::debug!(%why, "bearer token refused");
            Err(())
        }
        Ok(Some(tokens::Verdict::NotOurs) | None) => Ok(None),
        Err(err) => {
            tracing::warn!(%err, "token authentication task");
            Err(())
        }
    }
}

async fn answer(
    api: Arc<Api>,
    user: User,
    request: Request<Incoming>,
) -> Result<Response<Body>, ApiError> {
    let (mut parts, incoming) = request.into_parts();
    let on_upgrade = parts.extensions.remove::<OnUpgrade>();
    let path = parts.uri.path().trim_end_matches('/').to_owned();
    let query = Query::parse(parts.uri.query());
    let aggregated = discovery::wants_aggregated(&parts.headers);
    match path.as_str() {
        tokens::OPENID_CONFIGURATION_PATH | tokens::JWKS_PATH => {
            let tokens = api.tokens.get().ok_or_else(ApiError::no_resource)?;
            return Ok(if path == tokens::JWKS_PATH {
                oidc_document(&tokens.jwks(), "application/jwk-set+json")
            } else {
                oidc_document(
                    &tokens.openid_configuration(&api.server_address),
                    "application/json",
                )
            });
        }
        "/api" if aggregated => return Ok(aggregated_discovery(&api, true)),
        "/apis" if aggregated => return Ok(aggregated_discovery(&api, false)),
        "/api" => {
            return Ok(body::respond(
                StatusCode::OK,
                &discovery::api_versions(&api.server_address),
                false,
            ));
        }
        "/apis" => {
            return Ok(body::respond(
                StatusCode::OK,
                &discovery::api_group_list(&api.resources),
                false,
            ));
        }
        "/openapi/v2" => return openapi_v2(&api, &parts.headers),
        "/openapi/v3" => {
            let bytes = api
                .openapi
                .v3_index(&served(&api), &crd_schemas(&api))
                .map_err(|e| ApiError::internal(e.to_string()))?;
            release_freed_memory();
            return Ok(json_bytes(bytes));
        }
        _ => {}
    }
    if let Some(document) = path.strip_prefix("/openapi/v3/") {
        return api
            .openapi
            .v3_document(document, &served(&api), &crd_schemas(&api))
            .map_err(|e| ApiError::internal(e.to_string()))?
            .map(|bytes| {
                release_freed_memory();
                json_bytes(bytes)
            })
            .ok_or_else(ApiError::no_resource);
    }
    if let Some(group) = path.strip_prefix("/apis/").filter(|g| !g.contains('/')) {
        return discovery::api_group(&api.resources, group)
            .map(|g| body::respond(StatusCode::OK, &g, false))
            .ok_or_else(ApiError::no_resource);
    }
    let info = request::parse(&parts.method, &path, &query).ok_or_else(ApiError::no_resource)?;
    if info.resource.is_empty() {
        return discovery::api_resource_list(&api.resources, &info.group, &info.version)
            .map(|list| body::respond(StatusCode::OK, &list, false))
            .ok_or_else(ApiError::no_resource);
    }
    let rt = api
        .resources
        .find(&info.group, &info.version, &info.resource)
        .ok_or_else(ApiError::no_resource)?;
    if !rt.namespaced && !info.namespace.is_empty() {
        return Err(ApiError::no_resource());
    }
    let subresource = !info.subresource.is_empty();
    if rt.group.is_empty() && !rt.custom && kubelet::is_node_side(&rt.plural, &info.subresource) {
        if rt.namespaced && info.namespace.is_empty() {
            return Err(ApiError::no_resource());
        }
        let inbound = kubelet::Inbound {
            method: parts.method.clone(),
            headers: parts.headers.clone(),
            body: incoming,
            on_upgrade,
            name: info.name.clone(),
        };
        let call = Call {
            info,
            query,
            headers: parts.headers,
            user,
            rt,
            wanted: body::Wanted::Object,
        };
        let raw_path = parts.uri.path().to_owned();
        let raw_query = parts.uri.query().map(str::to_owned);
        return kubelet::serve(api, call, raw_path, raw_query, inbound).await;
    }
    if !subresource && !rt.has_verb(&info.verb) {
        return Err(ApiError::method_not_allowed(format!(
            "the server does not allow this method on the requested resource ({} {})",
            info.verb,
            rt.qualified()
        )));
    }
    if rt.namespaced && info.namespace.is_empty() && !matches!(info.verb.as_str(), "list" | "watch")
    {
        return Err(ApiError::no_resource());
    }
    let wanted = body::wanted(&parts.headers)?;
    let yaml = body::wants_yaml(&parts.headers);
    let call = Call {
        info,
        query,
        headers: parts.headers,
        user,
        rt,
        wanted,
    };
    if call.info.verb == "watch" && !subresource {
        return watch::watch(api, call);
    }
    let bytes = body::read(incoming).await?;
    let reply = tokio::task::spawn_blocking(move || {
        let verb = call.info.verb.clone();

        if !call.info.subresource.is_empty() {
            subresources::serve(&api, &call, &bytes)
        } else {
            match verb.as_str() {
                "get" => verbs::get(&api, &call),
                "list" => verbs::list(&api, &call),
                "create" => verbs::create(&api, &call, &bytes),
                "update" => verbs::update(&api, &call, &bytes, verbs::Part::Main),
                "patch" => verbs::patch(&api, &call, &bytes, verbs::Part::Main),
                "delete" => verbs::delete(&api, &call, &bytes),
                "deletecollection" => verbs::delete_collection(&api, &call, &bytes),
                other => Err(ApiError::method_not_allowed(format!(
                    "{other} is not supported"
                ))),
            }
        }
    })
    .await
    .map_err(|e| ApiError::internal(format!("request task: {e}")))??;
    let large = reply.body["items"]
        .as_array()
        .is_some_and(|items| items.len() > LARGE_LIST)
        || reply.body["rows"]
            .as_array()
            .is_some_and(|rows| rows.len() > LARGE_LIST)
        || reply
            .raw
            .as_ref()
            .is_some_and(|raw| raw.len() > LARGE_LIST * 1024);
    let response = reply_response(reply, yaml);
    if large {
        TRIM_WANTED.store(true, std::sync::atomic::Ordering::Relaxed);
    }
    Ok(response)
}

/// Lists this long leave megabytes of freed heap behind.
const LARGE_LIST: usize = 1000;

/// Set after a large answer; the trimmer gives the freed heap back once
/// answers have been quiet for a while (trimming after every list would
/// make the next one fault its memory in again).
static TRIM_WANTED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// How long after a large answer the heap is trimmed.
const TRIM_AFTER: std::time::Duration = std::time::Duration::from_secs(2);

/// Trims the heap when a large answer asked for it and things went quiet.
async fn trim_when_quiet(shutdown: CancellationToken) {
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(TRIM_AFTER) => {}
        }
        if TRIM_WANTED.swap(false, std::sync::atomic::Ordering::Relaxed) {
            // Wait one more period without large answers.
            tokio::time::sleep(TRIM_AFTER).await;
            if !TRIM_WANTED.load(std::sync::atomic::Ordering::Relaxed) {
                let _ = tokio::task::spawn_blocking(release_freed_memory).await;
            }
        }
    }
}

/// Gives freed heap back to the kernel after a large answer was built
/// (OpenAPI documents, long lists), so the server's idle memory stays small.
fn release_freed_memory() {
    // SAFETY: malloc_trim only returns free pages of the allocator's heap to
    // the kernel; it does not touch memory in use.
    unsafe {
        libc::malloc_trim(0);
    }
}

fn reply_response(reply: Reply, yaml: bool) -> Response<Body> {
    let mut response = match reply.raw {
        Some(raw) if !yaml => {
            let mut response = Response::new(full(raw));
            *response.status_mut() = reply.code;
            response.headers_mut().insert(
                header::CONTENT_TYPE,
                header::HeaderValue::from_static("application/json"),
            );
            response
        }
        Some(raw) => {
            let value: serde_json::Value = serde_json::from_slice(&raw).unwrap_or_default();
            body::respond(reply.code, &value, yaml)
        }
        None => body::respond(reply.code, &reply.body, yaml),
    };
    for warning in reply.warnings {
        let text = format!("299 - \"{}\"", warning.replace('"', "\\\""));
        if let Ok(value) = header::HeaderValue::from_str(&text) {
            response.headers_mut().append(header::WARNING, value);
        }
    }
    response
}

fn aggregated_discovery(api: &Api, legacy: bool) -> Response<Body> {
    let mut response = body::respond(
        StatusCode::OK,
        &discovery::aggregated(&api.resources, legacy),
        false,
    );
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static(discovery::AGGREGATED_V2),
    );
    response
}

/// An OIDC discovery document, cacheable for an hour as kube-apiserver
/// serves it.
fn oidc_document(document: &serde_json::Value, content_type: &'static str) -> Response<Body> {
    let mut response = Response::new(full(document.to_string()));
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static(content_type),
    );
    headers.insert(
        header::CACHE_CONTROL,
        header::HeaderValue::from_static("public, max-age=3600"),
    );
    response
}

fn json_bytes(bytes: Vec<u8>) -> Response<Body> {
    let mut response = Response::new(full(bytes));
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/json"),
    );
    response
}

/// `/openapi/v2` as JSON, or as gnostic's protobuf for kubectl's
/// client-side validation (`application/com.github.proto-openapi.spec.v2@v1.0+protobuf`
/// or `...v2.v1.0+protobuf`, answered like kube-apiserver with the latter);
/// 406 for anything else. The first acceptable clause of `Accept` wins.
fn openapi_v2(api: &Api, headers: &header::HeaderMap) -> Result<Response<Body>, ApiError> {
    const PROTOBUF: &str = "application/com.github.proto-openapi.spec.v2.v1.0+protobuf";
    const PROTOBUF_DEPRECATED: &str = "application/com.github.proto-openapi.spec.v2@v1.0+protobuf";
    let accept = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let protobuf = if accept.trim().is_empty() {
        false
    } else {
        accept
            .split(',')
            .find_map(|a| match a.split(';').next().unwrap_or("").trim() {
                "application/json" | "*/*" | "application/*" => Some(false),
                PROTOBUF | PROTOBUF_DEPRECATED => Some(true),
                _ => None,
            })
            .ok_or_else(|| {
                ApiError::not_acceptable(format!(
                    "only application/json and {PROTOBUF} are served at /openapi/v2"
                ))
            })?
    };
    let (served, custom) = (served(api), crd_schemas(api));
    let bytes = if protobuf {
        api.openapi.v2_protobuf(&served, &custom)
    } else {
        api.openapi.v2_json(&served, &custom)
    }
    .map_err(|e| ApiError::internal(e.to_string()))?;
    release_freed_memory();
    if !protobuf {
        return Ok(json_bytes(bytes));
    }
    let mut response = Response::new(full(bytes));
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static(PROTOBUF),
    );
    Ok(response)
}

fn served(api: &Api) -> Vec<openapi::ServedResource> {
    api.resources
        .all()
        .iter()
        .map(|t| openapi::ServedResource {
            group: t.group.clone(),
            version: t.version.clone(),
            kind: t.kind.clone(),
            plural: t.plural.clone(),
            namespaced: t.namespaced,
            subresources: t.subresources.clone(),
            verbs: t.verbs.clone(),
        })
        .collect()
}

fn crd_schemas(api: &Api) -> Vec<openapi::CustomSchema> {
    api.resources
        .all()
        .iter()
        .filter(|t| t.custom)
        .filter_map(|t| {
            Some(openapi::CustomSchema {
                group: t.group.clone(),
                version: t.version.clone(),
                kind: t.kind.clone(),
                plural: t.plural.clone(),
                namespaced: t.namespaced,
                schema: crds::schema_of(api, t)?,
            })
        })
        .collect()
}
