//! Relaying one request to its backend, as kube-apiserver's
//! UpgradeAwareHandler and LocationStreamer do: the answer streamed back
//! frame by frame (a followed log never buffers), and an upgrade (the
//! WebSocket or SPDY of exec, attach and port-forward) answered with the
//! backend's `101 Switching Protocols` and then spliced byte for byte.

use std::convert::Infallible;

use bytes::Bytes;
use futures::StreamExt;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Empty, Limited};
use hyper::body::{Frame, Incoming};
use hyper::header::{self, HeaderMap, HeaderValue};
use hyper::upgrade::OnUpgrade;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::json;
use tokio_util::sync::CancellationToken;

use super::connect::KubeletClient;
use super::location::{Purpose, Target};
use crate::apiserver::error::ApiError;
use crate::apiserver::{Body, full};

/// The most of a failed log answer read into the error (upstream's limit).
const MAX_ERROR_BODY: usize = 50_000;

/// Headers that belong to one connection, not to the request.
const HOP_BY_HOP: [&str; 9] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

/// The client's side of a relayed request.
#[derive(Debug)]
pub struct Inbound {
    /// Its method.
    pub method: Method,
    /// Its headers.
    pub headers: HeaderMap,
    /// Its body, streamed to the backend.
    pub body: Incoming,
    /// Its connection, once upgraded.
    pub on_upgrade: Option<OnUpgrade>,
    /// The object named in errors (`web` of `pods/log web`).
    pub name: String,
}

/// Sends `inbound` to `target` and answers with what the backend says.
pub async fn relay(
    client: &KubeletClient,
    shutdown: &CancellationToken,
    target: Target,
    inbound: Inbound,
) -> Result<Response<Body>, ApiError> {
    let upgrade = wants_upgrade(&inbound.headers);
    if target.purpose == Purpose::Stream && !upgrade {
        return Err(ApiError::bad_request("Upgrade request required"));
    }
    let failed = |err: String| -> ApiError {
        match target.purpose {
            Purpose::Log => ApiError::unknown(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("Get {:?}: {err}", target.url()),
            ),
            _ if upgrade => ApiError::unknown(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("error dialing backend: {err}"),
            ),
            _ => ApiError::unavailable(format!("error trying to reach service: {err}")),
        }
    };
    let io = client.dial(&target.backend).await.map_err(failed)?;
    let (mut sender, connection) = hyper::client::conn::http1::Builder::new()
        .handshake::<_, BoxBody<Bytes, hyper::Error>>(TokioIo::new(io))
        .await
        .map_err(|e| failed(e.to_string()))?;
    tokio::spawn(async move {
        if let Err(err) = connection.with_upgrades().await {
            tracing::debug!(%err, "backend connection ended");
        }
    });

    let authority = target.backend.authority();
    let mut request = Request::builder()
        .uri(target.path_and_query.as_str())
        .body(if target.purpose == Purpose::Log {
            Empty::<Bytes>::new()
                .map_err(|never| match never {})
                .boxed()
        } else {
            inbound.body.boxed()
        })
        .map_err(|e| ApiError::bad_request(format!("relaying the request: {e}")))?;
    if target.purpose == Purpose::Log {
        *request.method_mut() = Method::GET;
    } else {
        *request.method_mut() = inbound.method;
        *request.headers_mut() = outgoing_headers(&inbound.headers, upgrade);
    }
    if let Ok(host) = HeaderValue::from_str(&authority) {
        request.headers_mut().insert(header::HOST, host);
    }
    let mut response = sender
        .send_request(request)
        .await
        .map_err(|e| failed(go_transport_error(&e)))?;

    if response.status() == StatusCode::SWITCHING_PROTOCOLS && upgrade {
        let Some(client_side) = inbound.on_upgrade else {
            return Err(ApiError::internal("the connection cannot be upgraded"));
        };
        let backend_side = hyper::upgrade::on(&mut response);
        let mut reply = Response::new(full(Bytes::new()));
        *reply.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
        *reply.headers_mut() = response.headers().clone();
        tokio::spawn(splice(client_side, backend_side, shutdown.clone()));
        return Ok(reply);
    }

    if target.purpose == Purpose::Log {
        let status = response.status();
        if !(200..=206).contains(&status.as_u16()) {
            let body = Limited::new(response.into_body(), MAX_ERROR_BODY)
                .collect()
                .await
                .map(|b| b.to_bytes())
                .unwrap_or_default();
            return Err(refusal(
                status,
                &String::from_utf8_lossy(&body),
                &inbound.name,
            ));
        }
        let mut reply = Response::new(stream_body(response.into_body(), shutdown.clone()));
        reply
            .headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
        return Ok(reply);
    }

    let status = response.status();
    let mut headers = response.headers().clone();
    for name in HOP_BY_HOP {
        headers.remove(name);
    }
    let mut reply = Response::new(stream_body(response.into_body(), shutdown.clone()));
    *reply.status_mut() = status;
    *reply.headers_mut() = headers;
    Ok(reply)
}

