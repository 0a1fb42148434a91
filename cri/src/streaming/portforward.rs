//! Port-forward sessions (kubelet's portforward server). Over SPDY, each
//! forwarded connection is a pair of streams, `data` and `error`, tied by a
//! `requestID` header; over WebSocket, each port in the request gets two
//! channels for the whole session. SPDY tunnelled through WebSocket is
//! served as plain SPDY.

use std::collections::HashMap;
use std::io;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::StreamingBackend;
use super::spdy::frame::rst;
use super::spdy::{SpdyConnection, SpdyStream, StreamSend};
use super::wsstream::{ChannelWriter, Channels};

/// The one SPDY port-forward protocol.
pub(crate) const SPDY_PROTOCOLS: &[&str] = &["portforward.k8s.io"];
/// After one direction ends, how long the other may finish (as containerd).
const LINGER: Duration = Duration::from_secs(1);

/// Serves forwarded connections until the client hangs up or `shutdown`.
pub(crate) async fn serve_spdy(
    backend: Arc<dyn StreamingBackend>,
    sandbox_id: String,
    mut conn: SpdyConnection,
    creation_timeout: Duration,
    shutdown: CancellationToken,
) {
    let mut pairs: HashMap<String, Pair> = HashMap::new();
    // Forwarding tasks die with the session.
    let mut forwarding = tokio::task::JoinSet::new();
    let mut sweep = tokio::time::interval(Duration::from_secs(1));
    loop {
        let stream = tokio::select! {
            stream = conn.accept() => match stream {
                Some(stream) => stream,
                None => break,
            },
            Some(_) = forwarding.join_next(), if !forwarding.is_empty() => continue,
            _ = sweep.tick() => {
                expire(&mut pairs, creation_timeout).await;
                continue;
            }
            () = shutdown.cancelled() => break,
        };
        let Some((port, kind)) = validate(&stream) else {
            let _ = stream.send.reset(rst::PROTOCOL_ERROR).await;
            continue;
        };
        if stream.send.reply().await.is_err() {
            break;
        }
        let request_id = request_id(&stream, kind);
        let pair = pairs.entry(request_id.clone()).or_insert_with(|| Pair {
            port,
            data: None,
            error: None,
            created: Instant::now(),
        });
        let slot = match kind {
            Kind::Data => &mut pair.data,
            Kind::Error => &mut pair.error,
        };
        if slot.is_some() {
            let what = if kind == Kind::Data { "data" } else { "error" };
            let msg = format!(
                "error processing stream for request {request_id}: {what} stream already assigned"
            );
            if let Some(error) = &pair.error {
                let _ = error.send.write(Bytes::from(msg)).await;
            }
            let _ = stream.send.reset(rst::PROTOCOL_ERROR).await;
            continue;
        }
        *slot = Some(stream);
        if pair.data.is_some() && pair.error.is_some() {
            let Some(Pair {
                port,
                data: Some(data),
                error: Some(error),
                ..
            }) = pairs.remove(&request_id)
            else {
                continue;
            };
            let backend = backend.clone();
            let sandbox_id = sandbox_id.clone();
            forwarding.spawn(async move {
                forward_pair(&*backend, &sandbox_id, port, data, error).await;
            });
        }
    }
    conn.go_away().await;
    conn.shutdown().await;
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Data,
    Error,
}

struct Pair {
    port: u16,
    data: Option<SpdyStream>,
    error: Option<SpdyStream>,
    created: Instant,
}

/// The `port` and `streamType` headers every stream must carry.
fn validate(stream: &SpdyStream) -> Option<(u16, Kind)> {
    let port = stream
        .headers
        .get("port")?
        .parse::<u16>()
        .ok()
        .filter(|p| *p > 0)?;
    let kind = match stream.headers.get("streamtype")? {
        "data" => Kind::Data,
        "error" => Kind::Error,
        _ => return None,
    };
    Some((port, kind))
}

/// The pair a stream belongs to. Clients older than Kubernetes 1.5 send
/// no requestID; kubelet then pairs an error stream with the data stream
/// two ids later, and so does this.
fn request_id(stream: &SpdyStream, kind: Kind) -> String {
    match stream.headers.get("requestid") {
        Some(id) if !id.is_empty() => id.to_owned(),
        _ => match kind {
            Kind::Error => stream.id.to_string(),
            Kind::Data => stream.id.saturating_sub(2).to_string(),
        },
    }
}

async fn expire(pairs: &mut HashMap<String, Pair>, timeout: Duration) {
    let now = Instant::now();
    let stale: Vec<String> = pairs
        .iter()
        .filter(|(_, p)| now.duration_since(p.created) >= timeout)
        .map(|(id, _)| id.clone())
        .collect();
    for id in stale {
        if let Some(pair) = pairs.remove(&id) {
            if let Some(error) = &pair.error {
                let msg = format!("(request={id}) timed out waiting for streams");
                let _ = error.send.write(Bytes::from(msg)).await;
                let _ = error.send.close().await;
            }
            if let Some(data) = &pair.data {
                let _ = data.send.reset(rst::CANCEL).await;
            }
        }
    }
}

