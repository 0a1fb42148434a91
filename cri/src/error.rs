//! What fails when serving the CRI socket or connecting to one.

use std::io;
use std::path::PathBuf;

use crate::status::full_text;

/// Serving the CRI service on a unix socket failed.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The socket's directory could not be created.
    #[error("create CRI socket directory {}: {source}", path.display())]
    CreateDir {
        /// The directory.
        path: PathBuf,
        /// The OS error.
        source: io::Error,
    },
    /// Another process answers on the socket: never steal it.
    #[error("CRI socket {} is in use by another process", path.display())]
    InUse {
        /// The socket.
        path: PathBuf,
    },
    /// Something that is not a socket sits at the socket's path.
    #[error("{} exists and is not a socket; refusing to replace it", path.display())]
    NotASocket {
        /// The path.
        path: PathBuf,
    },
    /// A filesystem or socket operation on the socket failed.
    #[error("CRI socket {}: {op}: {source}", path.display())]
    Socket {
        /// What was being done.
        op: &'static str,
        /// The socket.
        path: PathBuf,
        /// The OS error.
        source: io::Error,
    },
    /// The gRPC server failed.
    #[error("serving CRI on {}: {}", path.display(), full_text(source))]
    Transport {
        /// The socket.
        path: PathBuf,
        /// tonic's error.
        source: tonic::transport::Error,
    },
}

/// Connecting to a CRI endpoint failed.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// The endpoint is not something crictl would accept.
    #[error("invalid CRI endpoint {endpoint:?}: {reason}")]
    InvalidEndpoint {
        /// The endpoint as given.
        endpoint: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A tcp (or other non-unix) endpoint.
    #[error("CRI endpoint {endpoint:?}: only unix sockets are supported")]
    Unsupported {
        /// The endpoint as given.
        endpoint: String,
    },
    /// Nobody answered on the socket.
    #[error("connect to CRI endpoint {endpoint:?} ({}): {source}", path.display())]
    Unreachable {
        /// The endpoint as given.
        endpoint: String,
        /// The socket it names.
        path: PathBuf,
        /// The OS error.
        source: io::Error,
    },
    /// The socket accepted but gRPC could not be set up.
    #[error("connect to CRI endpoint {endpoint:?}: {}", full_text(source))]
    Transport {
        /// The endpoint as given.
        endpoint: String,
        /// tonic's error.
        source: tonic::transport::Error,
    },
    /// Connecting took longer than the timeout.
    #[error("connect to CRI endpoint {endpoint:?}: timed out after {timeout:?}")]
    Timeout {
        /// The endpoint as given.
        endpoint: String,
        /// The limit.
        timeout: std::time::Duration,
    },
}
