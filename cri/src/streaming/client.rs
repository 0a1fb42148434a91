//! The client side of streaming sessions, for `skiff crictl exec`,
//! `attach` and `port-forward`: connect to a URL the CRI service returned,
//! upgrade to WebSocket (`v5.channel.k8s.io`, as kubectl 1.30+) or SPDY
//! (`v4.channel.k8s.io`, as crictl's default), and copy streams.
//!
//! A URL works once, so there is no automatic fallback between
//! transports: when [`ClientError::is_upgrade_failure`] says the server
//! refused a WebSocket, ask the CRI service for a new URL and try
//! [`Transport::Spdy`].

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use serde::Deserialize;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_util::sync::CancellationToken;

use super::TerminalSize;
use super::error::ClientError;
use super::http;
use super::spdy::{Headers, Role, SpdyConnection, SpdyStream};
use super::wsstream::{self, ChannelProtocol, WsBytes};

/// How long to wait for the server to accept each SPDY stream.
const STREAM_TIMEOUT: Duration = Duration::from_secs(30);
/// Client sessions have no idle limit of their own (the server has one).
const NO_IDLE_LIMIT: Duration = Duration::from_secs(365 * 24 * 3600);

/// How a client session reaches the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// WebSocket: `v5.channel.k8s.io` (or v4) for exec and attach; SPDY
    /// tunnelled in WebSocket for port-forward, as kubectl 1.31+ does.
    WebSocket,
    /// A SPDY/3.1 upgrade, as crictl and kubectl before 1.30 do.
    Spdy,
}

/// The local ends of an exec or attach session.
#[derive(Default)]
pub struct SessionIo {
    /// Sent to the process's stdin; its end closes the process's stdin
    /// (v5 WebSocket and SPDY; older WebSocket protocols cannot say so).
    pub stdin: Option<Box<dyn AsyncRead + Send + Unpin>>,
    /// Receives the process's stdout (its terminal with `tty`).
    pub stdout: Option<Box<dyn AsyncWrite + Send + Unpin>>,
    /// Receives the process's stderr (never with `tty`).
    pub stderr: Option<Box<dyn AsyncWrite + Send + Unpin>>,
    /// The session has a terminal: resize events are sent.
    pub tty: bool,
    /// Terminal sizes to send, starting with the current one.
    pub resize: Option<mpsc::Receiver<TerminalSize>>,
}

impl std::fmt::Debug for SessionIo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionIo")
            .field("stdin", &self.stdin.is_some())
            .field("stdout", &self.stdout.is_some())
            .field("stderr", &self.stderr.is_some())
            .field("tty", &self.tty)
            .finish_non_exhaustive()
    }
}

/// Runs an exec (or attach) session at `url` to its end; returns the
/// command's exit code (0 when the server reports success).
pub async fn exec(url: &str, io: SessionIo, transport: Transport) -> Result<i32, ClientError> {
    let target = Target::parse(url)?;
    match transport {
        Transport::WebSocket => exec_ws(&target, io).await,
        Transport::Spdy => exec_spdy(&target, io).await,
    }
}

