//! A cluster for the agent's tests: the apiserver of a whole `skiff server`
//! in this process (no scheduler, no controllers, no agent of its own) on
//! a temp dir, and agents started with `skiff_agent::run::run` on a pod
//! network leased from the test harness (its own bridge and /24), with
//! certificates from the server's CAs.
#![allow(dead_code)] // each helper is used by some of the area modules

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Node;
use kube::api::{Api, Patch, PatchParams};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use skiff_agent::api_client::ApiEndpoint;
use skiff_agent::config::AgentConfig;
use skiff_agent::run::RunError;
use skiff_server::run::{Components, ServerConfig};
use skiff_server::tls::{CertifiedKey, ClusterTls};
use skiff_tests::NetworkLease;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// The apiserver's kubelet client, as the apiserver will present it.
pub const APISERVER_CLIENT: &str = "kube-apiserver-kubelet-client";

/// A running apiserver; dropping it stops it.
pub struct Cluster {
    /// Everything lives here.
    pub dir: tempfile::TempDir,
    /// The admin kubeconfig (for kubectl).
    pub kubeconfig: PathBuf,
    /// The apiserver's URL.
    pub url: String,
    /// The cluster's certificates.
    pub tls: ClusterTls,
    stop: CancellationToken,
}

impl Cluster {
    /// Starts the apiserver alone and waits for its kubeconfig.
    pub async fn start() -> Cluster {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(
                tracing_subscriber::EnvFilter::try_from_default_env()
                    .unwrap_or_else(|_| "info".into()),
            )
            .with_test_writer()
            .try_init();
        let dir = tempfile::tempdir().unwrap();
        let kubeconfig = dir.path().join("kubeconfig.yaml");
        let data_dir = dir.path().join("server");
        let config = ServerConfig {
            data_dir: data_dir.clone(),
            bind_address: "127.0.0.1".parse().unwrap(),
            https_port: 0,
            tls_sans: Vec::new(),
            write_kubeconfig: kubeconfig.clone(),
            write_kubeconfig_mode: 0o600,
            service_cidr: "10.43.0.0/16".parse().unwrap(),
            components: Components {
                scheduler: false,
                controller_manager: false,
            },
            cluster_cidr: "10.42.0.0/16".parse().unwrap(),
            agent: None,
        };
        let stop = CancellationToken::new();
        let stopped = stop.clone();
        tokio::spawn(async move {
            if let Err(err) = skiff_server::run::run(config, stopped.cancelled_owned()).await {
                panic!("skiff server failed: {err}");
            }
        });
        let deadline = Instant::now() + Duration::from_secs(10);
        while !kubeconfig.exists() {
            assert!(Instant::now() < deadline, "the server wrote no kubeconfig");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let text = std::fs::read_to_string(&kubeconfig).unwrap();
        let parsed = kube::config::Kubeconfig::from_yaml(&text).unwrap();
        let url = parsed.clusters[0]
            .cluster
            .as_ref()
            .and_then(|c| c.server.clone())
            .unwrap();
        let tls = ClusterTls::load_or_create(&data_dir.join("server").join("tls"), &[]).unwrap();
        Cluster {
            dir,
            kubeconfig,
            url,
            tls,
            stop,
        }
    }

    /// A kube-rs client as the admin.
    pub async fn admin(&self) -> kube::Client {
        let text = std::fs::read_to_string(&self.kubeconfig).unwrap();
        let kubeconfig = kube::config::Kubeconfig::from_yaml(&text).unwrap();
        let config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default())
            .await
            .unwrap();
        kube::Client::try_from(config).unwrap()
    }

    /// The kubelet's apiserver endpoint: `system:node:<node>` in
    /// `system:nodes`.
    pub fn kubelet_endpoint(&self, node: &str) -> ApiEndpoint {
        let cert = self
            .tls
            .component_client(
                &format!("kubelet-{node}"),
                &format!("system:node:{node}"),
                Some("system:nodes"),
            )
            .unwrap();
        ApiEndpoint {
            url: self.url.clone(),
            ca_pem: self.tls.server_ca.cert_pem.clone(),
            cert_pem: cert.cert_pem,
            key_pem: cert.key_pem,
        }
    }

    /// A client certificate of the cluster for `user` in `group`.
    pub fn client_cert(&self, user: &str, group: Option<&str>) -> CertifiedKey {
        let file = user.replace(':', "-");
        self.tls.component_client(&file, user, group).unwrap()
    }

