//! Port-forward through this crate's client (SPDY, and SPDY tunnelled in
//! WebSocket) and a raw WebSocket channel client.

use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_util::sync::CancellationToken;

use super::{echo_server, fixture, port_forward_request, within};
use crate::streaming::client::{self, Transport};

/// Sends `payload` through a forwarded local port, half-closes, and
/// returns what came back.
async fn echo_through(local: u16, payload: &[u8]) -> Vec<u8> {
    let mut conn = TcpStream::connect(("127.0.0.1", local))
        .await
        .expect("connect local");
    conn.write_all(payload).await.expect("write");
    conn.shutdown().await.expect("half-close");
    let mut back = Vec::new();
    within("echo", conn.read_to_end(&mut back))
        .await
        .expect("read");
    back
}

#[tokio::test]
async fn connections_are_forwarded_over_spdy_and_the_websocket_tunnel() {
    let f = fixture().await;
    let echo = echo_server().await;
    for transport in [Transport::Spdy, Transport::WebSocket] {
        let url = f
            .urls
            .port_forward_url(&port_forward_request(&[]))
            .expect("url");
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let local = listener.local_addr().expect("addr").port();
        let stop = CancellationToken::new();
        let stopper = stop.clone();
        let session = tokio::spawn(async move {
            client::port_forward(&url, vec![(listener, echo)], transport, stopper).await
        });
        // Several connections, one after another and at once, on one session.
        let big: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
        assert_eq!(echo_through(local, &big).await, big, "{transport:?}");
        let (a, b) = tokio::join!(echo_through(local, b"one"), echo_through(local, b"two"));
        assert_eq!((a.as_slice(), b.as_slice()), (&b"one"[..], &b"two"[..]));
        stop.cancel();
        within("port-forward end", session)
            .await
            .expect("task")
            .expect("clean end");
    }
}

#[tokio::test]
async fn an_unreachable_port_is_reported_on_the_error_stream() {
    let f = fixture().await;
    // A port nobody listens on.
    let closed = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let dead = closed.local_addr().expect("addr").port();
    drop(closed);
    let url = f
        .urls
        .port_forward_url(&port_forward_request(&[]))
        .expect("url");
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let local = listener.local_addr().expect("addr").port();
    let stop = CancellationToken::new();
    let stopper = stop.clone();
    let _session = tokio::spawn(async move {
        client::port_forward(&url, vec![(listener, dead)], Transport::Spdy, stopper).await
    });
    // The forwarded connection just ends; the client logs the error.
    assert!(echo_through(local, b"x").await.is_empty());
    stop.cancel();
}

#[tokio::test]
async fn websocket_channels_carry_each_port_after_its_number() {
    let f = fixture().await;
    let echo = echo_server().await;
    let url = f
        .urls
        .port_forward_url(&port_forward_request(&[echo]))
        .expect("url");
    let ws_url = url.replacen("http://", "ws://", 1);
    let mut request = ws_url.into_client_request().expect("request");
    request.headers_mut().insert(
        "Sec-WebSocket-Protocol",
        "v4.channel.k8s.io".parse().expect("header"),
    );
    let (mut ws, response) = within("connect", tokio_tungstenite::connect_async(request))
        .await
        .expect("handshake");
    assert_eq!(
        response.headers()["sec-websocket-protocol"],
        "v4.channel.k8s.io"
    );
    let port = echo.to_le_bytes();
    // Data channel 0 and error channel 1 each open with the port.
    let mut opened = Vec::new();
    for _ in 0..2 {
        match within("port prefix", ws.next()).await {
            Some(Ok(Message::Binary(data))) => opened.push(data.to_vec()),
            other => panic!("expected a binary message, got {other:?}"),
        }
    }
    opened.sort();
    assert_eq!(
        opened,
        vec![vec![0, port[0], port[1]], vec![1, port[0], port[1]]]
    );
    ws.send(Message::Binary(Bytes::from_static(b"\x00ping")))
        .await
        .expect("send");
    match within("echo", ws.next()).await {
        Some(Ok(Message::Binary(data))) => assert_eq!(&data[..], b"\x00ping"),
        other => panic!("expected the echo, got {other:?}"),
    }
    ws.close(None).await.expect("close");
}
