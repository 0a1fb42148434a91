//! Proxying one request to a streaming URL (`http://127.0.0.1:<port>/exec/<token>`)
//! as apimachinery's `UpgradeAwareHandler` does for kubelet: the request
//! head goes to the streaming server with the URL's path (and the client's
//! query), its answer comes back; a `101 Switching Protocols` then joins
//! the two connections byte for byte until either side closes.

use bytes::{Bytes, BytesMut};
use hyper::body::Incoming;
use hyper::header::{HeaderName, HeaderValue};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::{Body, full, text};

/// Response heads larger than this are refused.
const MAX_HEAD: usize = 64 * 1024;
/// Error bodies (the streaming server's refusals) larger than this are cut.
const MAX_BODY: usize = 64 * 1024;

/// Where a streaming URL points.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Target {
    authority: String,
    path: String,
}

fn target(url: &str) -> Option<Target> {
    let rest = url.strip_prefix("http://")?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    (!authority.is_empty()).then(|| Target {
        authority: authority.to_owned(),
        path: path.to_owned(),
    })
}

/// The request head sent to the streaming server.
fn request_head(request: &Request<Incoming>, target: &Target) -> Vec<u8> {
    let mut path = target.path.clone();
    if let Some(query) = request.uri().query().filter(|q| !q.is_empty()) {
        path.push(if path.contains('?') { '&' } else { '?' });
        path.push_str(query);
    }
    let mut head = format!(
        "{} {path} HTTP/1.1\r\nHost: {}\r\n",
        request.method(),
        target.authority
    )
    .into_bytes();
    for (name, value) in request.headers() {
        if name == hyper::header::HOST {
            continue;
        }
        head.extend_from_slice(name.as_str().as_bytes());
        head.extend_from_slice(b": ");
        head.extend_from_slice(value.as_bytes());
        head.extend_from_slice(b"\r\n");
    }
    head.extend_from_slice(b"\r\n");
    head
}

/// A response head and what was read past it.
struct Answer {
    status: u16,
    headers: Vec<(String, Vec<u8>)>,
    rest: BytesMut,
}

async fn read_answer(backend: &mut TcpStream) -> Result<Answer, String> {
    let mut buf = BytesMut::with_capacity(4096);
    loop {
        let mut headers = [httparse::EMPTY_HEADER; 64];
        let mut response = httparse::Response::new(&mut headers);
        match response.parse(&buf) {
            Ok(httparse::Status::Complete(length)) => {
                let status = response.code.unwrap_or(502);
                let headers = response
                    .headers
                    .iter()
                    .map(|h| (h.name.to_owned(), h.value.to_vec()))
                    .collect();
                let rest = buf.split_off(length);
                return Ok(Answer {
                    status,
                    headers,
                    rest,
                });
            }
            Ok(httparse::Status::Partial) if buf.len() < MAX_HEAD => {}
            Ok(httparse::Status::Partial) => return Err("response head too large".into()),
            Err(err) => return Err(format!("invalid response: {err}")),
        }
        let n = backend
            .read_buf(&mut buf)
            .await
            .map_err(|e| format!("reading the response: {e}"))?;
        if n == 0 {
            return Err("the streaming server closed the connection".into());
        }
    }
}

/// Proxies `request` to the streaming `url`.
pub async fn upgrade(mut request: Request<Incoming>, url: &str) -> Response<Body> {
    let Some(target) = target(url) else {
        return text(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("unusable streaming URL {url:?}"),
        );
    };
    let mut backend = match TcpStream::connect(&target.authority).await {
        Ok(backend) => backend,
        Err(err) => {
            return text(
                StatusCode::BAD_GATEWAY,
                format!("error dialing backend: {err}"),
            );
        }
    };
    let _ = backend.set_nodelay(true);
    if let Err(err) = backend.write_all(&request_head(&request, &target)).await {
        return text(
            StatusCode::BAD_GATEWAY,
            format!("error proxying to the streaming server: {err}"),
        );
    }
    let answer = match read_answer(&mut backend).await {
        Ok(answer) => answer,
        Err(err) => {
            return text(
                StatusCode::BAD_GATEWAY,
                format!("error proxying to the streaming server: {err}"),
            );
        }
    };
    let status = StatusCode::from_u16(answer.status).unwrap_or(StatusCode::BAD_GATEWAY);
    if status != StatusCode::SWITCHING_PROTOCOLS {
        return relay_refusal(backend, status, answer).await;
    }
    let upgrading = hyper::upgrade::on(&mut request);
    let early = answer.rest.freeze();
    tokio::spawn(async move {
        let upgraded = match upgrading.await {
            Ok(upgraded) => upgraded,
            Err(err) => {
                tracing::debug!(%err, "kubelet API: the client's upgrade failed");
                return;
            }
        };
        let mut client = TokioIo::new(upgraded);
        if !early.is_empty() && client.write_all(&early).await.is_err() {
            return;
        }
        if let Err(err) = tokio::io::copy_bidirectional(&mut client, &mut backend).await {
            tracing::debug!(%err, "kubelet API: streaming session ended");
        }
    });
    let mut response = Response::new(full(Bytes::new()));
    *response.status_mut() = status;
    copy_headers(&answer.headers, &mut response, false);
    response
}

/// Relays a non-upgrade answer (a refused negotiation, 404 for a used
/// token) with its body.
async fn relay_refusal(
    mut backend: TcpStream,
    status: StatusCode,
    answer: Answer,
) -> Response<Body> {
    let length = answer
        .headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| std::str::from_utf8(v).ok()?.trim().parse::<usize>().ok());
    let mut body = answer.rest;
    let wanted = length.unwrap_or(MAX_BODY).min(MAX_BODY);
    while body.len() < wanted {
        match backend.read_buf(&mut body).await {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
    }
    body.truncate(wanted);
    let mut response = Response::new(full(body.freeze()));
    *response.status_mut() = status;
    copy_headers(&answer.headers, &mut response, true);
    response
}

/// Copies the streaming server's headers, without those that describe a
/// body hyper writes itself.
fn copy_headers(headers: &[(String, Vec<u8>)], response: &mut Response<Body>, has_body: bool) {
    for (name, value) in headers {
        let lower = name.to_ascii_lowercase();
        if has_body
            && matches!(
                lower.as_str(),
                "content-length" | "transfer-encoding" | "connection"
            )
        {
            continue;
        }
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_bytes(value),
        ) {
            response.headers_mut().append(name, value);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streaming_urls_split_into_authority_and_path() {
        assert_eq!(
            target("http://127.0.0.1:4000/exec/abc"),
            Some(Target {
                authority: "127.0.0.1:4000".into(),
                path: "/exec/abc".into()
            })
        );
        assert_eq!(target("https://x/y"), None);
        assert_eq!(target("http:///y"), None);
    }
}
