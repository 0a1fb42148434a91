//! `skiff server`: the datastore, certificates, admin kubeconfig and the
//! apiserver on :6443, with the namespace cleaner and datastore compaction
//! in the background. (The scheduler, controllers and the node agent come
//! with the first-cluster issue; until then `--disable-agent` is required.)

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::apiserver::{self, Api};
use crate::datastore::{RevisionLog, SqliteLog};
use crate::kubeconfig;
use crate::tls::ClusterTls;

/// How often old revisions are compacted.
const COMPACT_EVERY: Duration = Duration::from_secs(300);
/// Revisions kept behind the current one at compaction (kine keeps 1000).
const KEEP_REVISIONS: i64 = 1000;

/// How `skiff server` is configured.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// The data directory (`/var/lib/skiff`).
    pub data_dir: PathBuf,
    /// Address the apiserver binds.
    pub bind_address: IpAddr,
    /// The apiserver's port (6443).
    pub https_port: u16,
    /// Extra names and addresses for the serving certificate.
    pub tls_sans: Vec<String>,
    /// Where the admin kubeconfig is written.
    pub write_kubeconfig: PathBuf,
    /// Its mode.
    pub write_kubeconfig_mode: u32,
    /// The service CIDR.
    pub service_cidr: ipnet::Ipv4Net,
    /// Which built-in components run beside the apiserver.
    pub components: Components,
    /// The pod CIDR nodes' ranges (a /24 each) come from.
    pub cluster_cidr: ipnet::Ipv4Net,
    /// This machine's node agent, unless `--disable-agent`.
    pub agent: Option<AgentOptions>,
}

/// How the built-in agent (kubelet and node runtime) runs.
#[derive(Debug, Clone)]
pub struct AgentOptions {
    /// The node's name.
    pub node_name: String,
    /// Its InternalIP; found from the default route when None.
    pub node_ip: Option<IpAddr>,
    /// Labels `key=value` it registers with, beside the server's roles.
    pub node_labels: Vec<String>,
    /// Taints `key=value:Effect` it registers with.
    pub node_taints: Vec<String>,
    /// The cluster DNS address for pods' resolv.conf.
    pub cluster_dns: IpAddr,
    /// The cluster domain.
    pub cluster_domain: String,
    /// The CRI socket served for crictl.
    pub cri_socket: PathBuf,
    /// Volatile state (pod directories, shim sockets).
    pub run_dir: PathBuf,
    /// The pod bridge.
    pub bridge: String,
    /// `registries.yaml`.
    pub private_registry: PathBuf,
    /// The kubelet API's port (0: the kernel picks).
    pub kubelet_port: u16,
    /// The binary re-executed as the per-pod shim.
    pub shim_binary: PathBuf,
}

/// The components `skiff server` runs beside the apiserver; k3s's
/// `--disable-scheduler`, `--disable-controller-manager` and
/// `--disable-agent` turn them off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Components {
    /// kube-scheduler's part: binding pending pods.
    pub scheduler: bool,
    /// kube-controller-manager's part: the reconcile loops.
    pub controller_manager: bool,
}

impl Default for Components {
    fn default() -> Self {
        Self {
            scheduler: true,
            controller_manager: true,
        }
    }
}

