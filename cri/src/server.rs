//! The CRI socket: [`CriService`]'s RuntimeService, ImageService and
//! PullProgress served with tonic on a unix socket, for crictl and any
//! kubelet. Bind first ([`CriSocket::bind`]) when the caller needs to know
//! the socket is ready; [`serve`] does both steps. While serving, the
//! process trims its memory after bursts of calls (`crate::idle`).

use std::fs;
use std::future::Future;
use std::io;
use std::os::unix::fs::{DirBuilderExt, FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use k8s_cri::v1::image_service_server::ImageServiceServer;
use k8s_cri::v1::runtime_service_server::RuntimeServiceServer;
use tokio::net::UnixListener;
use tokio_stream::wrappers::UnixListenerStream;
use tokio_util::sync::CancellationToken;
use tower::util::MapRequestLayer;

use crate::CriService;
use crate::error::ServeError;
use crate::idle::IdleTrim;
use crate::proto::pull_progress_server::PullProgressServer;

/// Largest gRPC message either way, as kubelet's CRI client allows (16 MiB):
/// ListImages and ListContainers on a busy node exceed tonic's 4 MiB default.
pub const MAX_MESSAGE_SIZE: usize = 16 * 1024 * 1024;

/// How long calls in flight may finish after shutdown is asked for.
pub const SHUTDOWN_GRACE: std::time::Duration = std::time::Duration::from_secs(5);

/// A bound CRI socket, not yet serving. Dropping it removes the socket file.
#[derive(Debug)]
pub struct CriSocket {
    listener: Option<UnixListener>,
    path: PathBuf,
    /// (device, inode) of the socket we created, so we never remove a
    /// socket another process has put there since.
    identity: (u64, u64),
}

impl CriSocket {
    /// Creates the socket's directory (0755) if needed, removes a stale
    /// socket left by a dead process (refusing if one still answers), binds,
    /// and restricts the socket to its owner and group (0660). Call it
    /// within a tokio runtime.
    pub fn bind(path: &Path) -> Result<Self, ServeError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            fs::DirBuilder::new()
                .recursive(true)
                .mode(0o755)
                .create(dir)
                .map_err(|source| ServeError::CreateDir {
                    path: dir.to_owned(),
                    source,
                })?;
        }
        remove_stale(path)?;
        let socket_err = |op| {
            move |source| ServeError::Socket {
                op,
                path: path.to_owned(),
                source,
            }
        };
        let listener = UnixListener::bind(path).map_err(socket_err("bind"))?;
        fs::set_permissions(path, fs::Permissions::from_mode(0o660))
            .map_err(socket_err("chmod"))?;
        let meta = fs::symlink_metadata(path).map_err(socket_err("stat"))?;
        tracing::info!(socket = %path.display(), "CRI socket bound");
        Ok(Self {
            listener: Some(listener),
            path: path.to_owned(),
            identity: (meta.dev(), meta.ino()),
        })
    }

    /// The socket's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Serves until `shutdown` completes, then finishes the calls in flight
    /// (for [`SHUTDOWN_GRACE`] at most: a client such as a kubelet keeps its
    /// connection open) and removes the socket.
    pub async fn serve(
        mut self,
        service: CriService,
        shutdown: impl Future<Output = ()>,
    ) -> Result<(), ServeError> {
        let Some(listener) = self.listener.take() else {
            return Ok(());
        };
        let runtime = RuntimeServiceServer::new(service.clone())
            .max_decoding_message_size(MAX_MESSAGE_SIZE)
            .max_encoding_message_size(MAX_MESSAGE_SIZE);
        let images = ImageServiceServer::new(service.clone())
            .max_decoding_message_size(MAX_MESSAGE_SIZE)
            .max_encoding_message_size(MAX_MESSAGE_SIZE);
        let progress = PullProgressServer::new(service);
        tracing::info!(socket = %self.path.display(), "serving CRI");
        let idle = IdleTrim::default();
        let trimming = CancellationToken::new();
        tokio::spawn(idle.clone().run(trimming.clone()));
        let _stop_trimming = trimming.drop_guard();
        let stopping = CancellationToken::new();
        let signaled = stopping.clone();
        let shutdown = async move {
            shutdown.await;
            signaled.cancel();
        };
        let serving = tonic::transport::Server::builder()
            .layer(MapRequestLayer::new(move |request| {
                idle.touch();
                request
            }))
            .add_service(runtime)
            .add_service(images)
            .add_service(progress)
            .serve_with_incoming_shutdown(UnixListenerStream::new(listener), shutdown);
        let grace_over = async {
            stopping.cancelled().await;
            tokio::time::sleep(SHUTDOWN_GRACE).await;
        };
        let result = tokio::select! {
            result = serving => result.map_err(|source| ServeError::Transport {
                path: self.path.clone(),
                source,
            }),
            () = grace_over => {
                tracing::warn!(
                    socket = %self.path.display(),
                    "clients still connected {SHUTDOWN_GRACE:?} after shutdown; closing"
                );
                Ok(())
            }
        };
        tracing::info!(socket = %self.path.display(), "CRI server stopped");
        result
    }
}