    /// Runs kubectl as the admin; returns its stdout (panics on failure).
    pub fn kubectl(&self, args: &[&str]) -> String {
        let out = std::process::Command::new("kubectl")
            .arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "kubectl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.stop.cancel();
        // A test that failed half-way leaves its pods' mounts (rootfs,
        // namespaces, /dev/shm): detach them so the directory can go.
        let mounts = std::fs::read_to_string("/proc/self/mounts").unwrap_or_default();
        let root = self.dir.path().display().to_string();
        let mut points: Vec<&str> = mounts
            .lines()
            .filter_map(|line| line.split(' ').nth(1))
            .filter(|point| point.starts_with(&format!("{root}/")))
            .collect();
        points.sort_unstable_by(|a, b| b.cmp(a));
        for point in points {
            if let Ok(path) = std::ffi::CString::new(point) {
                // SAFETY: umount2 reads a NUL-terminated path; no memory is shared.
                unsafe { libc::umount2(path.as_ptr(), libc::MNT_DETACH) };
            }
        }
    }
}

/// How a test agent starts.
#[derive(Debug, Clone, Default)]
pub struct AgentOptions {
    /// Labels besides kubelet's own.
    pub labels: BTreeMap<String, String>,
    /// Put the busybox fixture image among the air-gap images.
    pub busybox: bool,
}

/// A running agent; [`Agent::stop`] stops it (containers keep running,
/// and the network lease's drop kills them).
pub struct Agent {
    /// The node's name.
    pub node: String,
    /// Its pod network.
    pub lease: Arc<NetworkLease>,
    /// Its directory (data, run dir, CRI socket, pod logs).
    pub dir: PathBuf,
    stop: CancellationToken,
    task: Option<JoinHandle<Result<(), RunError>>>,
}

/// The busybox fixture's name once imported.
pub const BUSYBOX: &str = "docker.io/skiff-test/busybox:latest";

impl Agent {
    /// Starts an agent named `node` against `cluster`.
    pub async fn start(cluster: &Cluster, node: &str, options: AgentOptions) -> Agent {
        let lease = Arc::new(NetworkLease::take().unwrap());
        Self::start_on(cluster, node, options, lease).await
    }

    /// Starts an agent on a network it already holds (a restart).
    pub async fn start_on(
        cluster: &Cluster,
        node: &str,
        options: AgentOptions,
        lease: Arc<NetworkLease>,
    ) -> Agent {
        let dir = cluster.dir.path().join(format!("node-{node}"));
        let images = dir.join("data/agent/images");
        std::fs::create_dir_all(&images).unwrap();
        if options.busybox {
            let archive = images.join("busybox.tar");
            if !archive.exists() {
                skiff_tests::Fixture::Busybox
                    .write_oci_archive(&archive, skiff_tests::oci::Compression::None)
                    .unwrap();
            }
        }
        let config = AgentConfig {
            node_name: node.to_owned(),
            data_dir: dir.join("data"),
            run_dir: dir.join("run"),
            cri_socket: dir.join("cri.sock"),
            node_ip: IpAddr::V4(Ipv4Addr::LOCALHOST),
            kubelet_port: 0,
            cluster_dns: vec!["10.43.0.10".parse().unwrap()],
            cluster_domain: "cluster.local".into(),
            node_labels: options.labels,
            node_taints: Vec::new(),
            registries: dir.join("registries.yaml"),
            bridge: lease.bridge(),
            streaming_address: SocketAddr::from(([127, 0, 0, 1], 0)),
            shim_binary: skiff_tests::skiff::skiff_binary().unwrap(),
        };
        let serving = cluster
            .tls
            .serving_for(
                &format!("kubelet-{node}"),
                &["127.0.0.1".into(), node.into()],
            )
            .unwrap();
        let stop = CancellationToken::new();
        let task = tokio::spawn(skiff_agent::run::run(
            config,
            cluster.kubelet_endpoint(node),
            (serving.cert_pem, serving.key_pem),
            cluster.tls.client_ca.cert_pem.clone(),
            stop.clone().cancelled_owned(),
        ));
        Agent {
            node: node.to_owned(),
            lease,
            dir,
            stop,
            task: Some(task),
        }
    }

    /// The CRI socket it serves.
    pub fn cri_socket(&self) -> PathBuf {
        self.dir.join("cri.sock")
    }

