//! Kubernetes' channel framing over WebSocket (apimachinery's wsstream):
//! every message starts with its channel number, one byte in the binary
//! protocols (`channel.k8s.io`, `v4.channel.k8s.io`, `v5.channel.k8s.io`)
//! or one ASCII digit followed by base64 in `base64.channel.k8s.io`. In
//! v5, `[255, n]` half-closes channel `n`. Also WebSocket as a plain byte
//! pipe ([`WsBytes`]) for SPDY tunnelled through it.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use bytes::Bytes;
use futures::{Sink, SinkExt, Stream, StreamExt};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::mpsc;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_util::sync::CancellationToken;

/// The v5 signal byte that half-closes the channel named by the next byte.
pub(crate) const CLOSE_SIGNAL: u8 = 255;
/// The WebSocket subprotocol kubectl 1.31+ tunnels port-forward SPDY in.
pub(crate) const SPDY_TUNNEL_PROTOCOL: &str = "SPDY/3.1+portforward.k8s.io";

/// How channel messages are encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Codec {
    /// Binary messages, channel byte first.
    Binary,
    /// Text messages, channel digit first, base64 payload.
    Base64,
}

/// A negotiated channel subprotocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ChannelProtocol {
    /// The name agreed in the handshake ("" when the client asked none).
    pub(crate) name: &'static str,
    pub(crate) codec: Codec,
    /// v5: `[255, n]` closes channel `n`.
    pub(crate) close_signal: bool,
}

impl ChannelProtocol {
    const fn new(name: &'static str, codec: Codec, close_signal: bool) -> Self {
        Self {
            name,
            codec,
            close_signal,
        }
    }
}

/// What kubelet's exec and attach accept over WebSocket.
pub(crate) const REMOTE_COMMAND_PROTOCOLS: &[ChannelProtocol] = &[
    ChannelProtocol::new("v5.channel.k8s.io", Codec::Binary, true),
    ChannelProtocol::new("v4.channel.k8s.io", Codec::Binary, false),
    ChannelProtocol::new("v4.base64.channel.k8s.io", Codec::Base64, false),
    ChannelProtocol::new("channel.k8s.io", Codec::Binary, false),
    ChannelProtocol::new("base64.channel.k8s.io", Codec::Base64, false),
    ChannelProtocol::new("", Codec::Binary, false),
];

/// What kubelet's port-forward accepts over WebSocket.
pub(crate) const PORT_FORWARD_PROTOCOLS: &[ChannelProtocol] = &[
    ChannelProtocol::new("v4.channel.k8s.io", Codec::Binary, false),
    ChannelProtocol::new("v4.base64.channel.k8s.io", Codec::Base64, false),
    ChannelProtocol::new("", Codec::Binary, false),
];

/// Picks the first protocol the client offers that `supported` has, as
/// wsstream's handshake does; no offer means "".
pub(crate) fn negotiate(
    offered: &[String],
    supported: &[ChannelProtocol],
) -> Option<ChannelProtocol> {
    if offered.is_empty() {
        return supported.iter().find(|p| p.name.is_empty()).copied();
    }
    offered
        .iter()
        .find_map(|o| supported.iter().find(|p| !p.name.is_empty() && p.name == o))
        .copied()
}

enum Outgoing {
    Data(u8, Bytes),
    CloseChannel(u8),
    Close,
}

/// Writes to channels; clones share the connection.
#[derive(Clone)]
pub(crate) struct ChannelWriter {
    tx: mpsc::Sender<Outgoing>,
}

impl ChannelWriter {
    /// Sends `data` on `channel` (an empty message is allowed and means
    /// "connected", as kubelet sends first).
    pub(crate) async fn write(&self, channel: u8, data: Bytes) -> io::Result<()> {
        self.tx
            .send(Outgoing::Data(channel, data))
            .await
            .map_err(|_| io::Error::from(io::ErrorKind::BrokenPipe))
    }

    /// Sends v5's half-close signal for `channel`.
    pub(crate) async fn close_channel(&self, channel: u8) -> io::Result<()> {
        self.tx
            .send(Outgoing::CloseChannel(channel))
            .await
            .map_err(|_| io::Error::from(io::ErrorKind::BrokenPipe))
    }