/// Forwards one connection, then closes both streams; errors go on the
/// error stream, where kubectl prints them.
async fn forward_pair(
    backend: &dyn StreamingBackend,
    sandbox_id: &str,
    port: u16,
    data: SpdyStream,
    error: SpdyStream,
) {
    let result = match backend.port_forward(sandbox_id, port).await {
        Ok(tcp) => pump_spdy(tcp, data.recv.into_channel(), &data.send).await,
        Err(e) => Err(io::Error::other(e.to_string())),
    };
    if let Err(e) = result {
        let msg = forward_error(port, sandbox_id, &e);
        tracing::info!(sandbox_id, port, error = %e, "port forward failed");
        let _ = error.send.write(Bytes::from(msg)).await;
    }
    let _ = data.send.close().await;
    let _ = error.send.close().await;
}

/// kubelet's wording, with the uid it leaves empty.
fn forward_error(port: u16, sandbox_id: &str, e: &io::Error) -> String {
    format!("error forwarding port {port} to pod {sandbox_id}, uid : {e}")
}

/// A peer that reset or closed is the normal end of a connection, not
/// something to report (kubectl 1.32 drops the whole session on any error
/// message).
fn is_disconnect(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::BrokenPipe
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionAborted
    )
}

/// Copies between the pod's socket and a SPDY data stream, passing
/// half-closes through, until the pod side ends (or the client resets).
async fn pump_spdy(
    tcp: TcpStream,
    mut from_client: mpsc::Receiver<Bytes>,
    to_client: &StreamSend,
) -> io::Result<()> {
    let (mut pod_r, mut pod_w) = tcp.into_split();
    let up = async {
        while let Some(chunk) = from_client.recv().await {
            pod_w.write_all(&chunk).await?;
        }
        pod_w.shutdown().await
    };
    let down = async {
        let mut buf = vec![0u8; 32 * 1024];
        loop {
            let n = pod_r.read(&mut buf).await?;
            if n == 0 {
                return to_client.close().await.map_err(io::Error::from);
            }
            if to_client
                .write(Bytes::copy_from_slice(&buf[..n]))
                .await
                .is_err()
            {
                return Ok(());
            }
        }
    };
    tokio::pin!(up, down);
    let mut up_done = false;
    let result = loop {
        tokio::select! {
            r = &mut up, if !up_done => {
                up_done = true;
                if let Err(e) = r {
                    break Err(e);
                }
                if to_client.is_reset() {
                    break Ok(());
                }
            }
            r = &mut down => break r,
        }
    };
    result.or_else(|e| if is_disconnect(&e) { Ok(()) } else { Err(e) })
}

/// Serves WebSocket port-forward: channel 2n carries port n's data both
/// ways, 2n+1 its errors; both start with the port, little-endian.
pub(crate) async fn serve_ws(
    backend: Arc<dyn StreamingBackend>,
    sandbox_id: String,
    ports: Vec<u16>,
    mut channels: Channels,
) {
    let mut tasks = tokio::task::JoinSet::new();
    for (i, port) in ports.into_iter().enumerate() {
        let Ok(data) = u8::try_from(2 * i) else { break };
        let error = data + 1;
        let writer = channels.writer.clone();
        let _ = writer
            .write(data, Bytes::copy_from_slice(&port.to_le_bytes()))
            .await;
        let _ = writer
            .write(error, Bytes::copy_from_slice(&port.to_le_bytes()))
            .await;
        let input = channels
            .inputs
            .get_mut(usize::from(data))
            .and_then(Option::take);
        let backend = backend.clone();
        let sandbox_id = sandbox_id.clone();
        tasks.spawn(async move {
            let result = match backend.port_forward(&sandbox_id, port).await {
                Ok(tcp) => pump_ws(tcp, input, &writer, data).await,
                Err(e) => Err(io::Error::other(e.to_string())),
            };
            if let Err(e) = result {
                let msg = forward_error(port, &sandbox_id, &e);
                let _ = writer.write(error, Bytes::from(msg)).await;
            }
        });
    }
    let closed = channels.closed.clone();
    tokio::select! {
        _ = async { while tasks.join_next().await.is_some() {} } => {}
        () = closed.cancelled() => tasks.abort_all(),
    }
    channels.finish().await;
}

/// Copies between the pod's socket and a WebSocket data channel; ends
/// when the pod side ends (channels have no half-close), giving the other
/// direction a moment, as containerd does.
async fn pump_ws(
    tcp: TcpStream,
    input: Option<mpsc::Receiver<Bytes>>,
    writer: &ChannelWriter,
    channel: u8,
) -> io::Result<()> {
    let (mut pod_r, mut pod_w) = tcp.into_split();
    let up = async move {
        if let Some(mut input) = input {
            while let Some(chunk) = input.recv().await {
                pod_w.write_all(&chunk).await?;
            }
        }
        pod_w.shutdown().await
    };
    let down = async {
        let mut buf = vec![0u8; 32 * 1024];
        loop {
            let n = pod_r.read(&mut buf).await?;
            if n == 0 {
                return Ok(());
            }
            writer
                .write(channel, Bytes::copy_from_slice(&buf[..n]))
                .await?;
        }
    };
    tokio::pin!(up, down);
    let result = tokio::select! {
        r = &mut up => {
            // The client's side ended: let the pod answer for a moment.
            match tokio::time::timeout(LINGER, &mut down).await {
                Ok(d) => r.and(d),
                Err(_) => r,
            }
        }
        r = &mut down => {
            let _ = tokio::time::timeout(LINGER, &mut up).await;
            r
        }
    };
    result.or_else(|e| if is_disconnect(&e) { Ok(()) } else { Err(e) })
}
