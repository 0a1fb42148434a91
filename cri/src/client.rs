//! Connecting to a CRI endpoint as crictl and kubelet spell it:
//! `unix:///run/skiff/cri.sock`, `unix:/run/skiff/cri.sock` or a bare
//! absolute path. Only unix sockets are supported.

use std::path::{Path, PathBuf};
use std::time::Duration;

use hyper_util::rt::TokioIo;
use k8s_cri::v1::image_service_client::ImageServiceClient;
use k8s_cri::v1::runtime_service_client::RuntimeServiceClient;
use tokio::net::UnixStream;
use tonic::transport::{Channel, Endpoint, Uri};

use crate::error::ConnectError;
use crate::proto::pull_progress_client::PullProgressClient;
use crate::server::MAX_MESSAGE_SIZE;

/// The endpoint crictl uses when nothing else is configured.
pub const DEFAULT_ENDPOINT: &str = "unix:///run/skiff/cri.sock";

/// Typed clients of one CRI endpoint, sharing one connection. Cheap to clone.
#[derive(Debug, Clone)]
pub struct CriClient {
    /// The RuntimeService.
    pub runtime: RuntimeServiceClient<Channel>,
    /// The ImageService.
    pub images: ImageServiceClient<Channel>,
    /// Skiff's pull-progress side channel (absent on other runtimes: its
    /// calls then fail with `Unimplemented`).
    pub progress: PullProgressClient<Channel>,
}

/// The socket path an endpoint names.
pub fn socket_path(endpoint: &str) -> Result<PathBuf, ConnectError> {
    let invalid = |reason: &str| ConnectError::InvalidEndpoint {
        endpoint: endpoint.to_owned(),
        reason: reason.to_owned(),
    };
    let path = if let Some(rest) = endpoint.strip_prefix("unix://") {
        rest
    } else if let Some(rest) = endpoint.strip_prefix("unix:") {
        rest
    } else if let Some((scheme, _)) = endpoint.split_once("://") {
        if scheme.is_empty() {
            return Err(invalid("missing scheme"));
        }
        return Err(ConnectError::Unsupported {
            endpoint: endpoint.to_owned(),
        });
    } else {
        endpoint
    };
    if path.is_empty() {
        return Err(invalid("no socket path"));
    }
    if !path.starts_with('/') {
        return Err(invalid("the socket path must be absolute"));
    }
    Ok(PathBuf::from(path))
}

/// Connects to `endpoint`, giving up after `timeout`.
pub async fn connect(endpoint: &str, timeout: Duration) -> Result<CriClient, ConnectError> {
    let path = socket_path(endpoint)?;
    connect_socket(endpoint, &path, timeout).await
}

async fn connect_socket(
    endpoint: &str,
    path: &Path,
    timeout: Duration,
) -> Result<CriClient, ConnectError> {
    let stream = tokio::time::timeout(timeout, UnixStream::connect(path))
        .await
        .map_err(|_| ConnectError::Timeout {
            endpoint: endpoint.to_owned(),
            timeout,
        })?
        .map_err(|source| ConnectError::Unreachable {
            endpoint: endpoint.to_owned(),
            path: path.to_owned(),
            source,
        })?;
    // The URI is a placeholder: every connection goes to the socket. The
    // first one reuses the stream opened above, so its error is the one
    // reported; reconnections dial again.
    let first = std::sync::Mutex::new(Some(stream));
    let path = path.to_owned();
    let connector = tower::service_fn(move |_: Uri| {
        let reuse = first.lock().unwrap_or_else(|p| p.into_inner()).take();
        let path = path.clone();
        async move {
            let stream = match reuse {
                Some(stream) => stream,
                None => UnixStream::connect(&path).await?,
            };
            Ok::<_, std::io::Error>(TokioIo::new(stream))
        }
    });
    let channel = Endpoint::from_static("http://cri.invalid")
        .connect_timeout(timeout)
        .connect_with_connector(connector)
        .await
        .map_err(|source| ConnectError::Transport {
            endpoint: endpoint.to_owned(),
            source,
        })?;
    Ok(CriClient {
        runtime: RuntimeServiceClient::new(channel.clone())
            .max_decoding_message_size(MAX_MESSAGE_SIZE)
            .max_encoding_message_size(MAX_MESSAGE_SIZE),
        images: ImageServiceClient::new(channel.clone())
            .max_decoding_message_size(MAX_MESSAGE_SIZE)
            .max_encoding_message_size(MAX_MESSAGE_SIZE),
        progress: PullProgressClient::new(channel),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_parse_as_crictl_spells_them() {
        for endpoint in [
            "unix:///run/skiff/cri.sock",
            "unix:/run/skiff/cri.sock",
            "/run/skiff/cri.sock",
        ] {
            assert_eq!(
                socket_path(endpoint).unwrap(),
                Path::new("/run/skiff/cri.sock"),
                "{endpoint}"
            );
        }
    }

    #[test]
    fn tcp_endpoints_are_refused_clearly() {
        for endpoint in ["tcp://127.0.0.1:1234", "npipe:////./pipe/x", "http://x"] {
            let err = socket_path(endpoint).unwrap_err();
            assert!(
                matches!(err, ConnectError::Unsupported { .. }),
                "{endpoint}"
            );
            assert!(err.to_string().contains("only unix sockets are supported"));
        }
    }

    #[test]
    fn relative_or_empty_paths_are_invalid() {
        for endpoint in ["", "unix://", "unix://run/cri.sock", "cri.sock"] {
            assert!(
                matches!(
                    socket_path(endpoint),
                    Err(ConnectError::InvalidEndpoint { .. })
                ),
                "{endpoint}"
            );
        }
    }

    #[tokio::test]
    async fn a_missing_socket_is_unreachable_with_the_os_reason() {
        let dir = tempfile::tempdir().unwrap();
        let endpoint = format!("unix://{}/none.sock", dir.path().display());
        let err = connect(&endpoint, Duration::from_secs(1))
            .await
            .unwrap_err();
        let ConnectError::Unreachable { source, .. } = &err else {
            panic!("{err}");
        };
        assert_eq!(source.kind(), std::io::ErrorKind::NotFound);
    }
}
