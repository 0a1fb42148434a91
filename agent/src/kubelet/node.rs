//! The node: registration, status and heartbeat, as kubelet keeps them.
//!
//! At start the kubelet registers its Node (or brings the existing one up
//! to date), then three things go on until shutdown:
//! - the Lease `kube-node-lease/<node>` is renewed every 10 s;
//! - the status is computed every 10 s (every second until the node is
//!   first Ready, for up to two minutes, as kubelet's fast start-up
//!   updates) and patched only when it changed, or every 5 minutes
//!   (`nodeStatusReportFrequency`);
//! - the node's `spec.podCIDR`, once the server's node IPAM controller
//!   assigns it, is handed to the runtime with CRI UpdateRuntimeConfig;
//!   the runtime's network is not ready, and so neither is the node, until
//!   then.
//!
//! # Layout
//!
//! - `machine`: CPUs, memory, storage, OS and IDs of this machine.
//! - `status`: the status setters, change detection, event reasons.
//! - `register`: the Node at creation and on restart.
//! - `lease`: the heartbeat Lease.
//! - `events`: the node's events.
//! - `quantity`: capacity quantities as apimachinery spells them.

mod events;
mod lease;
mod machine;
mod quantity;
mod register;
pub(crate) mod status;

use std::time::{Duration, Instant};

use k8s_cri::v1 as cri;
use k8s_cri::v1::image_service_server::ImageService;
use k8s_cri::v1::runtime_service_server::RuntimeService;
use k8s_openapi::api::core::v1::{Node, NodeStatus};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, Patch, PatchParams};
use tokio_util::sync::CancellationToken;

pub use lease::{LEASE_DURATION_SECONDS, LEASE_NAMESPACE, RENEW_INTERVAL};
pub use machine::MachineInfo;
pub use register::INSTANCE_TYPE;
pub use status::{KUBERNETES_RELEASE, kubelet_version};

use super::Kubelet;
use events::NodeEvents;

/// How often the status is computed (`--node-status-update-frequency`).
pub const STATUS_UPDATE_PERIOD: Duration = Duration::from_secs(10);
/// How often the status is patched even when nothing changed
/// (`nodeStatusReportFrequency`).
pub const STATUS_REPORT_PERIOD: Duration = Duration::from_secs(300);
/// How often the status is computed until the node is first Ready (for
/// at most [`STARTUP_PHASE`]), so it turns Ready soon after its pod CIDR
/// is assigned, as kubelet's fast start-up status updates.
pub const STARTUP_STATUS_PERIOD: Duration = Duration::from_secs(1);
/// How long the start-up status period lasts without the node turning Ready.
pub const STARTUP_PHASE: Duration = Duration::from_secs(120);
/// How long without a pod CIDR before saying that the node waits for one.
const POD_CIDR_PATIENCE: Duration = Duration::from_secs(5);
/// Registration retries start at this wait and double up to 7 s.
const REGISTER_BACKOFF: Duration = Duration::from_millis(100);

/// What failed while keeping the node.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    /// An apiserver call failed.
    #[error("{what}: {source}")]
    Api {
        /// What was being done.
        what: String,
        /// kube-rs's error.
        source: kube::Error,
    },
    /// A CRI call failed.
    #[error("{what}: {}", source.message())]
    Cri {
        /// What was being done.
        what: String,
        /// The CRI service's status.
        source: tonic::Status,
    },
}

