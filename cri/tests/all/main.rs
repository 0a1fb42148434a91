//! Integration tests of the CRI service: a real image store in a temp
//! directory, served on a real unix socket, driven with the gRPC client
//! and with `skiff crictl`; pulls come from real registries (Debian's
//! docker-registry on 127.0.0.1, started by `skiff-tests`).

mod crictl;
mod crictl_runtime;
mod pull;
mod service;

use std::path::{Path, PathBuf};
use std::time::Duration;

use skiff_cri::client::{self, CriClient};
use skiff_cri::server::CriSocket;
use skiff_cri::{CriService, crictl::CrictlArgs};
use skiff_images::registries::RegistriesConfig;
use skiff_images::{ImageStore, StoreConfig};
use tempfile::TempDir;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// A store served on a socket, and a client connected to it.
struct Node {
    dir: TempDir,
    socket: PathBuf,
    store: ImageStore,
    service: CriService,
    client: CriClient,
    stop: oneshot::Sender<()>,
    server: JoinHandle<Result<(), skiff_cri::ServeError>>,
}

impl Node {
    /// A node with no registries configured.
    async fn start() -> Node {
        Self::start_with(None).await
    }

    /// A node whose store reads `registries_yaml`.
    async fn start_with(registries_yaml: Option<&str>) -> Node {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut config = StoreConfig::new(dir.path().join("image-store"));
        if let Some(yaml) = registries_yaml {
            let path = dir.path().join("registries.yaml");
            std::fs::write(&path, yaml).expect("write registries.yaml");
            config.registries = RegistriesConfig::load(&path).expect("load registries.yaml");
        }
        let store = ImageStore::open(config).await.expect("open image store");
        let socket = dir.path().join("run/cri.sock");
        let bound = CriSocket::bind(&socket).expect("bind CRI socket");
        let (stop, stopped) = oneshot::channel::<()>();
        let service = CriService::new(store.clone());
        let server = tokio::spawn(bound.serve(service.clone(), async {
            let _ = stopped.await;
        }));
        let client = client::connect(&endpoint(&socket), Duration::from_secs(5))
            .await
            .expect("connect to the CRI socket");
        Node {
            dir,
            socket,
            store,
            service,
            client,
            stop,
            server,
        }
    }

    fn endpoint(&self) -> String {
        endpoint(&self.socket)
    }

    /// Stops the server, waits for it, and returns the socket path (and
    /// the directory holding it, so the caller can check what is left).
    async fn shutdown(self) -> (PathBuf, TempDir) {
        let Node {
            dir,
            socket,
            client,
            stop,
            server,
            ..
        } = self;
        // Graceful shutdown waits for open connections: close ours first.
        drop(client);
        let _ = stop.send(());
        tokio::time::timeout(Duration::from_secs(10), server)
            .await
            .expect("server stops within 10s")
            .expect("server task")
            .expect("server ends cleanly");
        (socket, dir)
    }

    /// Runs `skiff crictl` against this node; returns (exit code, stdout, stderr).
    async fn crictl(&self, args: &[&str]) -> (i32, String, String) {
        self.crictl_with(args, false).await
    }

    /// Runs `skiff crictl` as if stderr were a terminal (progress bar, colored logs).
    async fn crictl_with(&self, args: &[&str], terminal: bool) -> (i32, String, String) {
        let config = self.dir.path().join("crictl.yaml");
        if !config.exists() {
            std::fs::write(&config, "").expect("write crictl.yaml");
        }
        let endpoint = self.endpoint();
        let mut argv = vec![
            "crictl",
            "-c",
            config.to_str().expect("utf-8 path"),
            "-r",
            &endpoint,
        ];
        argv.extend_from_slice(args);
        let parsed = <CrictlArgs as clap::Parser>::try_parse_from(&argv).expect("crictl arguments");
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let code = skiff_cri::crictl::run_with(parsed, &mut out, &mut err, terminal).await;
        (
            code,
            String::from_utf8(out).expect("utf-8 stdout"),
            String::from_utf8(err).expect("utf-8 stderr"),
        )
    }
}

fn endpoint(socket: &Path) -> String {
    format!("unix://{}", socket.display())
}

/// A registries.yaml that reaches plain-HTTP test registries, without credentials.
fn plain_http_mirrors(hosts: &[String]) -> String {
    let mut yaml = String::from("mirrors:\n");
    for host in hosts {
        yaml.push_str(&format!(
            "  \"{host}\":\n    endpoint:\n      - \"http://{host}\"\n"
        ));
    }
    yaml
}