    /// Sends a normal Close frame after everything queued.
    pub(crate) async fn close(&self) {
        let _ = self.tx.send(Outgoing::Close).await;
    }
}

/// A channel connection: one receiver per readable channel.
pub(crate) struct Channels {
    pub(crate) inputs: Vec<Option<mpsc::Receiver<Bytes>>>,
    pub(crate) writer: ChannelWriter,
    /// Cancelled when the peer closed or the connection failed.
    pub(crate) closed: CancellationToken,
    reader: tokio::task::JoinHandle<()>,
    writer_task: tokio::task::JoinHandle<()>,
    /// Stops both tasks, closing the socket, when the channels are dropped.
    _stop: tokio_util::sync::DropGuard,
}

impl Channels {
    /// Closes the connection and waits (briefly) for the peer's Close.
    pub(crate) async fn finish(self) {
        self.writer.close().await;
        drop(self.inputs);
        let _ = tokio::time::timeout(Duration::from_secs(5), self.writer_task).await;
        if tokio::time::timeout(Duration::from_secs(5), self.closed.cancelled())
            .await
            .is_err()
        {
            self.reader.abort();
        }
    }
}

/// Starts the reader and writer tasks on `ws`; `readable[n]` says whether
/// messages on channel `n` are kept (others are dropped, as wsstream
/// ignores writes to its write-only channels).
pub(crate) fn start<S>(
    ws: WebSocketStream<S>,
    protocol: ChannelProtocol,
    readable: &[bool],
) -> Channels
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (sink, stream) = ws.split();
    let (out_tx, out_rx) = mpsc::channel(64);
    let mut senders = Vec::new();
    let mut inputs = Vec::new();
    for &keep in readable {
        if keep {
            let (tx, rx) = mpsc::channel(64);
            senders.push(Some(tx));
            inputs.push(Some(rx));
        } else {
            senders.push(None);
            inputs.push(None);
        }
    }
    let closed = CancellationToken::new();
    let stop = CancellationToken::new();
    let reader = tokio::spawn(read_loop(
        stream,
        protocol,
        senders,
        closed.clone(),
        stop.clone(),
    ));
    let writer_task = tokio::spawn(write_loop(sink, out_rx, protocol.codec, stop.clone()));
    Channels {
        inputs,
        writer: ChannelWriter { tx: out_tx },
        closed,
        reader,
        writer_task,
        _stop: stop.drop_guard(),
    }
}

async fn read_loop<S>(
    mut stream: S,
    protocol: ChannelProtocol,
    mut senders: Vec<Option<mpsc::Sender<Bytes>>>,
    closed: CancellationToken,
    stop: CancellationToken,
) where
    S: Stream<Item = Result<Message, tokio_tungstenite::tungstenite::Error>> + Unpin,
{
    loop {
        let message = tokio::select! {
            message = stream.next() => message,
            () = stop.cancelled() => None,
        };
        let Some(message) = message else { break };
        let (channel, data) = match message {
            Ok(Message::Binary(data)) if protocol.codec == Codec::Binary && !data.is_empty() => {
                if protocol.close_signal && data[0] == CLOSE_SIGNAL {
                    if let Some(&target) = data.get(1)
                        && let Some(slot) = senders.get_mut(usize::from(target))
                    {
                        // Dropping the sender is the half-close: the
                        // channel's reader sees its end.
                        *slot = None;
                    }
                    continue;
                }
                (data[0], data.slice(1..))
            }
            Ok(Message::Text(text)) if protocol.codec == Codec::Base64 && !text.is_empty() => {
                let bytes = text.as_bytes();
                let channel = bytes[0].wrapping_sub(b'0');
                match STANDARD.decode(&bytes[1..]) {
                    Ok(data) => (channel, Bytes::from(data)),
                    Err(e) => {
                        tracing::debug!(error = %e, "invalid base64 on channel {channel}");
                        continue;
                    }
                }
            }
            Ok(Message::Close(_)) | Err(_) => break,
            Ok(_) => continue,
        };
        if let Some(Some(tx)) = senders.get(usize::from(channel)) {
            let _ = tx.send(data).await;
        }
    }
    closed.cancel();
}