/// Forwards connections accepted on each `(listener, remote port)` to that
/// port in the pod behind `url`, until `shutdown` (Ok) or until the
/// server ends the session (an error, as kubectl's "lost connection").
pub async fn port_forward(
    url: &str,
    ports: Vec<(TcpListener, u16)>,
    transport: Transport,
    shutdown: CancellationToken,
) -> Result<(), ClientError> {
    let target = Target::parse(url)?;
    let mut conn = match transport {
        Transport::Spdy => {
            let (tcp, leftover) = spdy_upgrade(&target, &["portforward.k8s.io"]).await?.0;
            SpdyConnection::start(tcp, leftover, Role::Client, NO_IDLE_LIMIT)
        }
        Transport::WebSocket => {
            let (ws, _) = ws_connect(&target, &[wsstream::SPDY_TUNNEL_PROTOCOL]).await?;
            SpdyConnection::start(
                WsBytes::new(ws),
                BytesMut::new(),
                Role::Client,
                NO_IDLE_LIMIT,
            )
        }
    }
    .map_err(|e| target.protocol(e.to_string()))?;
    conn.refuse_new_streams();
    let conn = std::sync::Arc::new(conn);
    let closed = conn.closed();
    let request_ids = std::sync::Arc::new(AtomicU64::new(0));
    let mut accept_loops = tokio::task::JoinSet::new();
    for (listener, remote) in ports {
        let conn = conn.clone();
        let request_ids = request_ids.clone();
        accept_loops.spawn(async move {
            loop {
                let Ok((local, _)) = listener.accept().await else {
                    return;
                };
                let id = request_ids.fetch_add(1, Ordering::Relaxed);
                let conn = conn.clone();
                tokio::spawn(async move {
                    if let Err(e) = forward_one(&conn, local, remote, id).await {
                        tracing::warn!(port = remote, error = %e, "port forward connection failed");
                    }
                });
            }
        });
    }
    tokio::select! {
        () = shutdown.cancelled() => {
            accept_loops.abort_all();
            conn.go_away().await;
            conn.shutdown().await;
            Ok(())
        }
        () = closed.cancelled() => {
            accept_loops.abort_all();
            Err(target.protocol("lost connection to pod".into()))
        }
    }
}

/// Sends `fd`'s terminal size now and on every SIGWINCH, for
/// [`SessionIo::resize`].
pub fn watch_terminal_size(fd: BorrowedFd<'_>) -> io::Result<mpsc::Receiver<TerminalSize>> {
    let raw = fd.as_raw_fd();
    let mut signals =
        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::window_change())?;
    let (tx, rx) = mpsc::channel(4);
    if let Some(size) = terminal_size(raw) {
        let _ = tx.try_send(size);
    }
    tokio::spawn(async move {
        while signals.recv().await.is_some() {
            if let Some(size) = terminal_size(raw)
                && tx.send(size).await.is_err()
            {
                return;
            }
        }
    });
    Ok(rx)
}