impl Drop for CriSocket {
    fn drop(&mut self) {
        let ours = fs::symlink_metadata(&self.path)
            .is_ok_and(|meta| (meta.dev(), meta.ino()) == self.identity);
        if ours && let Err(err) = fs::remove_file(&self.path) {
            tracing::warn!(socket = %self.path.display(), %err, "cannot remove CRI socket");
        }
    }
}

/// Binds `socket` and serves `service` on it until `shutdown` completes;
/// the socket is removed afterwards.
pub async fn serve(
    socket: &Path,
    service: CriService,
    shutdown: impl Future<Output = ()>,
) -> Result<(), ServeError> {
    CriSocket::bind(socket)?.serve(service, shutdown).await
}

/// Removes a socket file nobody listens on; refuses a live socket or a
/// path that is not a socket at all.
fn remove_stale(path: &Path) -> Result<(), ServeError> {
    let meta = match fs::symlink_metadata(path) {
        Ok(meta) => meta,
        Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(source) => {
            return Err(ServeError::Socket {
                op: "stat",
                path: path.to_owned(),
                source,
            });
        }
    };
    if !meta.file_type().is_socket() {
        return Err(ServeError::NotASocket {
            path: path.to_owned(),
        });
    }
    match std::os::unix::net::UnixStream::connect(path) {
        Ok(_) => Err(ServeError::InUse {
            path: path.to_owned(),
        }),
        Err(err) if err.kind() == io::ErrorKind::ConnectionRefused => {
            tracing::info!(socket = %path.display(), "removing stale CRI socket");
            fs::remove_file(path).map_err(|source| ServeError::Socket {
                op: "remove stale socket",
                path: path.to_owned(),
                source,
            })
        }
        Err(source) => Err(ServeError::Socket {
            op: "probe existing socket",
            path: path.to_owned(),
            source,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn binding_creates_the_directory_and_a_0660_socket() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("run/skiff/cri.sock");
        let socket = CriSocket::bind(&path).unwrap();
        let meta = fs::metadata(&path).unwrap();
        assert!(meta.file_type().is_socket());
        assert_eq!(meta.permissions().mode() & 0o777, 0o660);
        let dir_mode = fs::metadata(path.parent().unwrap())
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(dir_mode & 0o777, 0o755);
        drop(socket);
        assert!(!path.exists(), "the socket is removed with its owner");
    }

    #[tokio::test]
    async fn a_stale_socket_is_replaced_but_a_live_one_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cri.sock");
        // A socket file whose listener is gone: stale.
        drop(std::os::unix::net::UnixListener::bind(&path).unwrap());
        assert!(path.exists());
        let live = CriSocket::bind(&path).unwrap();

        let err = CriSocket::bind(&path).unwrap_err();
        assert!(matches!(err, ServeError::InUse { .. }), "{err}");
        assert!(path.exists(), "the live socket is left alone");
        drop(live);
    }

    #[tokio::test]
    async fn a_regular_file_is_never_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cri.sock");
        fs::write(&path, "precious").unwrap();
        let err = CriSocket::bind(&path).unwrap_err();
        assert!(matches!(err, ServeError::NotASocket { .. }), "{err}");
        assert_eq!(fs::read_to_string(&path).unwrap(), "precious");
    }

    #[tokio::test]
    async fn a_socket_replaced_by_someone_else_is_not_removed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cri.sock");
        let socket = CriSocket::bind(&path).unwrap();
        fs::remove_file(&path).unwrap();
        let other = std::os::unix::net::UnixListener::bind(&path).unwrap();
        drop(socket);
        assert!(path.exists());
        drop(other);
    }
}