/// Registers the node and keeps its Lease, status and pod CIDR until
/// `shutdown`. Never fails: errors are logged and retried.
pub async fn run(kubelet: Kubelet, shutdown: CancellationToken) {
    let root = kubelet.config.root_dir.clone();
    let machine = match tokio::task::spawn_blocking(move || MachineInfo::read(&root)).await {
        Ok(machine) => machine,
        Err(err) => {
            tracing::error!(%err, "reading the machine's information");
            return;
        }
    };
    let mut keeper = NodeKeeper::new(kubelet, machine);
    keeper.events.starting().await;
    let Some(node) = keeper.register_until_done(&shutdown).await else {
        return;
    };
    let lease = tokio::spawn(lease::run(
        keeper.kubelet.client.clone(),
        keeper.kubelet.config.node_name.clone(),
        node.metadata.uid.clone().unwrap_or_default(),
        shutdown.clone(),
    ));
    let mut ready_once = false;
    loop {
        match keeper.sync_status().await {
            Ok(ready) => ready_once |= ready,
            Err(err) => {
                tracing::warn!(node = %keeper.kubelet.config.node_name, %err, "updating node status")
            }
        }
        let starting = !ready_once && keeper.started.elapsed() < STARTUP_PHASE;
        let period = if starting {
            STARTUP_STATUS_PERIOD
        } else {
            STATUS_UPDATE_PERIOD
        };
        tokio::select! {
            () = shutdown.cancelled() => break,
            () = tokio::time::sleep(period) => {}
        }
    }
    let _ = lease.await;
}

/// The state of the status loop.
struct NodeKeeper {
    kubelet: Kubelet,
    machine: MachineInfo,
    events: NodeEvents,
    started: Instant,
    last_report: Option<Instant>,
    /// The pod CIDR the runtime was given.
    pod_cidr: Option<String>,
    waiting_for_cidr_logged: bool,
}

impl NodeKeeper {
    fn new(kubelet: Kubelet, machine: MachineInfo) -> Self {
        let events = NodeEvents::new(kubelet.client.clone(), &kubelet.config.node_name);
        Self {
            kubelet,
            machine,
            events,
            started: Instant::now(),
            last_report: None,
            pod_cidr: None,
            waiting_for_cidr_logged: false,
        }
    }

    fn nodes(&self) -> Api<Node> {
        Api::all(self.kubelet.client.clone())
    }

    /// Registers, retrying with back-off; `None` on shutdown.
    async fn register_until_done(&mut self, shutdown: &CancellationToken) -> Option<Node> {
        let mut backoff = REGISTER_BACKOFF;
        loop {
            match self.register().await {
                Ok(node) => return Some(node),
                Err(err) => {
                    tracing::warn!(node = %self.kubelet.config.node_name, %err, "registering the node")
                }
            }
            tokio::select! {
                () = shutdown.cancelled() => return None,
                () = tokio::time::sleep(backoff) => {}
            }
            backoff = (backoff * 2).min(Duration::from_secs(7));
        }
    }

    async fn register(&mut self) -> Result<Node, NodeError> {
        let config = &self.kubelet.config;
        let report = self.runtime_report().await;
        let status = status::build(config, &self.machine, &report, None, Timestamp::now());
        let labels = register::labels(config, &self.machine);
        match register::register(&self.nodes(), config, labels, status).await? {
            register::Registered::Created(node) => {
                // The conditions it was created with are news, as kubelet's
                // setters announce them; a status the apiserver did not keep
                // is announced with the first status update instead.
                for reason in status::transitions(
                    None,
                    node.status.as_ref().unwrap_or(&NodeStatus::default()),
                ) {
                    self.events.status_is_now(reason).await;
                }
                Ok(node)
            }
            register::Registered::Existing(node) => Ok(node),
        }
    }

    /// One round of kubelet's `syncNodeStatus`: read the Node, hand a new
    /// pod CIDR to the runtime, compute the status, patch it when it
    /// changed or a report is due. Returns whether the node is Ready.
    async fn sync_status(&mut self) -> Result<bool, NodeError> {
        let name = self.kubelet.config.node_name.clone();
        let api = self.nodes();
        let node = match api.get_opt(&name).await {
            Ok(Some(node)) => node,
            Ok(None) => {
                // Deleted behind our back: register again.
                tracing::warn!(node = %name, "the node object is gone; registering again");
                self.last_report = None;
                self.register().await?
            }
            Err(source) => {
                return Err(NodeError::Api {
                    what: format!("reading node {name}"),
                    source,
                });
            }
        };
        self.update_pod_cidr(&node).await;
        let report = self.runtime_report().await;
        let old = node.status.as_ref();
        let new = status::build(
            &self.kubelet.config,
            &self.machine,
            &report,
            old,
            Timestamp::now(),
        );
        let ready = status::condition_status(Some(&new), "Ready") == Some("True");
        let due = self
            .last_report
            .is_none_or(|at| at.elapsed() >= STATUS_REPORT_PERIOD);
        if !due && !status::changed(old, &new) {
            return Ok(ready);
        }
        self.patch_status(&api, &new).await?;
        self.last_report = Some(Instant::now());
        for reason in status::transitions(old, &new) {
            if reason == "NodeNotReady" || reason == "NodeReady" {
                tracing::info!(node = %name, reason, "node readiness changed");
            }
            self.events.status_is_now(reason).await;
        }
        Ok(ready)
    }