fn terminal_size(fd: std::os::fd::RawFd) -> Option<TerminalSize> {
    nix::ioctl_read_bad!(tiocgwinsz, nix::libc::TIOCGWINSZ, nix::libc::winsize);
    let mut ws = nix::libc::winsize {
        ws_row: 0,
        ws_col: 0,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCGWINSZ writes one winsize into the struct we pass; a
    // bad fd only makes it fail.
    unsafe { tiocgwinsz(fd, &mut ws) }.ok()?;
    Some(TerminalSize {
        width: ws.ws_col,
        height: ws.ws_row,
    })
}

/// An `http://host:port/path` URL, split.
struct Target {
    url: String,
    authority: String,
    path: String,
}

impl Target {
    fn parse(url: &str) -> Result<Self, ClientError> {
        let invalid = |reason| ClientError::InvalidUrl {
            url: url.to_owned(),
            reason,
        };
        let rest = url
            .strip_prefix("http://")
            .ok_or_else(|| invalid("only http:// URLs are supported"))?;
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        if authority.is_empty() {
            return Err(invalid("no host"));
        }
        let authority = if authority
            .rsplit_once(':')
            .is_some_and(|(_, p)| p.parse::<u16>().is_ok())
        {
            authority.to_owned()
        } else {
            format!("{authority}:80")
        };
        Ok(Self {
            url: url.to_owned(),
            authority,
            path: path.to_owned(),
        })
    }

    fn io(&self, source: io::Error) -> ClientError {
        ClientError::Io {
            url: self.url.clone(),
            source,
        }
    }

    fn protocol(&self, reason: String) -> ClientError {
        ClientError::Protocol {
            url: self.url.clone(),
            reason,
        }
    }

    async fn connect(&self) -> Result<TcpStream, ClientError> {
        let tcp = TcpStream::connect(&self.authority)
            .await
            .map_err(|e| self.io(e))?;
        let _ = tcp.set_nodelay(true);
        Ok(tcp)
    }
}

type WsStream = tokio_tungstenite::WebSocketStream<TcpStream>;

/// A WebSocket handshake offering `protocols`; returns the chosen one.
async fn ws_connect(
    target: &Target,
    protocols: &[&str],
) -> Result<(WsStream, String), ClientError> {
    let tcp = target.connect().await?;
    let ws_err = |source| ClientError::WebSocket {
        url: target.url.clone(),
        source: Box::new(source),
    };
    let mut request = format!("ws://{}{}", target.authority, target.path)
        .into_client_request()
        .map_err(ws_err)?;
    let offer = HeaderValue::from_str(&protocols.join(", "))
        .map_err(|_| target.protocol("bad protocol".into()))?;
    request
        .headers_mut()
        .insert("Sec-WebSocket-Protocol", offer);
    let (ws, response) = tokio_tungstenite::client_async(request, tcp)
        .await
        .map_err(ws_err)?;
    let chosen = response
        .headers()
        .get("sec-websocket-protocol")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    Ok((ws, chosen))
}

/// A SPDY upgrade offering `protocols`; returns the socket, bytes read
/// past the response, and the chosen protocol.
async fn spdy_upgrade(
    target: &Target,
    protocols: &[&str],
) -> Result<((TcpStream, BytesMut), String), ClientError> {
    let mut tcp = target.connect().await?;
    let mut request = format!(
        "POST {} HTTP/1.1\r\nHost: {}\r\nConnection: Upgrade\r\nUpgrade: SPDY/3.1\r\n",
        target.path, target.authority
    );
    for p in protocols {
        request.push_str(&format!("X-Stream-Protocol-Version: {p}\r\n"));
    }
    request.push_str("Content-Length: 0\r\n\r\n");
    tcp.write_all(request.as_bytes())
        .await
        .map_err(|e| target.io(e))?;
    let mut buf = BytesMut::new();
    let head = http::read_response(&mut tcp, &mut buf)
        .await
        .map_err(|e| target.io(e))?;
    let upgraded = head.status == 101
        && head
            .header("connection")
            .is_some_and(|c| c.to_ascii_lowercase().contains("upgrade"))
        && head
            .header("upgrade")
            .is_some_and(|u| u.to_ascii_lowercase().contains("spdy/3.1"));
    if !upgraded {
        let body = http::read_body(&mut tcp, buf, &head, 4096).await;
        return Err(ClientError::Upgrade {
            url: target.url.clone(),
            status: head.status,
            body,
        });
    }
    let chosen = head
        .header("x-stream-protocol-version")
        .unwrap_or("")
        .to_owned();
    Ok(((tcp, buf), chosen))
}

async fn exec_ws(target: &Target, io: SessionIo) -> Result<i32, ClientError> {
    let (ws, chosen) = ws_connect(target, &["v5.channel.k8s.io", "v4.channel.k8s.io"]).await?;
    let protocol: ChannelProtocol = wsstream::negotiate(
        std::slice::from_ref(&chosen),
        wsstream::REMOTE_COMMAND_PROTOCOLS,
    )
    .filter(|p| p.name.starts_with("v5.") || p.name.starts_with("v4."))
    .ok_or_else(|| target.protocol(format!("server chose unsupported protocol {chosen:?}")))?;
    let mut channels = wsstream::start(ws, protocol, &[false, true, true, true, false]);
    let writer = channels.writer.clone();
    let mut tasks = tokio::task::JoinSet::new();
    if let Some(mut stdin) = io.stdin {
        let writer = writer.clone();
        tasks.spawn(async move {
            let mut buf = vec![0u8; 32 * 1024];
            loop {
                match stdin.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        if writer
                            .write(0, Bytes::copy_from_slice(&buf[..n]))
                            .await
                            .is_err()
                        {
                            return;
                        }
                    }
                }
            }
            if protocol.close_signal {
                let _ = writer.close_channel(0).await;
            }
        });
    }
    if let (true, Some(mut sizes)) = (io.tty, io.resize) {
        let writer = writer.clone();
        tasks.spawn(async move {
            while let Some(size) = sizes.recv().await {
                let json = serde_json::to_vec(&size).unwrap_or_default();
                if writer.write(4, Bytes::from(json)).await.is_err() {
                    return;
                }
            }
        });
    }
    let stdout = channels.inputs[1].take();
    let stderr = channels.inputs[2].take();
    let error = channels.inputs[3].take();
    let (_, _, status) = tokio::join!(
        copy_channel(stdout, io.stdout),
        copy_channel(stderr, io.stderr),
        collect(error),
    );
    tasks.abort_all();
    channels.finish().await;
    decode_status(&status, true)
}

