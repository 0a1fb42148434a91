//! The kubelet: registers this node, keeps its Lease and status fresh,
//! runs the pods bound to it through the in-process CRI service, and serves
//! the kubelet API (:10250) the apiserver proxies logs, exec, attach and
//! port-forward to.
//!
//! # Layout
//!
//! - [`node`]: registration, node status and the heartbeat Lease.
//! - [`pods`]: the pods bound to this node: one worker per pod syncing it
//!   through CRI, and the status it reports.
//! - [`server`]: the kubelet API on :10250.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;

use skiff_cri::CriService;

pub mod node;
pub mod pods;
pub mod server;

/// How the kubelet is configured.
#[derive(Debug, Clone)]
pub struct KubeletConfig {
    /// The node's name (`--node-name`, else the hostname).
    pub node_name: String,
    /// The node's InternalIP.
    pub node_ip: IpAddr,
    /// The kubelet API's port (10250).
    pub kubelet_port: u16,
    /// The kubelet's directory: pod volumes live under
    /// `<root_dir>/pods/<pod-uid>/volumes` (`<data-dir>/agent/kubelet`).
    pub root_dir: PathBuf,
    /// Cluster DNS servers written to pods' resolv.conf (10.43.0.10).
    pub cluster_dns: Vec<IpAddr>,
    /// The cluster domain (`cluster.local`).
    pub cluster_domain: String,
    /// Labels the node registers with (`--node-label`, plus the roles of a
    /// server node).
    pub node_labels: BTreeMap<String, String>,
    /// Taints it registers with (`--node-taint`).
    pub node_taints: Vec<k8s_openapi::api::core::v1::Taint>,
    /// Skiff's version, reported as `skiff://<version>` and in kubelet's
    /// version `v1.33.x+skiff`.
    pub skiff_version: String,
}

/// What every part of the kubelet shares.
#[derive(Clone)]
pub struct Kubelet {
    /// The apiserver, as `system:node:<node_name>`.
    pub client: kube::Client,
    /// The node runtime's CRI service, called in-process.
    pub cri: CriService,
    /// The configuration.
    pub config: Arc<KubeletConfig>,
}

impl std::fmt::Debug for Kubelet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Kubelet")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}