async fn write_loop<S>(
    mut sink: S,
    mut rx: mpsc::Receiver<Outgoing>,
    codec: Codec,
    stop: CancellationToken,
) where
    S: Sink<Message, Error = tokio_tungstenite::tungstenite::Error> + Unpin,
{
    loop {
        let item = tokio::select! {
            item = rx.recv() => item,
            () = stop.cancelled() => None,
        };
        let Some(item) = item else { return };
        let message = match item {
            Outgoing::Data(channel, data) => match codec {
                Codec::Binary => {
                    let mut framed = Vec::with_capacity(data.len() + 1);
                    framed.push(channel);
                    framed.extend_from_slice(&data);
                    Message::Binary(framed.into())
                }
                Codec::Base64 => {
                    let text = format!("{}{}", char::from(b'0' + channel), STANDARD.encode(&data));
                    Message::text(text)
                }
            },
            Outgoing::CloseChannel(channel) => Message::Binary(vec![CLOSE_SIGNAL, channel].into()),
            Outgoing::Close => {
                let frame = CloseFrame {
                    code: CloseCode::Normal,
                    reason: "".into(),
                };
                let _ = sink.send(Message::Close(Some(frame))).await;
                return;
            }
        };
        if sink.send(message).await.is_err() {
            return;
        }
    }
}

/// A WebSocket as a byte pipe: each write one binary message, reads
/// concatenating binary messages, as client-go's TunnelingConnection.
pub(crate) struct WsBytes<S> {
    ws: WebSocketStream<S>,
    pending: Bytes,
}

impl<S> WsBytes<S> {
    pub(crate) fn new(ws: WebSocketStream<S>) -> Self {
        Self {
            ws,
            pending: Bytes::new(),
        }
    }
}

fn ws_io_error(e: tokio_tungstenite::tungstenite::Error) -> io::Error {
    match e {
        tokio_tungstenite::tungstenite::Error::Io(e) => e,
        other => io::Error::other(other),
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for WsBytes<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        use tokio_tungstenite::tungstenite::Error;
        loop {
            if !self.pending.is_empty() {
                let n = self.pending.len().min(buf.remaining());
                let chunk = self.pending.split_to(n);
                buf.put_slice(&chunk);
                return Poll::Ready(Ok(()));
            }
            match ready!(self.ws.poll_next_unpin(cx)) {
                Some(Ok(Message::Binary(data))) => self.pending = data,
                Some(Ok(Message::Text(_))) => {
                    return Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        "text message on a tunnelling WebSocket",
                    )));
                }
                Some(Ok(Message::Close(_))) | None => return Poll::Ready(Ok(())),
                Some(Err(Error::ConnectionClosed | Error::AlreadyClosed)) => {
                    return Poll::Ready(Ok(()));
                }
                Some(Err(e)) => return Poll::Ready(Err(ws_io_error(e))),
                Some(Ok(_)) => {}
            }
        }
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncWrite for WsBytes<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        ready!(self.ws.poll_ready_unpin(cx)).map_err(ws_io_error)?;
        self.ws
            .start_send_unpin(Message::Binary(Bytes::copy_from_slice(buf)))
            .map_err(ws_io_error)?;
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.ws.poll_flush_unpin(cx).map_err(ws_io_error)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match ready!(self.ws.poll_close_unpin(cx)) {
            Ok(()) | Err(tokio_tungstenite::tungstenite::Error::ConnectionClosed) => {
                Poll::Ready(Ok(()))
            }
            Err(e) => Poll::Ready(Err(ws_io_error(e))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn offered(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn negotiation_follows_the_clients_order() {
        let p = negotiate(
            &offered(&["v4.channel.k8s.io", "v5.channel.k8s.io"]),
            REMOTE_COMMAND_PROTOCOLS,
        );
        assert_eq!(p.map(|p| p.name), Some("v4.channel.k8s.io"));
        let p = negotiate(
            &offered(&["base64.channel.k8s.io"]),
            REMOTE_COMMAND_PROTOCOLS,
        );
        assert_eq!(p.map(|p| p.codec), Some(Codec::Base64));
        let p = negotiate(&[], REMOTE_COMMAND_PROTOCOLS);
        assert_eq!(p.map(|p| p.name), Some(""));
        assert!(negotiate(&offered(&["v6.channel.k8s.io"]), REMOTE_COMMAND_PROTOCOLS).is_none());
        assert!(negotiate(&offered(&["v5.channel.k8s.io"]), PORT_FORWARD_PROTOCOLS).is_none());
    }
}