/// A failure starting the server.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// The datastore could not be opened.
    #[error(transparent)]
    Datastore(#[from] crate::datastore::DatastoreError),
    /// The certificates could not be made or read.
    #[error(transparent)]
    Tls(#[from] crate::tls::TlsError),
    /// The apiserver could not be set up.
    #[error(transparent)]
    ApiServer(#[from] apiserver::ApiServerError),
    /// The agent's flags are unusable.
    #[error(transparent)]
    AgentConfig(#[from] skiff_agent::config::ConfigError),
    /// A component's API client could not be made.
    #[error(transparent)]
    Client(#[from] Box<skiff_agent::api_client::ApiClientError>),
    /// The API could not start.
    #[error("starting the API: {0}")]
    Api(#[from] apiserver::ApiError),
    /// A file or socket operation failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The OS error.
        source: std::io::Error,
    },
}

/// Runs the server until `shutdown` resolves.
pub async fn run(
    config: ServerConfig,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<(), ServerError> {
    let started = std::time::Instant::now();
    limit_malloc_arenas();
    let server_dir = config.data_dir.join("server");
    let db_path = server_dir.join("db").join("state.db");
    let log: Arc<dyn RevisionLog> = Arc::new(SqliteLog::open(&db_path)?);
    let tls = ClusterTls::load_or_create(&server_dir.join("tls"), &config.tls_sans)?;
    let address = SocketAddr::new(config.bind_address, config.https_port);
    let listener = tokio::net::TcpListener::bind(address)
        .await
        .map_err(|source| ServerError::Io {
            what: format!("binding the apiserver to {address}"),
            source,
        })?;
    let local = listener.local_addr().map_err(|source| ServerError::Io {
        what: "reading the apiserver's address".into(),
        source,
    })?;
    let client_host = if config.bind_address.is_unspecified() {
        "127.0.0.1".to_owned()
    } else {
        config.bind_address.to_string()
    };
    let url = format!("https://{client_host}:{}", local.port());
    let api = tokio::task::block_in_place(|| {
        Api::new(
            log.clone(),
            format!("{client_host}:{}", local.port()),
            config.service_cidr,
        )
    })?;
    let api = Arc::new(api);
    let advertise = SocketAddr::new(advertise_ip(&config), local.port());
    tokio::task::block_in_place(|| apiserver::bootstrap(&api, advertise))?;
    kubeconfig::write_admin_kubeconfig(
        &config.write_kubeconfig,
        config.write_kubeconfig_mode,
        &tls,
        &url,
    )
    .map_err(|source| ServerError::Io {
        what: format!(
            "writing the admin kubeconfig {}",
            config.write_kubeconfig.display()
        ),
        source,
    })?;
    let rustls = apiserver::tls_config(&tls)?;
    let token = CancellationToken::new();
    let serving = tokio::spawn(apiserver::serve(
        listener,
        rustls,
        api.clone(),
        token.clone(),
    ));
    let cleaner = tokio::spawn(apiserver::run_cleaner(api.clone(), token.clone()));
    let compactor = tokio::spawn(compact(log.clone(), token.clone()));
    let expirer = tokio::spawn(expire_events(api.clone(), token.clone()));
    tracing::info!(
        %url,
        kubeconfig = %config.write_kubeconfig.display(),
        ready_ms = started.elapsed().as_millis() as u64,
        "apiserver ready"
    );
    let mut components = Vec::new();
    if config.components.scheduler {
        let client = component_client(&tls, &url, "scheduler", "system:kube-scheduler").await?;
        components.push(tokio::spawn(crate::scheduler::run(client, token.clone())));
    }
    if config.components.controller_manager {
        let client =
            component_client(&tls, &url, "controller", "system:kube-controller-manager").await?;
        let settings = crate::controllers::Settings {
            root_ca_pem: tls.server_ca.cert_pem.clone(),
            cluster_cidr: config.cluster_cidr,
        };
        components.push(tokio::spawn(crate::controllers::run(
            client,
            settings,
            token.clone(),
        )));
    }
    let agent = match &config.agent {
        Some(options) => Some(start_agent(&config, options, &tls, &url, token.clone())?),
        None => None,
    };
    shutdown.await;
    tracing::info!("shutting down");
    token.cancel();
    if let Some(agent) = agent {
        match agent.await {
            Ok(Err(err)) => tracing::error!(%err, "the agent stopped"),
            Err(err) => tracing::error!(%err, "the agent task"),
            Ok(Ok(())) => {}
        }
    }
    for component in components {
        let _ = component.await;
    }
    let _ = tokio::join!(serving, cleaner, compactor, expirer);
    Ok(())
}

/// An API client for an in-process component, authenticated by its own
/// client certificate (`<data-dir>/server/tls/client-<file>.crt`).
async fn component_client(
    tls: &ClusterTls,
    url: &str,
    file: &str,
    user: &str,
) -> Result<kube::Client, ServerError> {
    let cert = tls.component_client(file, user, None)?;
    let endpoint = skiff_agent::api_client::ApiEndpoint {
        url: url.to_owned(),
        ca_pem: tls.server_ca.cert_pem.clone(),
        cert_pem: cert.cert_pem,
        key_pem: cert.key_pem,
    };
    endpoint.connect().await.map_err(|err| Box::new(err).into())
}

/// Starts this machine's agent (node runtime and kubelet) as the node
/// `system:node:<name>`, a control-plane node.
fn start_agent(
    config: &ServerConfig,
    options: &AgentOptions,
    tls: &ClusterTls,
    url: &str,
    token: CancellationToken,
) -> Result<tokio::task::JoinHandle<Result<(), skiff_agent::run::RunError>>, ServerError> {
    use skiff_agent::config::{AgentConfig, default_node_ip, parse_node_label, parse_node_taint};
    let node = options.node_name.clone();
    let node_ip = match options.node_ip {
        Some(ip) => ip,
        None => default_node_ip()?,
    };
    let mut node_labels = std::collections::BTreeMap::new();
    for role in ["control-plane", "master"] {
        node_labels.insert(format!("node-role.kubernetes.io/{role}"), "true".to_owned());
    }
    for label in &options.node_labels {
        let (key, value) = parse_node_label(label)?;
        node_labels.insert(key, value);
    }
    let node_taints = options
        .node_taints
        .iter()
        .map(|taint| parse_node_taint(taint))
        .collect::<Result<Vec<_>, _>>()?;
    let client = tls.component_client(
        &format!("kubelet-{node}"),
        &format!("system:node:{node}"),
        Some("system:nodes"),
    )?;
    let serving_names = vec![
        node.clone(),
        node_ip.to_string(),
        "localhost".to_owned(),
        "127.0.0.1".to_owned(),
    ];
    let serving = tls.serving_for(&format!("kubelet-{node}"), &serving_names)?;
    let endpoint = skiff_agent::api_client::ApiEndpoint {
        url: url.to_owned(),
        ca_pem: tls.server_ca.cert_pem.clone(),
        cert_pem: client.cert_pem,
        key_pem: client.key_pem,
    };
    let agent = AgentConfig {
        node_name: node,
        data_dir: config.data_dir.clone(),
        run_dir: options.run_dir.clone(),
        cri_socket: options.cri_socket.clone(),
        node_ip,
        kubelet_port: options.kubelet_port,
        cluster_dns: vec![options.cluster_dns],
        cluster_domain: options.cluster_domain.clone(),
        node_labels,
        node_taints,
        registries: options.private_registry.clone(),
        bridge: options.bridge.clone(),
        streaming_address: SocketAddr::from(([127, 0, 0, 1], 0)),
        shim_binary: options.shim_binary.clone(),
    };
    let client_ca = tls.client_ca.cert_pem.clone();
    Ok(tokio::spawn(skiff_agent::run::run(
        agent,
        endpoint,
        (serving.cert_pem, serving.key_pem),
        client_ca,
        token.cancelled_owned(),
    )))
}

/// Where other machines reach the apiserver (the `kubernetes` Service's
/// endpoint): the bind address, or when that is every address, the
/// node's IP (as kube-apiserver's default interface address).
fn advertise_ip(config: &ServerConfig) -> IpAddr {
    if !config.bind_address.is_unspecified() {
        return config.bind_address;
    }
    config
        .agent
        .as_ref()
        .and_then(|agent| agent.node_ip)
        .or_else(|| skiff_agent::config::default_node_ip().ok())
        .unwrap_or(IpAddr::V4(std::net::Ipv4Addr::LOCALHOST))
}

/// Requests run on tokio's blocking threads; glibc would give each its own
/// heap arena, and their freed memory would stay in the process. Two arenas
/// keep the server's memory close to what it uses.
fn limit_malloc_arenas() {
    // SAFETY: mallopt only changes allocator tuning; it is called before the
    // server's threads allocate.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 2);
    }
}

/// Deletes events older than the event TTL, every minute.
async fn expire_events(api: Arc<Api>, shutdown: CancellationToken) {
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(Duration::from_secs(60)) => {}
        }
        let api = api.clone();
        let result = tokio::task::spawn_blocking(move || {
            apiserver::expire_events(&api, apiserver::EVENT_TTL, time::OffsetDateTime::now_utc())
        })
        .await;
        match result {
            Ok(Ok(0)) => {}
            Ok(Ok(removed)) => tracing::debug!(removed, "expired events deleted"),
            Ok(Err(err)) => tracing::warn!(%err, "deleting expired events"),
            Err(err) => tracing::warn!(%err, "event expiry task"),
        }
    }
}

/// Compacts the datastore every few minutes, keeping recent history for
/// watches that reconnect.
async fn compact(log: Arc<dyn RevisionLog>, shutdown: CancellationToken) {
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(COMPACT_EVERY) => {}
        }
        let log = log.clone();
        let result = tokio::task::spawn_blocking(move || {
            let current = log.current_revision()?;
            let target = current - KEEP_REVISIONS;
            if target <= log.compact_revision()? {
                return Ok(0);
            }
            log.compact(target)
        })
        .await;
        match result {
            Ok(Ok(0)) => {}
            Ok(Ok(removed)) => tracing::debug!(removed, "datastore compacted"),
            Ok(Err(err)) => tracing::warn!(%err, "compacting the datastore"),
            Err(err) => tracing::warn!(%err, "compaction task"),
        }
    }
}