async fn copy_channel(
    rx: Option<mpsc::Receiver<Bytes>>,
    out: Option<Box<dyn AsyncWrite + Send + Unpin>>,
) {
    let Some(mut rx) = rx else { return };
    let mut out = out;
    while let Some(chunk) = rx.recv().await {
        if let Some(w) = &mut out
            && (w.write_all(&chunk).await.is_err() || w.flush().await.is_err())
        {
            out = None;
        }
    }
}

async fn collect(rx: Option<mpsc::Receiver<Bytes>>) -> Vec<u8> {
    let mut all = Vec::new();
    if let Some(mut rx) = rx {
        while let Some(chunk) = rx.recv().await {
            all.extend_from_slice(&chunk);
        }
    }
    all
}

async fn exec_spdy(target: &Target, io: SessionIo) -> Result<i32, ClientError> {
    let offered = [
        "v4.channel.k8s.io",
        "v3.channel.k8s.io",
        "v2.channel.k8s.io",
        "channel.k8s.io",
    ];
    let ((tcp, leftover), chosen) = spdy_upgrade(target, &offered).await?;
    let mut conn = SpdyConnection::start(tcp, leftover, Role::Client, NO_IDLE_LIMIT)
        .map_err(|e| target.protocol(e.to_string()))?;
    conn.refuse_new_streams();
    let json = chosen == "v4.channel.k8s.io";
    let resize_ok = !matches!(chosen.as_str(), "v2.channel.k8s.io" | "channel.k8s.io" | "");
    let open = |kind: &str| {
        let mut h = Headers::new();
        h.add("streamType", kind);
        conn.open(h, STREAM_TIMEOUT)
    };
    let spdy_err = |e: super::spdy::SpdyError| target.io(io::Error::from(e));
    // The order client-go uses: error first, which this side never writes.
    let error = open("error").await.map_err(spdy_err)?;
    let _ = error.send.close().await;
    let stdin = match io.stdin {
        Some(_) => Some(open("stdin").await.map_err(spdy_err)?),
        None => None,
    };
    let stdout = match io.stdout {
        Some(_) => Some(open("stdout").await.map_err(spdy_err)?),
        None => None,
    };
    let stderr = match (&io.stderr, io.tty) {
        (Some(_), false) => Some(open("stderr").await.map_err(spdy_err)?),
        _ => None,
    };
    let resize = match io.tty && resize_ok {
        true => Some(open("resize").await.map_err(spdy_err)?),
        false => None,
    };
    let mut tasks = tokio::task::JoinSet::new();
    if let (Some(mut input), Some(stream)) = (io.stdin, stdin.as_ref()) {
        let send = stream.send.clone();
        tasks.spawn(async move {
            let mut buf = vec![0u8; 32 * 1024];
            loop {
                match input.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        if send.write(Bytes::copy_from_slice(&buf[..n])).await.is_err() {
                            return;
                        }
                    }
                }
            }
            let _ = send.close().await;
        });
    }
    if let (Some(mut sizes), Some(stream)) = (io.resize, resize.as_ref()) {
        let send = stream.send.clone();
        tasks.spawn(async move {
            while let Some(size) = sizes.recv().await {
                let mut json = serde_json::to_vec(&size).unwrap_or_default();
                json.push(b'\n');
                if send.write(Bytes::from(json)).await.is_err() {
                    return;
                }
            }
        });
    }
    let recv = |s: Option<SpdyStream>| s.map(|s| s.recv.into_channel());
    let (_, _, status) = tokio::join!(
        copy_channel(recv(stdout), io.stdout),
        copy_channel(recv(stderr), io.stderr),
        collect(Some(error.recv.into_channel())),
    );
    tasks.abort_all();
    conn.go_away().await;
    conn.shutdown().await;
    decode_status(&status, json)
}

