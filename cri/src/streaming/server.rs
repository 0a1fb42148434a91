//! The streaming server's front door: binds (127.0.0.1, a random port by
//! default, as containerd), hands out one-time URLs, and serves each
//! connection: one HTTP request, upgraded to SPDY or WebSocket, routed by
//! its token to an exec, attach or port-forward session.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use k8s_cri::v1::{AttachRequest, ExecRequest, PortForwardRequest};
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::Role as WsRole;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::cache::{CachedRequest, RequestCache};
use super::error::{RequestError, ServeError};
use super::http::{self, RequestHead};
use super::remotecommand::{self, Command};
use super::spdy::{Role, SpdyConnection};
use super::wsstream::{self, ChannelProtocol, WsBytes};
use super::{Stdio, StreamingBackend, portforward};

/// How long a client may take to send its request head.
const HEAD_TIMEOUT: Duration = Duration::from_secs(30);

/// Where and how the streaming server runs; the defaults are kubelet's
/// and containerd's.
#[derive(Debug, Clone)]
pub struct StreamingConfig {
    /// Listening address (default 127.0.0.1:0, a random port).
    pub address: SocketAddr,
    /// The base of the URLs handed out (default `http://<bound address>`).
    pub base_url: Option<String>,
    /// Sessions with no traffic for this long are closed (default 4h).
    pub idle_timeout: Duration,
    /// How long a SPDY client may take to open its streams (default 30s).
    pub stream_creation_timeout: Duration,
    /// How long a URL stays valid (default 1 minute).
    pub request_ttl: Duration,
    /// URLs handed out and not yet used, at most (default 1000).
    pub max_in_flight: usize,
}

impl Default for StreamingConfig {
    fn default() -> Self {
        Self {
            address: SocketAddr::from(([127, 0, 0, 1], 0)),
            base_url: None,
            idle_timeout: Duration::from_secs(4 * 3600),
            stream_creation_timeout: Duration::from_secs(30),
            request_ttl: Duration::from_secs(60),
            max_in_flight: 1000,
        }
    }
}

/// Hands out streaming URLs for CRI requests; cheap to clone.
#[derive(Debug, Clone)]
pub struct StreamingUrls {
    base: Arc<str>,
    cache: Arc<RequestCache>,
}

impl StreamingUrls {
    /// The URL for an Exec request, validated as kubelet validates it.
    pub fn exec_url(&self, req: &ExecRequest) -> Result<String, RequestError> {
        if req.container_id.is_empty() {
            return Err(RequestError::Invalid("missing required container_id"));
        }
        if req.tty && req.stderr {
            return Err(RequestError::Invalid("tty and stderr cannot both be true"));
        }
        if !req.stdin && !req.stdout && !req.stderr {
            return Err(RequestError::Invalid(
                "one of stdin, stdout, or stderr must be set",
            ));
        }
        self.url("exec", CachedRequest::Exec(req.clone()))
    }

    /// The URL for an Attach request.
    pub fn attach_url(&self, req: &AttachRequest) -> Result<String, RequestError> {
        if req.container_id.is_empty() {
            return Err(RequestError::Invalid("missing required container_id"));
        }
        if req.tty && req.stderr {
            return Err(RequestError::Invalid("tty and stderr cannot both be true"));
        }
        if !req.stdin && !req.stdout && !req.stderr {
            return Err(RequestError::Invalid(
                "one of stdin, stdout, and stderr must be set",
            ));
        }
        self.url("attach", CachedRequest::Attach(req.clone()))
    }

    /// The URL for a PortForward request.
    pub fn port_forward_url(&self, req: &PortForwardRequest) -> Result<String, RequestError> {
        if req.pod_sandbox_id.is_empty() {
            return Err(RequestError::Invalid("missing required pod_sandbox_id"));
        }
        self.url("portforward", CachedRequest::PortForward(req.clone()))
    }

    /// The base every URL starts with.
    pub fn base_url(&self) -> &str {
        &self.base
    }

    fn url(&self, kind: &str, request: CachedRequest) -> Result<String, RequestError> {
        let token = self.cache.insert(request)?;
        Ok(format!(
            "{}/{kind}/{token}",
            self.base.trim_end_matches('/')
        ))
    }
}

