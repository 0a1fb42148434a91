//! A whole `skiff server` in the test process (no agent): the apiserver on a
//! fresh data directory, port chosen by the kernel, with the components a
//! test asks for, and a kube-rs client as the admin.
#![allow(dead_code)] // each helper is used by some of the area modules

use std::path::PathBuf;
use std::time::Duration;

use skiff_server::run::{Components, ServerConfig, run};
use tokio_util::sync::CancellationToken;

/// A running server; dropping it stops it.
pub struct TestServer {
    /// Its data directory.
    pub dir: tempfile::TempDir,
    /// The admin kubeconfig (for kubectl and kube-rs).
    pub kubeconfig: PathBuf,
    stop: CancellationToken,
}

impl TestServer {
    /// Starts a server running `components` and waits for its kubeconfig.
    pub async fn start(components: Components) -> TestServer {
        let dir = tempfile::tempdir().unwrap();
        let kubeconfig = dir.path().join("kubeconfig.yaml");
        let config = ServerConfig {
            data_dir: dir.path().join("data"),
            bind_address: "127.0.0.1".parse().unwrap(),
            https_port: 0,
            tls_sans: Vec::new(),
            write_kubeconfig: kubeconfig.clone(),
            write_kubeconfig_mode: 0o600,
            service_cidr: "10.43.0.0/16".parse().unwrap(),
            components,
            cluster_cidr: "10.42.0.0/16".parse().unwrap(),
            agent: None,
        };
        let stop = CancellationToken::new();
        let stopped = stop.clone();
        tokio::spawn(async move {
            if let Err(err) = run(config, stopped.cancelled_owned()).await {
                panic!("skiff server failed: {err}");
            }
        });
        for _ in 0..500 {
            if kubeconfig.exists() {
                return TestServer {
                    dir,
                    kubeconfig,
                    stop,
                };
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("the server wrote no kubeconfig in 5 s");
    }

    /// Only the apiserver: no scheduler, no controllers.
    pub async fn apiserver_only() -> TestServer {
        Self::start(Components {
            scheduler: false,
            controller_manager: false,
        })
        .await
    }

    /// A kube-rs client as the admin.
    pub async fn client(&self) -> kube::Client {
        let text = std::fs::read_to_string(&self.kubeconfig).unwrap();
        let kubeconfig = kube::config::Kubeconfig::from_yaml(&text).unwrap();
        let config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default())
            .await
            .unwrap();
        kube::Client::try_from(config).unwrap()
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}