#[derive(Deserialize)]
struct Status {
    #[serde(default)]
    status: String,
    #[serde(default)]
    message: String,
    #[serde(default)]
    reason: String,
    details: Option<Details>,
}

#[derive(Deserialize)]
struct Details {
    #[serde(default)]
    causes: Vec<Cause>,
}

#[derive(Deserialize)]
struct Cause {
    #[serde(default)]
    reason: String,
    #[serde(default)]
    message: String,
}

/// Reads the error stream as client-go's v4 (JSON) or v1 (text) decoder.
fn decode_status(bytes: &[u8], json: bool) -> Result<i32, ClientError> {
    if !json {
        let text = String::from_utf8_lossy(bytes).trim().to_owned();
        return if text.is_empty() {
            Ok(0)
        } else {
            Err(ClientError::Remote(text))
        };
    }
    if bytes.is_empty() {
        return Err(ClientError::Remote(
            "the server closed the session without reporting a status".into(),
        ));
    }
    let status: Status = serde_json::from_slice(bytes).map_err(|e| {
        ClientError::Remote(format!(
            "error stream protocol error: {e} in {:?}",
            String::from_utf8_lossy(bytes)
        ))
    })?;
    match status.status.as_str() {
        "Success" => Ok(0),
        "Failure" if status.reason == "NonZeroExitCode" => status
            .details
            .iter()
            .flat_map(|d| &d.causes)
            .find(|c| c.reason == "ExitCode")
            .and_then(|c| c.message.parse::<u8>().ok())
            .map(i32::from)
            .ok_or_else(|| {
                ClientError::Remote("error stream protocol error: no valid ExitCode cause".into())
            }),
        "Failure" => Err(ClientError::Remote(status.message)),
        _ => Err(ClientError::Remote(
            "error stream protocol error: unknown error".into(),
        )),
    }
}

/// One forwarded connection, as client-go's handleConnection: an error
/// stream (read to its end), a data stream, copies both ways.
async fn forward_one(
    conn: &SpdyConnection,
    local: TcpStream,
    remote_port: u16,
    request_id: u64,
) -> Result<(), ClientError> {
    let headers = |kind: &str| {
        let mut h = Headers::new();
        h.add("streamType", kind);
        h.add("port", remote_port.to_string());
        h.add("requestID", request_id.to_string());
        h
    };
    let closed_err = |e: super::spdy::SpdyError| ClientError::Remote(e.to_string());
    let error = conn
        .open(headers("error"), STREAM_TIMEOUT)
        .await
        .map_err(closed_err)?;
    let _ = error.send.close().await;
    let error_text = tokio::spawn(collect(Some(error.recv.into_channel())));
    let data = conn
        .open(headers("data"), STREAM_TIMEOUT)
        .await
        .map_err(closed_err)?;
    let (mut local_r, mut local_w) = local.into_split();
    let send = data.send.clone();
    let mut from_remote = data.recv.into_channel();
    let upload = tokio::spawn(async move {
        let mut buf = vec![0u8; 32 * 1024];
        loop {
            match local_r.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if send.write(Bytes::copy_from_slice(&buf[..n])).await.is_err() {
                        return;
                    }
                }
            }
        }
        let _ = send.close().await;
    });
    while let Some(chunk) = from_remote.recv().await {
        if local_w.write_all(&chunk).await.is_err() {
            break;
        }
    }
    let _ = local_w.shutdown().await;
    upload.abort();
    let _ = data.send.reset(super::spdy::frame::rst::CANCEL).await;
    let message = error_text.await.unwrap_or_default();
    if message.is_empty() {
        Ok(())
    } else {
        Err(ClientError::Remote(format!(
            "an error occurred forwarding to port {remote_port}: {}",
            String::from_utf8_lossy(&message)
        )))
    }
}