/// A bound streaming server, not yet serving.
pub struct StreamingServer {
    listener: TcpListener,
    urls: StreamingUrls,
    inner: Arc<Inner>,
}

impl std::fmt::Debug for StreamingServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StreamingServer")
            .field("base_url", &self.urls.base)
            .finish_non_exhaustive()
    }
}

struct Inner {
    backend: Arc<dyn StreamingBackend>,
    cache: Arc<RequestCache>,
    config: StreamingConfig,
}

impl StreamingServer {
    /// Binds the listening socket; URLs handed out from now on are served
    /// once [`serve`](Self::serve) runs.
    pub async fn bind(
        config: StreamingConfig,
        backend: Arc<dyn StreamingBackend>,
    ) -> Result<Self, ServeError> {
        let listener =
            TcpListener::bind(config.address)
                .await
                .map_err(|source| ServeError::Bind {
                    addr: config.address,
                    source,
                })?;
        let bound = listener.local_addr().map_err(|source| ServeError::Bind {
            addr: config.address,
            source,
        })?;
        let base = config
            .base_url
            .clone()
            .unwrap_or_else(|| format!("http://{bound}"));
        let cache = Arc::new(RequestCache::new(config.request_ttl, config.max_in_flight));
        Ok(Self {
            listener,
            urls: StreamingUrls {
                base: base.into(),
                cache: cache.clone(),
            },
            inner: Arc::new(Inner {
                backend,
                cache,
                config,
            }),
        })
    }

