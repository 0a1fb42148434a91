//! The server's answers at the HTTP level: refusals as kubelet words
//! them, one-time and expiring tokens, and the older WebSocket protocols.

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use bytes::BytesMut;
use futures::StreamExt;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

use super::{exec_request, fixture, serve, within};
use crate::streaming::StreamingConfig;
use crate::streaming::http::{self, ResponseHead};

/// Sends a raw request for `url`'s path with `headers`; returns the
/// response head and body.
async fn raw(method: &str, url: &str, headers: &[&str]) -> (ResponseHead, String) {
    let rest = url.strip_prefix("http://").expect("http url");
    let (authority, path) = rest.split_at(rest.find('/').expect("path"));
    let mut tcp = TcpStream::connect(authority).await.expect("connect");
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: {authority}\r\n");
    for h in headers {
        req.push_str(h);
        req.push_str("\r\n");
    }
    req.push_str("\r\n");
    tcp.write_all(req.as_bytes()).await.expect("write");
    let mut buf = BytesMut::new();
    let head = within("response", http::read_response(&mut tcp, &mut buf))
        .await
        .expect("response");
    let body = http::read_body(&mut tcp, buf, &head, 4096).await;
    (head, body)
}

const SPDY: &[&str] = &[
    "Connection: Upgrade",
    "Upgrade: SPDY/3.1",
    "X-Stream-Protocol-Version: v4.channel.k8s.io",
];

#[tokio::test]
async fn a_token_works_once() {
    let f = fixture().await;
    let url = f
        .urls
        .exec_url(&exec_request(&["true"], false, false))
        .expect("url");
    // The first request consumes the token even though it cannot upgrade.
    let (head, body) = raw("POST", &url, &[]).await;
    assert_eq!(head.status, 400);
    assert_eq!(
        body,
        "unable to upgrade: missing upgrade headers in request"
    );
    let (head, body) = raw("POST", &url, SPDY).await;
    assert_eq!(head.status, 404);
    assert_eq!(body, "404 page not found");
}

#[tokio::test]
async fn tokens_expire() {
    let f = serve(StreamingConfig {
        request_ttl: Duration::from_millis(50),
        ..StreamingConfig::default()
    })
    .await;
    let url = f
        .urls
        .exec_url(&exec_request(&["true"], false, false))
        .expect("url");
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(raw("POST", &url, SPDY).await.0.status, 404);
}

#[tokio::test]
async fn a_token_only_opens_its_own_kind_and_strangers_get_404_or_405() {
    let f = fixture().await;
    let url = f
        .urls
        .exec_url(&exec_request(&["true"], false, false))
        .expect("url");
    let as_attach = url.replacen("/exec/", "/attach/", 1);
    assert_eq!(raw("POST", &as_attach, SPDY).await.0.status, 404);
    // ...and the attempt used it up.
    assert_eq!(raw("POST", &url, SPDY).await.0.status, 404);
    let base = f.urls.base_url().to_owned();
    assert_eq!(
        raw("GET", &format!("{base}/logs/x"), &[]).await.0.status,
        404
    );
    assert_eq!(
        raw("PUT", &format!("{base}/exec/x"), &[]).await.0.status,
        405
    );
}

#[tokio::test]
async fn unknown_spdy_protocols_are_refused_with_the_accepted_list() {
    let f = fixture().await;
    let url = f
        .urls
        .exec_url(&exec_request(&["true"], false, false))
        .expect("url");
    let (head, body) = raw(
        "POST",
        &url,
        &[
            "Connection: Upgrade",
            "Upgrade: SPDY/3.1",
            "X-Stream-Protocol-Version: v9.channel.k8s.io",
        ],
    )
    .await;
    assert_eq!(head.status, 403);
    let accepted: Vec<_> = head
        .headers
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case("x-accepted-stream-protocol-versions"))
        .map(|(_, v)| v.as_str())
        .collect();
    assert_eq!(
        accepted,
        [
            "v5.channel.k8s.io",
            "v4.channel.k8s.io",
            "v3.channel.k8s.io",
            "v2.channel.k8s.io",
            "channel.k8s.io"
        ]
    );
    assert!(
        body.starts_with("unable to upgrade: unable to negotiate protocol"),
        "{body}"
    );
}