/// Whether the client asks to switch protocols (`Connection: Upgrade` and
/// an `Upgrade` header).
pub fn wants_upgrade(headers: &HeaderMap) -> bool {
    let connection_upgrade = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|token| token.trim().eq_ignore_ascii_case("upgrade"));
    connection_upgrade && headers.contains_key(header::UPGRADE)
}

/// The client's headers for the backend: credentials and impersonation
/// stay here (kube-apiserver drops them once authenticated), connection
/// headers too unless the request upgrades.
fn outgoing_headers(headers: &HeaderMap, upgrade: bool) -> HeaderMap {
    let mut out = HeaderMap::new();
    for (name, value) in headers {
        let name_str = name.as_str();
        let hop = HOP_BY_HOP.contains(&name_str)
            && !(upgrade && matches!(name_str, "connection" | "upgrade"));
        if hop
            || name == header::AUTHORIZATION
            || name == header::HOST
            || name_str.starts_with("impersonate-")
        {
            continue;
        }
        out.append(name.clone(), value.clone());
    }
    out
}

/// A backend's body as a response body, frame by frame: a task reads the
/// backend and hands each frame over as it comes, and stops when the
/// client goes away or the server shuts down.
fn stream_body(mut body: Incoming, shutdown: CancellationToken) -> Body {
    let (tx, rx) = tokio::sync::mpsc::channel::<Frame<Bytes>>(8);
    tokio::spawn(async move {
        loop {
            let frame = tokio::select! {
                frame = body.frame() => frame,
                () = tx.closed() => return,
                () = shutdown.cancelled() => return,
            };
            match frame {
                Some(Ok(frame)) => {
                    if tx.send(frame).await.is_err() {
                        return;
                    }
                }
                Some(Err(err)) => {
                    tracing::debug!(%err, "reading a relayed answer");
                    return;
                }
                None => return,
            }
        }
    });
    let frames = tokio_stream::wrappers::ReceiverStream::new(rx).map(Ok::<_, Infallible>);
    crate::apiserver::stream(frames)
}

/// Copies bytes both ways between the upgraded client and backend
/// connections until both are done (or the server shuts down).
async fn splice(client: OnUpgrade, backend: OnUpgrade, shutdown: CancellationToken) {
    let (client, backend) = tokio::join!(client, backend);
    let (client, backend) = match (client, backend) {
        (Ok(client), Ok(backend)) => (client, backend),
        (Err(err), _) | (_, Err(err)) => {
            tracing::debug!(%err, "upgrading a relayed connection");
            return;
        }
    };
    let (mut client, mut backend) = (TokioIo::new(client), TokioIo::new(backend));
    tokio::select! {
        result = tokio::io::copy_bidirectional(&mut client, &mut backend) => match result {
            Ok((up, down)) => tracing::debug!(up, down, "relayed stream ended"),
            Err(err) => tracing::debug!(%err, "relayed stream broke"),
        },
        () = shutdown.cancelled() => {}
    }
}

/// A transport failure after connecting, as Go words the common ones.
fn go_transport_error(err: &hyper::Error) -> String {
    if err.is_incomplete_message() || err.is_canceled() {
        "EOF".to_owned()
    } else {
        err.to_string()
    }
}

/// A kubelet's refusal of a log request, as kube-apiserver's
/// `GenericHttpResponseChecker` reports it.
fn refusal(code: StatusCode, body: &str, name: &str) -> ApiError {
    match code.as_u16() {
        500 => {
            let mut err = ApiError::internal(body);
            err.details = Some(json!({ "causes": [{ "message": body }] }));
            err
        }
        400 => ApiError::bad_request(body),
        _ => generic_server_response(code, body, "pods/log", name),
    }
}