    async fn patch_status(&self, api: &Api<Node>, status: &NodeStatus) -> Result<(), NodeError> {
        let name = &self.kubelet.config.node_name;
        let patch = serde_json::json!({ "status": status });
        api.patch_status(name, &PatchParams::default(), &Patch::Strategic(patch))
            .await
            .map_err(|source| NodeError::Api {
                what: format!("patching the status of node {name}"),
                source,
            })?;
        Ok(())
    }

    /// Passes a new `spec.podCIDR` to the runtime; says once, after a few
    /// seconds, that the node waits for one.
    async fn update_pod_cidr(&mut self, node: &Node) {
        let spec = node.spec.as_ref();
        let cidr = spec
            .and_then(|s| s.pod_cidr.clone())
            .or_else(|| spec.and_then(|s| s.pod_cidrs.as_ref()?.first().cloned()))
            .filter(|c| !c.is_empty());
        let Some(cidr) = cidr else {
            if !self.waiting_for_cidr_logged && self.started.elapsed() >= POD_CIDR_PATIENCE {
                self.waiting_for_cidr_logged = true;
                tracing::info!(
                    node = %self.kubelet.config.node_name,
                    "waiting for the node's pod CIDR (spec.podCIDR, assigned by the node IPAM controller)"
                );
            }
            return;
        };
        if self.pod_cidr.as_deref() == Some(cidr.as_str()) {
            return;
        }
        let request = cri::UpdateRuntimeConfigRequest {
            runtime_config: Some(cri::RuntimeConfig {
                network_config: Some(cri::NetworkConfig {
                    pod_cidr: cidr.clone(),
                }),
            }),
        };
        match RuntimeService::update_runtime_config(&self.kubelet.cri, tonic::Request::new(request))
            .await
        {
            Ok(_) => {
                tracing::info!(node = %self.kubelet.config.node_name, pod_cidr = %cidr, "pod CIDR handed to the runtime");
                self.pod_cidr = Some(cidr);
            }
            Err(status) => {
                let err = NodeError::Cri {
                    what: format!("updating the runtime's pod CIDR to {cidr}"),
                    source: status,
                };
                tracing::warn!(%err, "pod CIDR");
            }
        }
    }

    /// What the runtime says: its version, readiness, handlers, images.
    async fn runtime_report(&self) -> status::RuntimeReport {
        let cri = &self.kubelet.cri;
        let version = RuntimeService::version(
            cri,
            tonic::Request::new(cri::VersionRequest {
                version: "v1".into(),
            }),
        )
        .await
        .map(|r| {
            let r = r.into_inner();
            format!("{}://{}", r.runtime_name, r.runtime_version)
        })
        .unwrap_or_default();
        let status = RuntimeService::status(
            cri,
            tonic::Request::new(cri::StatusRequest { verbose: false }),
        )
        .await
        .map(tonic::Response::into_inner)
        .map_err(|s| s.message().to_owned());
        let problems = status::runtime_problems(status.as_ref().map_err(String::clone));
        let handlers = status.map(|s| s.runtime_handlers).unwrap_or_default();
        let images = match ImageService::list_images(
            cri,
            tonic::Request::new(cri::ListImagesRequest { filter: None }),
        )
        .await
        {
            Ok(response) => response.into_inner().images,
            Err(status) => {
                tracing::debug!(error = %status.message(), "listing images for the node status");
                Vec::new()
            }
        };
        status::RuntimeReport {
            version,
            problems,
            handlers,
            images,
        }
    }
}