/// Every message of a WebSocket exec session with `protocol`, until the
/// server closes.
async fn ws_session(url: &str, protocol: &str) -> Vec<Message> {
    let mut request = url
        .replacen("http://", "ws://", 1)
        .into_client_request()
        .expect("request");
    request
        .headers_mut()
        .insert("Sec-WebSocket-Protocol", protocol.parse().expect("header"));
    let (mut ws, response) = within("connect", tokio_tungstenite::connect_async(request))
        .await
        .expect("handshake");
    assert_eq!(response.headers()["sec-websocket-protocol"], protocol);
    let mut messages = Vec::new();
    while let Some(message) = within("message", ws.next()).await {
        match message.expect("message") {
            Message::Close(_) => break,
            m => messages.push(m),
        }
    }
    messages
}

#[tokio::test]
async fn base64_channels_encode_each_message_after_a_digit() {
    let f = fixture().await;
    let url = f
        .urls
        .exec_url(&exec_request(
            &["sh", "-c", "echo hi; exit 2"],
            false,
            false,
        ))
        .expect("url");
    let messages = ws_session(&url, "base64.channel.k8s.io").await;
    let texts: Vec<String> = messages
        .iter()
        .map(|m| match m {
            Message::Text(t) => t.to_string(),
            other => panic!("expected text, got {other:?}"),
        })
        .collect();
    // First the empty "connected" message on stdout, then the output, then
    // (pre-v4) the failure as plain text on the error channel.
    assert_eq!(texts[0], "1");
    assert_eq!(texts[1], format!("1{}", STANDARD.encode("hi\n")));
    let error = STANDARD.decode(&texts[2][1..]).expect("base64");
    assert_eq!(&texts[2][..1], "3");
    assert_eq!(
        String::from_utf8(error).expect("utf-8"),
        "command terminated with non-zero exit code: command 'sh -c echo hi; exit 2' exited with 2"
    );
}

#[tokio::test]
async fn v4_binary_channels_end_with_a_json_status() {
    let f = fixture().await;
    let url = f
        .urls
        .exec_url(&exec_request(&["echo", "hi"], false, false))
        .expect("url");
    let messages = ws_session(&url, "v4.channel.k8s.io").await;
    let binary: Vec<Vec<u8>> = messages
        .into_iter()
        .map(|m| match m {
            Message::Binary(b) => b.to_vec(),
            other => panic!("expected binary, got {other:?}"),
        })
        .collect();
    assert_eq!(binary[0], vec![1]);
    assert_eq!(binary[1], b"\x01hi\n");
    assert_eq!(
        binary[2],
        br#"{"metadata":{},"status":"Success"}"#
            .iter()
            .fold(vec![3], |mut v, b| {
                v.push(*b);
                v
            })
    );
}

#[tokio::test]
async fn websocket_heartbeats_are_answered_during_a_session() {
    use futures::SinkExt;
    let f = fixture().await;
    let url = f
        .urls
        .exec_url(&exec_request(&["sleep", "1"], false, false))
        .expect("url");
    let mut request = url
        .replacen("http://", "ws://", 1)
        .into_client_request()
        .expect("request");
    request.headers_mut().insert(
        "Sec-WebSocket-Protocol",
        "v5.channel.k8s.io".parse().expect("header"),
    );
    let (mut ws, _) = within("connect", tokio_tungstenite::connect_async(request))
        .await
        .expect("handshake");
    // client-go pings every 5 s and gives up without pongs.
    ws.send(Message::Ping("heartbeat".into()))
        .await
        .expect("ping");
    loop {
        match within("pong", ws.next()).await {
            Some(Ok(Message::Pong(data))) => {
                assert_eq!(&data[..], b"heartbeat");
                break;
            }
            Some(Ok(Message::Binary(_))) => continue,
            other => panic!("expected a pong, got {other:?}"),
        }
    }
}

#[tokio::test]
async fn shutting_the_server_down_ends_live_sessions() {
    use crate::streaming::client::{self, SessionIo, Transport};
    for transport in [Transport::WebSocket, Transport::Spdy] {
        let f = fixture().await;
        let url = f
            .urls
            .exec_url(&exec_request(&["sleep", "60"], false, false))
            .expect("url");
        let session = tokio::spawn(async move {
            let io = SessionIo {
                stdout: Some(Box::new(tokio::io::sink())),
                stderr: Some(Box::new(tokio::io::sink())),
                ..SessionIo::default()
            };
            client::exec(&url, io, transport).await
        });
        // Let the session start; ending earlier would only fail sooner.
        tokio::time::sleep(Duration::from_millis(200)).await;
        f.stop.cancel();
        let result = within("session end", session).await.expect("task");
        // No status was sent: the client reports the session as broken.
        assert!(result.is_err(), "{transport:?}: {result:?}");
    }
}