/// apimachinery's `NewGenericServerResponse` for a backend's status code.
fn generic_server_response(code: StatusCode, body: &str, resource: &str, name: &str) -> ApiError {
    let fixed = |reason: &'static str, message: &str| (reason, message.to_owned());
    let (reason, message) = match code.as_u16() {
        409 => fixed("Conflict", "the server reported a conflict"),
        404 => fixed(
            "NotFound",
            "the server could not find the requested resource",
        ),
        400 => fixed(
            "BadRequest",
            "the server rejected our request for an unknown reason",
        ),
        401 => fixed(
            "Unauthorized",
            "the server has asked for the client to provide credentials",
        ),
        403 => fixed("Forbidden", body),
        406 => fixed("NotAcceptable", body),
        415 => fixed("UnsupportedMediaType", body),
        405 => fixed(
            "MethodNotAllowed",
            "the server does not allow this method on the requested resource",
        ),
        422 => fixed(
            "Invalid",
            "the server rejected our request due to an error in our request",
        ),
        503 => fixed(
            "ServiceUnavailable",
            "the server is currently unable to handle the request",
        ),
        504 => fixed(
            "Timeout",
            "the server was unable to return a response in the time allotted, but may still be processing the request",
        ),
        429 => fixed(
            "TooManyRequests",
            "the server has received too many requests and has asked us to try again later",
        ),
        n if n >= 500 => (
            "InternalError",
            format!("an error on the server ({body:?}) has prevented the request from succeeding"),
        ),
        n => (
            "",
            format!(
                "the server responded with the status code {n} but did not return more information"
            ),
        ),
    };
    let mut err = ApiError::new(code, reason, format!("{message} ( {resource} {name})"));
    let mut details = json!({ "name": name, "kind": resource });
    if !body.is_empty() {
        details["causes"] = json!([{ "reason": "UnexpectedServerResponse", "message": body }]);
    }
    err.details = Some(details);
    err
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upgrades_need_both_connection_and_upgrade_headers() {
        let mut headers = HeaderMap::new();
        headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
        assert!(!wants_upgrade(&headers));
        headers.insert(
            header::CONNECTION,
            HeaderValue::from_static("keep-alive, Upgrade"),
        );
        assert!(wants_upgrade(&headers));
    }

    #[test]
    fn credentials_and_connection_headers_stay_behind() {
        let mut headers = HeaderMap::new();
        for (name, value) in [
            ("authorization", "Bearer x"),
            ("impersonate-user", "bob"),
            ("connection", "Upgrade"),
            ("upgrade", "SPDY/3.1"),
            ("x-stream-protocol-version", "v4.channel.k8s.io"),
            ("host", "127.0.0.1:6443"),
            ("keep-alive", "timeout=5"),
        ] {
            headers.append(
                header::HeaderName::from_static(name),
                HeaderValue::from_static(value),
            );
        }
        let upgrading = outgoing_headers(&headers, true);
        let names: Vec<&str> = upgrading.keys().map(|k| k.as_str()).collect();
        assert_eq!(
            names,
            ["connection", "upgrade", "x-stream-protocol-version"]
        );
        let plain = outgoing_headers(&headers, false);
        let names: Vec<&str> = plain.keys().map(|k| k.as_str()).collect();
        assert_eq!(names, ["x-stream-protocol-version"]);
    }

    #[test]
    fn kubelet_refusals_read_as_kube_apiservers() {
        let err = refusal(
            StatusCode::BAD_REQUEST,
            "container \"a\" in pod \"web\" is waiting to start: ContainerCreating",
            "web",
        );
        assert_eq!((err.code.as_u16(), err.reason), (400, "BadRequest"));
        assert_eq!(
            err.message,
            "container \"a\" in pod \"web\" is waiting to start: ContainerCreating"
        );
        let err = refusal(StatusCode::NOT_FOUND, "no such container", "web");
        assert_eq!(
            err.message,
            "the server could not find the requested resource ( pods/log web)"
        );
        assert_eq!(
            err.status()["details"]["causes"][0]["message"],
            "no such container"
        );
        let err = refusal(StatusCode::INTERNAL_SERVER_ERROR, "boom", "web");
        assert_eq!(err.message, "Internal error occurred: boom");
        let err = refusal(StatusCode::BAD_GATEWAY, "bad", "web");
        assert_eq!(err.reason, "InternalError");
    }
}