    /// Stops it and waits until it has.
    pub async fn stop(mut self) {
        self.stop.cancel();
        if let Some(task) = self.task.take() {
            tokio::time::timeout(Duration::from_secs(30), task)
                .await
                .expect("the agent stops within 30 s")
                .unwrap()
                .unwrap();
        }
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// Polls `check` every 100 ms until it gives a value, for at most `limit`.
pub async fn wait_for<T, F, Fut>(what: &str, limit: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + limit;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The node once it exists.
pub async fn registered(client: &kube::Client, node: &str) -> Node {
    let api: Api<Node> = Api::all(client.clone());
    wait_for("the node to register", Duration::from_secs(30), || {
        let api = api.clone();
        async move { api.get_opt(node).await.ok().flatten() }
    })
    .await
}

/// The node's Ready condition status (`True`, `False`, ...).
pub fn ready_status(node: &Node) -> Option<String> {
    node.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == "Ready")
        .map(|c| c.status.clone())
}

/// Gives the node the pod CIDR of its network lease (what the node IPAM
/// controller does) and waits until it is Ready.
pub async fn assign_pod_cidr_and_wait_ready(client: &kube::Client, agent: &Agent) -> Node {
    registered(client, &agent.node).await;
    let api: Api<Node> = Api::all(client.clone());
    let patch = serde_json::json!({"spec": {"podCIDR": agent.lease.pod_cidr(), "podCIDRs": [agent.lease.pod_cidr()]}});
    api.patch(&agent.node, &PatchParams::default(), &Patch::Merge(patch))
        .await
        .unwrap();
    wait_for("the node to be Ready", Duration::from_secs(30), || {
        let api = api.clone();
        let name = agent.node.clone();
        async move {
            let node = api.get(&name).await.ok()?;
            (ready_status(&node).as_deref() == Some("True")).then_some(node)
        }
    })
    .await
}

/// The kubelet API's port, as the node reports it.
pub fn kubelet_port(node: &Node) -> u16 {
    let port = node
        .status
        .as_ref()
        .and_then(|s| s.daemon_endpoints.as_ref())
        .and_then(|d| d.kubelet_endpoint.as_ref())
        .map(|e| e.port)
        .unwrap();
    u16::try_from(port).unwrap()
}

/// A TLS client trusting the server CA and presenting `cert` (if any).
pub fn tls_client(cluster: &Cluster, cert: Option<&CertifiedKey>) -> Arc<rustls::ClientConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(cluster.tls.server_ca.cert_pem.as_bytes()) {
        roots.add(cert.unwrap()).unwrap();
    }
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots);
    let config = match cert {
        Some(cert) => {
            let chain = CertificateDer::pem_slice_iter(cert.cert_pem.as_bytes())
                .collect::<Result<Vec<_>, _>>()
                .unwrap();
            let key = PrivateKeyDer::from_pem_slice(cert.key_pem.as_bytes()).unwrap();
            builder.with_client_auth_cert(chain, key).unwrap()
        }
        None => builder.with_no_client_auth(),
    };
    Arc::new(config)
}

/// A TLS connection to the kubelet API on 127.0.0.1:`port`.
pub async fn connect(
    tls: &Arc<rustls::ClientConfig>,
    port: u16,
) -> tokio_rustls::client::TlsStream<TcpStream> {
    let tcp = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let name = ServerName::IpAddress(Ipv4Addr::LOCALHOST.into());
    tokio_rustls::TlsConnector::from(tls.clone())
        .connect(name, tcp)
        .await
        .unwrap()
}

/// A `GET path` on the kubelet API: the status, and the body as it
/// arrives (pieces sent on the channel until the body ends).
pub async fn get_streaming(
    tls: &Arc<rustls::ClientConfig>,
    port: u16,
    path: &str,
) -> (u16, tokio::sync::mpsc::Receiver<Vec<u8>>) {
    use http_body_util::BodyExt;
    let stream = connect(tls, port).await;
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .unwrap();
    tokio::spawn(connection);
    let request = hyper::Request::get(path)
        .header("host", format!("127.0.0.1:{port}"))
        .body(http_body_util::Empty::<bytes::Bytes>::new())
        .unwrap();
    let response = sender.send_request(request).await.unwrap();
    let status = response.status().as_u16();
    let (tx, rx) = tokio::sync::mpsc::channel(64);
    let mut body = response.into_body();
    tokio::spawn(async move {
        while let Some(Ok(frame)) = body.frame().await {
            if let Ok(data) = frame.into_data()
                && tx.send(data.to_vec()).await.is_err()
            {
                return;
            }
        }
    });
    (status, rx)
}

/// A whole `GET path`: the status and the body as text.
pub async fn get(tls: &Arc<rustls::ClientConfig>, port: u16, path: &str) -> (u16, String) {
    let (status, mut body) = get_streaming(tls, port, path).await;
    let mut text = Vec::new();
    while let Some(piece) = body.recv().await {
        text.extend_from_slice(&piece);
    }
    (status, String::from_utf8_lossy(&text).into_owned())
}

/// A plain-TCP relay on 127.0.0.1 to the kubelet API over TLS as `tls`'s
/// client, as the apiserver's proxy stands between kubectl and a kubelet,
/// so the CRI streaming client (plain `http://` URLs) can be used.
pub async fn relay(tls: Arc<rustls::ClientConfig>, port: u16) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut plain, _)) = listener.accept().await {
            let tls = tls.clone();
            tokio::spawn(async move {
                let mut secure = connect(&tls, port).await;
                let _ = tokio::io::copy_bidirectional(&mut plain, &mut secure).await;
            });
        }
    });
    address
}
