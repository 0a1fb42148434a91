//! A whole `skiff server` in the test process (no agent): the apiserver on a
//! fresh data directory, port chosen by the kernel, with the components a
//! test asks for, and a kube-rs client as the admin.
#![allow(dead_code)] // each helper is used by some of the area modules

use std::future::Future;
use std::path::PathBuf;
use std::time::{Duration, Instant};

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

    /// The apiserver's URL, from the kubeconfig.
    pub fn url(&self) -> String {
        let text = std::fs::read_to_string(&self.kubeconfig).unwrap();
        let kubeconfig = kube::config::Kubeconfig::from_yaml(&text).unwrap();
        kubeconfig.clusters[0]
            .cluster
            .as_ref()
            .and_then(|c| c.server.clone())
            .unwrap()
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

/// An apiserver with only the controllers a test runs itself, as the
/// admin; dropping it stops them and the server.
pub struct Controllers {
    /// The server.
    pub server: TestServer,
    /// The admin client the controllers use too.
    pub client: kube::Client,
    /// Cancelled on drop: stops the controllers.
    pub stop: CancellationToken,
}

impl Controllers {
    /// Starts the apiserver, then `spawn` starts controllers with the admin
    /// client and the stop token.
    pub async fn start(spawn: impl FnOnce(&kube::Client, &CancellationToken)) -> Controllers {
        let server = TestServer::apiserver_only().await;
        let client = server.client().await;
        let stop = CancellationToken::new();
        spawn(&client, &stop);
        Controllers {
            server,
            client,
            stop,
        }
    }
}

impl Controllers {
    /// Runs kubectl as the admin; its stdout, failing the test if it fails.
    pub async fn kubectl(&self, args: &[&str]) -> String {
        let (ok, stdout, stderr) = self.kubectl_result(args).await;
        assert!(ok, "kubectl {args:?}: {stdout}{stderr}");
        stdout
    }

    /// Runs kubectl as the admin: success, stdout and stderr.
    pub async fn kubectl_result(&self, args: &[&str]) -> (bool, String, String) {
        let out = tokio::process::Command::new("kubectl")
            .arg("--kubeconfig")
            .arg(&self.server.kubeconfig)
            .args(args)
            .output()
            .await
            .expect("kubectl on PATH");
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }
}

impl Drop for Controllers {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// Declares `struct Cluster(Controllers)`, dereferencing to
/// [`Controllers`], for an area module to give its own helpers.
macro_rules! controllers_cluster {
    () => {
        /// The admin client and the server, through [`Controllers`].
        struct Cluster($crate::support::Controllers);

        impl std::ops::Deref for Cluster {
            type Target = $crate::support::Controllers;
            fn deref(&self) -> &Self::Target {
                &self.0
            }
        }
    };
}
pub(crate) use controllers_cluster;

/// Polls `check` every 100 ms until it yields a value; panics after a
/// minute, naming `what` it waited for.
pub async fn eventually<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(Instant::now() < deadline, "gave up waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
