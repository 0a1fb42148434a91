//! What fails in the streaming server, its backend and its client.

use std::io;
use std::net::SocketAddr;

/// A backend could not do what a streaming request asked (start an exec,
/// attach, reach a port). The server reports it to the client the way
/// kubelet does: a Status on the error stream, or a message on a
/// port-forward error stream.
#[derive(Debug, thiserror::Error)]
pub enum StreamError {
    /// No container with that id.
    #[error("container {0:?} not found")]
    ContainerNotFound(String),
    /// No pod sandbox with that id.
    #[error("pod sandbox {0:?} not found")]
    SandboxNotFound(String),
    /// The container exists but is not running.
    #[error("container {0:?} is not running")]
    NotRunning(String),
    /// An OS operation failed.
    #[error("{op}: {source}")]
    Io {
        /// What was being done.
        op: String,
        /// The OS error.
        source: io::Error,
    },
    /// Anything else the runtime reports.
    #[error("{0}")]
    Runtime(String),
}

/// A CRI Exec, Attach or PortForward request could not get a URL.
#[derive(Debug, thiserror::Error)]
pub enum RequestError {
    /// The request is invalid (kubelet's wording in the message).
    #[error("{0}")]
    Invalid(&'static str),
    /// Too many URLs handed out and not yet used.
    #[error("maximum number of in-flight streaming requests ({0}) exceeded")]
    TooManyInFlight(usize),
    /// The system's random number generator failed.
    #[error("generating a streaming token: the system random number generator failed")]
    NoRandomness,
}

impl From<RequestError> for tonic::Status {
    fn from(e: RequestError) -> Self {
        match e {
            RequestError::Invalid(_) => tonic::Status::invalid_argument(e.to_string()),
            RequestError::TooManyInFlight(_) => tonic::Status::resource_exhausted(e.to_string()),
            RequestError::NoRandomness => tonic::Status::internal(e.to_string()),
        }
    }
}

/// The streaming server could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// Binding the listening socket failed.
    #[error("bind streaming server on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The OS error.
        source: io::Error,
    },
}

/// A streaming client session failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The URL is not an http URL this client can use.
    #[error("invalid streaming URL {url:?}: {reason}")]
    InvalidUrl {
        /// The URL.
        url: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// Connecting or talking to the server failed.
    #[error("streaming connection to {url}: {source}")]
    Io {
        /// The URL.
        url: String,
        /// The error.
        source: io::Error,
    },
    /// The server refused to upgrade the connection.
    #[error("unable to upgrade connection to {url}: {status} {body}")]
    Upgrade {
        /// The URL.
        url: String,
        /// The HTTP status code.
        status: u16,
        /// The response body, as the server wrote it.
        body: String,
    },
    /// The WebSocket handshake or session failed.
    #[error("websocket connection to {url}: {source}")]
    WebSocket {
        /// The URL.
        url: String,
        /// tungstenite's error.
        source: Box<tokio_tungstenite::tungstenite::Error>,
    },
    /// The server broke the protocol.
    #[error("streaming protocol error from {url}: {reason}")]
    Protocol {
        /// The URL.
        url: String,
        /// What happened.
        reason: String,
    },
    /// The server reported a failure on the error stream (other than the
    /// command's non-zero exit).
    #[error("{0}")]
    Remote(String),
}

impl ClientError {
    /// Whether the server could not upgrade to the transport tried, so
    /// another transport may work (as kubectl falls back from WebSocket).
    pub fn is_upgrade_failure(&self) -> bool {
        match self {
            ClientError::Upgrade { .. } => true,
            ClientError::WebSocket { source, .. } => matches!(
                **source,
                tokio_tungstenite::tungstenite::Error::Http(_)
                    | tokio_tungstenite::tungstenite::Error::Protocol(_)
            ),
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_errors_map_to_grpc_codes() {
        let s = tonic::Status::from(RequestError::Invalid("tty and stderr cannot both be true"));
        assert_eq!(s.code(), tonic::Code::InvalidArgument);
        assert_eq!(s.message(), "tty and stderr cannot both be true");
        let s = tonic::Status::from(RequestError::TooManyInFlight(1000));
        assert_eq!(s.code(), tonic::Code::ResourceExhausted);
    }
}
