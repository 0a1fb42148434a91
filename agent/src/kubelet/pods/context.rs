//! What every pod worker shares: the kubelet, the runtime, the event
//! recorder, the image puller, and facts about the node.

use std::path::PathBuf;

use tokio_util::sync::CancellationToken;

use super::PodOptions;
use super::cri::Cri;
use super::dns::{ClusterDns, ResolvConf};
use super::events::Recorder;
use super::pull::ImagePuller;
use super::resources::NodeCapacity;
use super::sandbox::SandboxSettings;
use crate::kubelet::Kubelet;

/// The node-wide context of the pod sync.
#[derive(Debug)]
pub struct NodeContext {
    /// The kubelet's shared parts.
    pub kubelet: Kubelet,
    /// Flags of the pod sync.
    pub options: PodOptions,
    /// The runtime.
    pub cri: Cri,
    /// Events.
    pub events: Recorder,
    /// Image pulls.
    pub images: ImagePuller,
    /// The node's CPUs and memory.
    pub capacity: NodeCapacity,
    /// The host's resolv.conf.
    pub host_dns: ResolvConf,
    /// The runtime's name, the scheme of container IDs (`skiff`).
    pub runtime_name: String,
}

impl NodeContext {
    /// Builds the context; the event writer stops with `shutdown`.
    pub async fn new(kubelet: Kubelet, options: PodOptions, shutdown: CancellationToken) -> Self {
        let cri = Cri::new(kubelet.cri.clone());
        let events = Recorder::start(
            kubelet.client.clone(),
            kubelet.config.node_name.clone(),
            shutdown,
        );
        let images = ImagePuller::new(cri.clone(), kubelet.client.clone(), events.clone());
        let runtime_name = cri.runtime_name().await;
        Self {
            kubelet,
            options,
            cri,
            events,
            images,
            capacity: NodeCapacity::of_this_machine(),
            host_dns: ResolvConf::host(),
            runtime_name,
        }
    }

    /// The apiserver.
    pub fn client(&self) -> &kube::Client {
        &self.kubelet.client
    }

    /// kubelet's root directory.
    pub fn root_dir(&self) -> &PathBuf {
        &self.kubelet.config.root_dir
    }

    /// What sandbox configs are built with.
    pub fn sandbox_settings(&self) -> SandboxSettings<'_> {
        let config = &self.kubelet.config;
        SandboxSettings {
            dns: ClusterDns {
                servers: &config.cluster_dns,
                domain: &config.cluster_domain,
            },
            host_dns: &self.host_dns,
            cgroup_root: &self.options.cgroup_root,
            logs_dir: &self.options.pod_logs_dir,
            root_dir: &config.root_dir,
        }
    }
}
