//! Round trips through the real server, on 127.0.0.1, with a backend that
//! runs host processes: this crate's client over both transports, raw
//! HTTP for the refusals, and the real kubectl 1.32 (when installed)
//! through a fake apiserver that proxies to the server.

mod backend;
mod exec;
mod kubectl;
mod portforward;
mod protocol;

use std::sync::Arc;
use std::time::Duration;

use k8s_cri::v1::{AttachRequest, ExecRequest, PortForwardRequest};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use super::{StreamingConfig, StreamingServer, StreamingUrls};
use backend::HostBackend;

/// A running server and what tests need of it.
struct Fixture {
    urls: StreamingUrls,
    backend: Arc<HostBackend>,
    stop: CancellationToken,
}

impl Drop for Fixture {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

async fn serve(config: StreamingConfig) -> Fixture {
    let backend = Arc::new(HostBackend::default());
    let server = StreamingServer::bind(config, backend.clone())
        .await
        .expect("bind");
    let urls = server.urls();
    let stop = CancellationToken::new();
    tokio::spawn(server.serve(stop.clone()));
    Fixture {
        urls,
        backend,
        stop,
    }
}

async fn fixture() -> Fixture {
    serve(StreamingConfig::default()).await
}

fn exec_request(cmd: &[&str], stdin: bool, tty: bool) -> ExecRequest {
    ExecRequest {
        container_id: "c1".into(),
        cmd: cmd.iter().map(|s| s.to_string()).collect(),
        tty,
        stdin,
        stdout: true,
        stderr: !tty,
    }
}

fn attach_request(stdin: bool) -> AttachRequest {
    AttachRequest {
        container_id: "c1".into(),
        stdin,
        tty: false,
        stdout: true,
        stderr: true,
    }
}

fn port_forward_request(ports: &[u16]) -> PortForwardRequest {
    PortForwardRequest {
        pod_sandbox_id: "sandbox1".into(),
        port: ports.iter().map(|p| i32::from(*p)).collect(),
    }
}

/// An echo server on 127.0.0.1 that echoes until the client half-closes,
/// then closes; returns its port.
async fn echo_server() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind echo");
    let port = listener.local_addr().expect("addr").port();
    tokio::spawn(async move {
        while let Ok((mut conn, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = vec![0u8; 16 * 1024];
                loop {
                    match conn.read(&mut buf).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => {
                            if conn.write_all(&buf[..n]).await.is_err() {
                                return;
                            }
                        }
                    }
                }
                let _ = conn.shutdown().await;
            });
        }
    });
    port
}

/// Bounds every test's network waits.
const TEST_TIMEOUT: Duration = Duration::from_secs(30);

async fn within<T>(what: &str, fut: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(TEST_TIMEOUT, fut)
        .await
        .unwrap_or_else(|_| panic!("{what} timed out"))
}
