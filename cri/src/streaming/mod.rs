//! The CRI streaming server: CRI's Exec, Attach and PortForward RPCs answer
//! with a URL on this server, and clients (crictl; kubelet and
//! kube-apiserver proxying `kubectl exec/attach/port-forward/cp`) connect
//! to it and upgrade the HTTP connection. It speaks what kubelet's
//! streaming library (`k8s.io/kubelet/pkg/cri/streaming`, with
//! apimachinery's httpstream, spdy and wsstream) speaks, so unmodified
//! kubectl and crictl work:
//!
//! - SPDY/3.1 upgrades with `X-Stream-Protocol-Version` negotiation:
//!   remote command protocols `v5.channel.k8s.io` down to `channel.k8s.io`
//!   (v1), and `portforward.k8s.io`;
//! - WebSocket with the channel protocols `v5.channel.k8s.io`,
//!   `v4.channel.k8s.io`, `channel.k8s.io`, `base64.channel.k8s.io` (and
//!   `v4.base64.channel.k8s.io`), including v5's stdin close signal;
//! - WebSocket port-forward (`v4.channel.k8s.io` style: two channels per
//!   port, each opened with the port in little-endian) and SPDY tunnelled
//!   through WebSocket (`SPDY/3.1+portforward.k8s.io`), which kubectl 1.31+
//!   sends and kube-apiserver would otherwise translate.
//!
//! URLs are one-time tokens ([`StreamingUrls`]), valid for a minute, as
//! kubelet's request cache hands out. What runs behind a URL is the
//! runtime's business, reached through [`StreamingBackend`].
//!
//! # Layout
//!
//! - [`server`]: binding, the HTTP front door, routing tokens to sessions.
//! - `cache`: the one-time token cache.
//! - `remotecommand`: exec and attach sessions: streams, Status on the
//!   error stream, resize events.
//! - `portforward`: port-forward sessions over SPDY and WebSocket.
//! - `spdy`: a small SPDY/3.1 implementation (frames, header compression
//!   with the SPDY dictionary, sessions).
//! - `wsstream`: Kubernetes' channel framing over WebSocket, and WebSocket
//!   as a byte pipe for tunnelled SPDY.
//! - `http`: reading and writing HTTP/1.1 heads around the upgrade.
//! - [`client`]: the client side, for `skiff crictl exec/attach/port-forward`.
//! - [`error`]: what fails.

use futures::future::BoxFuture;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

mod cache;
pub mod client;
pub mod error;
mod http;
mod portforward;
mod remotecommand;
pub mod server;
pub(crate) mod spdy;
mod wsstream;

#[cfg(test)]
mod tests;

pub use error::{ClientError, RequestError, ServeError, StreamError};
pub use server::{StreamingConfig, StreamingServer, StreamingUrls};

/// A process's input, as the backend hands it over.
pub type ProcessInput = Box<dyn AsyncWrite + Send + Unpin>;
/// A process's output, as the backend hands it over.
pub type ProcessOutput = Box<dyn AsyncRead + Send + Unpin>;
/// Resizes a process's terminal.
pub type ResizeTerminal =
    Box<dyn Fn(TerminalSize) -> BoxFuture<'static, Result<(), StreamError>> + Send + Sync>;
/// Resolves when a process exits, with its exit code (128 + signal for a
/// process killed by a signal, as shells report it).
pub type ExitFuture = BoxFuture<'static, Result<i32, StreamError>>;

/// Which standard streams a session carries.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stdio {
    /// The client sends input.
    pub stdin: bool,
    /// The client wants standard output.
    pub stdout: bool,
    /// The client wants standard error (never with `tty`).
    pub stderr: bool,
    /// The process runs on a terminal; its stderr is merged into stdout.
    pub tty: bool,
}

/// A terminal's size, as kubectl sends it on the resize stream
/// (`{"Width":80,"Height":24}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct TerminalSize {
    /// Columns.
    #[serde(rename = "Width")]
    pub width: u16,
    /// Rows.
    #[serde(rename = "Height")]
    pub height: u16,
}

/// A started (or attached) process's standard streams. With a terminal,
/// `stdout` carries both outputs and `stderr` is `None`.
pub struct ProcessIo {
    /// Where the client's input goes. The server shuts it down and drops
    /// it when the client's input ends (v5 close signal, SPDY FIN) or the
    /// session ends; for attach the runtime decides whether that closes
    /// the container's stdin (CRI's `stdin_once`).
    pub stdin: Option<ProcessInput>,
    /// The process's standard output (or its terminal).
    pub stdout: Option<ProcessOutput>,
    /// The process's standard error.
    pub stderr: Option<ProcessOutput>,
    /// Resizes the terminal; `None` without one.
    pub resize: Option<ResizeTerminal>,
    /// The process's exit (for attach: the container's). The session ends
    /// when it resolves and the outputs have drained (up to 2 seconds more,
    /// as a background child may hold them open).
    pub exit: ExitFuture,
}

impl std::fmt::Debug for ProcessIo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProcessIo")
            .field("stdin", &self.stdin.is_some())
            .field("stdout", &self.stdout.is_some())
            .field("stderr", &self.stderr.is_some())
            .field("resize", &self.resize.is_some())
            .finish_non_exhaustive()
    }
}

/// What the streaming server needs from the runtime. The server knows
/// nothing of containers: it calls these when a client connects to a URL
/// and copies bytes.
pub trait StreamingBackend: Send + Sync + 'static {
    /// Starts `cmd` in the container and returns its standard streams,
    /// the ones `stdio` asks for.
    fn exec<'a>(
        &'a self,
        container_id: &'a str,
        cmd: Vec<String>,
        stdio: Stdio,
    ) -> BoxFuture<'a, Result<ProcessIo, StreamError>>;

    /// Attaches to the container's main process; its `exit` resolves when
    /// the container exits.
    fn attach<'a>(
        &'a self,
        container_id: &'a str,
        stdio: Stdio,
    ) -> BoxFuture<'a, Result<ProcessIo, StreamError>>;

    /// A TCP connection to `port` on 127.0.0.1 inside the pod's network
    /// namespace.
    fn port_forward<'a>(
        &'a self,
        sandbox_id: &'a str,
        port: u16,
    ) -> BoxFuture<'a, Result<TcpStream, StreamError>>;
}