    /// The bound address.
    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .unwrap_or(self.inner.config.address)
    }

    /// The URL maker for the CRI service.
    pub fn urls(&self) -> StreamingUrls {
        self.urls.clone()
    }

    /// Serves until `shutdown`, then ends every session and returns.
    pub async fn serve(self, shutdown: CancellationToken) {
        tracing::info!(url = %self.urls.base, "streaming server listening");
        let tracker = TaskTracker::new();
        loop {
            let accepted = tokio::select! {
                accepted = self.listener.accept() => accepted,
                () = shutdown.cancelled() => break,
            };
            match accepted {
                Ok((tcp, peer)) => {
                    let inner = self.inner.clone();
                    let shutdown = shutdown.clone();
                    tracker.spawn(async move {
                        tokio::select! {
                            () = inner.handle(tcp, shutdown.clone()) => {}
                            () = shutdown.cancelled() => {}
                        }
                        tracing::trace!(%peer, "streaming connection done");
                    });
                }
                Err(e) => {
                    tracing::warn!(error = %e, "accepting streaming connection");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
        tracker.close();
        tracker.wait().await;
    }
}

/// What a token may stand for on each path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Route {
    Exec,
    Attach,
    PortForward,
}

fn route(path: &str) -> Option<(Route, &str)> {
    let rest = path.strip_prefix('/')?;
    let (kind, token) = rest.split_once('/')?;
    let route = match kind {
        "exec" => Route::Exec,
        "attach" => Route::Attach,
        "portforward" => Route::PortForward,
        _ => return None,
    };
    (!token.is_empty() && !token.contains('/')).then_some((route, token))
}

impl Inner {
    async fn handle(&self, mut tcp: TcpStream, shutdown: CancellationToken) {
        let _ = tcp.set_nodelay(true);
        let mut buf = BytesMut::with_capacity(4096);
        let head = match tokio::time::timeout(HEAD_TIMEOUT, http::read_request(&mut tcp, &mut buf))
            .await
        {
            Ok(Ok(head)) => head,
            Ok(Err(e)) => {
                tracing::debug!(error = %e, "reading streaming request");
                return;
            }
            Err(_) => return,
        };
        if head.method != "GET" && head.method != "POST" {
            let _ = http::write_response(&mut tcp, 405, &[], "Method Not Allowed\n").await;
            return;
        }
        // A token is consumed by any request that names it, as in kubelet.
        let request = route(&head.path).and_then(|(route, token)| {
            match (route, self.cache.consume(token)?) {
                (Route::Exec, r @ CachedRequest::Exec(_))
                | (Route::Attach, r @ CachedRequest::Attach(_))
                | (Route::PortForward, r @ CachedRequest::PortForward(_)) => Some(r),
                _ => None,
            }
        });
        match request {
            None => {
                let _ = http::write_response(&mut tcp, 404, &[], "404 page not found\n").await;
            }
            Some(CachedRequest::Exec(req)) => {
                let stdio = Stdio {
                    stdin: req.stdin,
                    stdout: req.stdout,
                    stderr: req.stderr,
                    tty: req.tty,
                };
                let command = Command::Exec {
                    container_id: req.container_id,
                    cmd: req.cmd,
                };
                self.remote_command(tcp, buf, head, command, stdio).await;
            }
            Some(CachedRequest::Attach(req)) => {
                let stdio = Stdio {
                    stdin: req.stdin,
                    stdout: req.stdout,
                    stderr: req.stderr,
                    tty: req.tty,
                };
                let command = Command::Attach {
                    container_id: req.container_id,
                };
                self.remote_command(tcp, buf, head, command, stdio).await;
            }
            Some(CachedRequest::PortForward(req)) => {
                self.port_forward(tcp, buf, head, req, shutdown).await;
            }
        }
    }

    async fn remote_command(
        &self,
        mut tcp: TcpStream,
        buf: BytesMut,
        head: RequestHead,
        command: Command,
        stdio: Stdio,
    ) {
        tracing::debug!(
            ?command,
            ?stdio,
            websocket = head.is_websocket(),
            "streaming session"
        );
        if head.is_websocket() {
            let offered = head.header_list("sec-websocket-protocol");
            let Some(protocol) = wsstream::negotiate(&offered, wsstream::REMOTE_COMMAND_PROTOCOLS)
            else {
                refuse_ws_protocols(&mut tcp, &offered).await;
                return;
            };
            let Some(ws) = accept_websocket(tcp, buf, &head, protocol.name).await else {
                return;
            };
            let mut channels = wsstream::start(ws, protocol, &remotecommand::WS_READABLE);
            let streams = remotecommand::ws_streams(&mut channels, stdio).await;
            let format = remotecommand::ws_status_format(&protocol);
            let gone = channels.closed.clone();
            remotecommand::run(&*self.backend, &command, stdio, streams, format, gone).await;
            channels.finish().await;
            return;
        }
        let Some(protocol) = spdy_handshake(&mut tcp, &head, remotecommand::SPDY_PROTOCOLS).await
        else {
            return;
        };
        let Some(mut conn) = self.upgrade_spdy(tcp, buf, &head, protocol).await else {
            return;
        };
        let timeout = self.config.stream_creation_timeout;
        let Some(streams) = remotecommand::spdy_streams(&mut conn, protocol, stdio, timeout).await
        else {
            conn.shutdown().await;
            return;
        };
        conn.refuse_new_streams();
        let format = remotecommand::spdy_status_format(protocol);
        remotecommand::run(
            &*self.backend,
            &command,
            stdio,
            streams,
            format,
            conn.closed(),
        )
        .await;
        remotecommand::finish_spdy(conn).await;
    }

    async fn port_forward(
        &self,
        mut tcp: TcpStream,
        buf: BytesMut,
        head: RequestHead,
        req: PortForwardRequest,
        shutdown: CancellationToken,
    ) {
        let sandbox = req.pod_sandbox_id.clone();
        let creation = self.config.stream_creation_timeout;
        if head.is_websocket() {
            let offered = head.header_list("sec-websocket-protocol");
            let choice = negotiate_port_forward(&offered);
            match choice {
                Some(PortForwardProtocol::Tunnel) => {
                    let Some(ws) =
                        accept_websocket(tcp, buf, &head, wsstream::SPDY_TUNNEL_PROTOCOL).await
                    else {
                        return;
                    };
                    let io = WsBytes::new(ws);
                    match SpdyConnection::start(
                        io,
                        BytesMut::new(),
                        Role::Server,
                        self.config.idle_timeout,
                    ) {
                        Ok(conn) => {
                            portforward::serve_spdy(
                                self.backend.clone(),
                                sandbox,
                                conn,
                                creation,
                                shutdown,
                            )
                            .await;
                        }
                        Err(e) => tracing::warn!(error = %e, "starting tunnelled SPDY session"),
                    }
                }
                Some(PortForwardProtocol::Channels(protocol)) => {
                    let ports = match ws_ports(&req, &head) {
                        Ok(ports) => ports,
                        Err(msg) => {
                            let _ = http::write_response(&mut tcp, 400, &[], &msg).await;
                            return;
                        }
                    };
                    let Some(ws) = accept_websocket(tcp, buf, &head, protocol.name).await else {
                        return;
                    };
                    let readable: Vec<bool> = ports.iter().flat_map(|_| [true, false]).collect();
                    let channels = wsstream::start(ws, protocol, &readable);
                    portforward::serve_ws(self.backend.clone(), sandbox, ports, channels).await;
                }
                None => refuse_ws_protocols(&mut tcp, &offered).await,
            }
            return;
        }
        let Some(protocol) = spdy_handshake(&mut tcp, &head, portforward::SPDY_PROTOCOLS).await
        else {
            return;
        };
        if let Some(conn) = self.upgrade_spdy(tcp, buf, &head, protocol).await {
            portforward::serve_spdy(self.backend.clone(), sandbox, conn, creation, shutdown).await;
        }
    }

    /// Answers 101 and starts the SPDY session (apimachinery's
    /// ResponseUpgrader), or 400 without the upgrade headers.
    async fn upgrade_spdy(
        &self,
        mut tcp: TcpStream,
        buf: BytesMut,
        head: &RequestHead,
        protocol: &str,
    ) -> Option<SpdyConnection> {
        if !head.is_spdy_upgrade() {
            let body = "unable to upgrade: missing upgrade headers in request\n";
            let _ = http::write_response(&mut tcp, 400, &[], body).await;
            return None;
        }
        let mut headers = vec![
            ("Connection", "Upgrade".to_owned()),
            ("Upgrade", "SPDY/3.1".to_owned()),
        ];
        if !protocol.is_empty() {
            headers.push(("X-Stream-Protocol-Version", protocol.to_owned()));
        }
        http::write_response(&mut tcp, 101, &headers, "")
            .await
            .ok()?;
        match SpdyConnection::start(tcp, buf, Role::Server, self.config.idle_timeout) {
            Ok(conn) => Some(conn),
            Err(e) => {
                tracing::warn!(error = %e, "starting SPDY session");
                None
            }
        }
    }
}

/// httpstream.Handshake: the first protocol the client lists that the
/// server supports; no list at all means a pre-1.1 client (""). On no
/// match, answers 403 naming what the server accepts.
async fn spdy_handshake(
    tcp: &mut TcpStream,
    head: &RequestHead,
    supported: &[&'static str],
) -> Option<&'static str> {
    let offered = head.header_list("x-stream-protocol-version");
    if offered.is_empty() {
        return Some("");
    }
    if let Some(found) = offered
        .iter()
        .find_map(|o| supported.iter().find(|s| **s == o.as_str()))
    {
        return Some(found);
    }
    let headers: Vec<_> = supported
        .iter()
        .map(|s| ("X-Accepted-Stream-Protocol-Versions", (*s).to_owned()))
        .collect();
    let body = format!(
        "unable to upgrade: unable to negotiate protocol: client supports {offered:?}, server accepts {supported:?}\n"
    );
    let _ = http::write_response(tcp, 403, &headers, &body).await;
    None
}

enum PortForwardProtocol {
    Tunnel,
    Channels(ChannelProtocol),
}

/// The client's first offer this server speaks: SPDY tunnelled through
/// WebSocket, or a channel protocol.
fn negotiate_port_forward(offered: &[String]) -> Option<PortForwardProtocol> {
    if offered.is_empty() {
        return wsstream::negotiate(offered, wsstream::PORT_FORWARD_PROTOCOLS)
            .map(PortForwardProtocol::Channels);
    }
    offered.iter().find_map(|o| {
        if o == wsstream::SPDY_TUNNEL_PROTOCOL {
            return Some(PortForwardProtocol::Tunnel);
        }
        wsstream::negotiate(std::slice::from_ref(o), wsstream::PORT_FORWARD_PROTOCOLS)
            .map(PortForwardProtocol::Channels)
    })
}

/// The ports of a WebSocket port-forward: the CRI request's, else the
/// `port` query parameters (as kubelet's NewV4Options reads them).
fn ws_ports(req: &PortForwardRequest, head: &RequestHead) -> Result<Vec<u16>, String> {
    let mut ports = Vec::new();
    if req.port.is_empty() {
        for value in head.query_values("port") {
            for p in value.split(',') {
                ports.push(
                    p.trim()
                        .parse::<u16>()
                        .ok()
                        .filter(|p| *p > 0)
                        .ok_or_else(|| format!("unable to parse {value:?} as a port\n"))?,
                );
            }
        }
    } else {
        for p in &req.port {
            ports.push(
                u16::try_from(*p)
                    .ok()
                    .filter(|p| *p > 0)
                    .ok_or_else(|| format!("port {p} is not a valid port\n"))?,
            );
        }
    }
    if ports.is_empty() {
        return Err("query parameter \"port\" is required\n".to_owned());
    }
    if ports.len() > 127 {
        return Err("too many ports for one WebSocket port-forward\n".to_owned());
    }
    Ok(ports)
}

async fn refuse_ws_protocols(tcp: &mut TcpStream, offered: &[String]) {
    let body = format!("requested protocol(s) are not supported: {offered:?}\n");
    let _ = http::write_response(tcp, 400, &[], &body).await;
}

/// Completes a WebSocket handshake with `protocol` chosen (none if
/// empty); answers 400 to a request that is not a valid version-13
/// handshake.
async fn accept_websocket(
    mut tcp: TcpStream,
    buf: BytesMut,
    head: &RequestHead,
    protocol: &str,
) -> Option<WebSocketStream<TcpStream>> {
    let key = head.header("sec-websocket-key").filter(|k| !k.is_empty());
    let version_ok = head.header("sec-websocket-version").map(str::trim) == Some("13");
    let Some(key) = key.filter(|_| version_ok) else {
        let headers = [("Sec-WebSocket-Version", "13".to_owned())];
        let _ = http::write_response(&mut tcp, 400, &headers, "Bad Request\n").await;
        return None;
    };
    let mut headers = vec![
        ("Upgrade", "websocket".to_owned()),
        ("Connection", "Upgrade".to_owned()),
        ("Sec-WebSocket-Accept", derive_accept_key(key.as_bytes())),
    ];
    if !protocol.is_empty() {
        headers.push(("Sec-WebSocket-Protocol", protocol.to_owned()));
    }
    http::write_response(&mut tcp, 101, &headers, "")
        .await
        .ok()?;
    Some(WebSocketStream::from_partially_read(tcp, buf.to_vec(), WsRole::Server, None).await)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_route_by_kind_and_token() {
        assert_eq!(route("/exec/abc"), Some((Route::Exec, "abc")));
        assert_eq!(
            route("/portforward/x-_1"),
            Some((Route::PortForward, "x-_1"))
        );
        assert_eq!(route("/exec/"), None);
        assert_eq!(route("/exec/a/b"), None);
        assert_eq!(route("/logs/abc"), None);
    }

    #[test]
    fn port_forward_offers_are_taken_in_the_clients_order() {
        let offered = |l: &[&str]| l.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert!(matches!(
            negotiate_port_forward(&offered(&["SPDY/3.1+portforward.k8s.io"])),
            Some(PortForwardProtocol::Tunnel)
        ));
        assert!(matches!(
            negotiate_port_forward(&offered(&["v4.channel.k8s.io", "SPDY/3.1+portforward.k8s.io"])),
            Some(PortForwardProtocol::Channels(p)) if p.name == "v4.channel.k8s.io"
        ));
        assert!(negotiate_port_forward(&offered(&["v5.channel.k8s.io"])).is_none());
    }
}
