//! ContainerStats, ListContainerStats, PodSandboxStats and
//! ListPodSandboxStats: cgroup CPU/memory/process usage, the writable
//! layer's disk use, and the pod's network counters.

use k8s_cri::v1 as cri;

use super::{Runtime, now_ns};
use crate::cgroups::{memory_usage, process_usage};
use crate::error::RuntimeError;
use crate::records::{ContainerRecord, ContainerState, SandboxRecord, labels_match};

impl Runtime {
    /// ContainerStats.
    pub async fn container_stats(&self, id: &str) -> Result<cri::ContainerStats, RuntimeError> {
        let id = self.resolve_container(id)?;
        let record = self.container(&id)?;
        Ok(self.stats_of(record).await)
    }

    /// ListContainerStats (IDs in the filter may be prefixes).
    pub async fn list_container_stats(
        &self,
        filter: Option<&cri::ContainerStatsFilter>,
    ) -> Vec<cri::ContainerStats> {
        let records: Vec<ContainerRecord> = self
            .state()
            .containers
            .values()
            .filter(|c| {
                filter.is_none_or(|f| {
                    (f.id.is_empty() || c.id.starts_with(&f.id))
                        && (f.pod_sandbox_id.is_empty()
                            || c.sandbox_id.starts_with(&f.pod_sandbox_id))
                        && labels_match(&c.config.labels, &f.label_selector)
                })
            })
            .cloned()
            .collect();
        let mut stats = Vec::with_capacity(records.len());
        for record in records {
            stats.push(self.stats_of(record).await);
        }
        stats
    }

    async fn stats_of(&self, record: ContainerRecord) -> cri::ContainerStats {
        let mut stats = cri::ContainerStats {
            attributes: Some(cri::ContainerAttributes {
                id: record.id.clone(),
                metadata: record.config.metadata.clone(),
                labels: record.config.labels.clone(),
                annotations: record.config.annotations.clone(),
            }),
            ..Default::default()
        };
        if record.state == ContainerState::Running && !record.cgroup_path.is_empty() {
            match self.inner.cgroups.read(&record.cgroup_path) {
                Ok(usage) => {
                    stats.cpu = Some(self.inner.cgroups.cpu_usage(&record.cgroup_path, &usage));
                    stats.memory = Some(memory_usage(&usage));
                }
                Err(err) => {
                    tracing::debug!(container = %record.id, error = %err, "no cgroup stats")
                }
            }
        }
        let images = self.inner.images.clone();
        let id = record.id.clone();
        let layer = tokio::task::spawn_blocking(move || images.snapshots().rootfs_usage(&id)).await;
        if let Ok(Ok(usage)) = layer {
            stats.writable_layer = Some(cri::FilesystemUsage {
                timestamp: now_ns(),
                fs_id: Some(cri::FilesystemIdentifier {
                    mountpoint: self
                        .inner
                        .images
                        .root()
                        .join("snapshots")
                        .display()
                        .to_string(),
                }),
                used_bytes: Some(cri::UInt64Value { value: usage.bytes }),
                inodes_used: Some(cri::UInt64Value {
                    value: usage.inodes,
                }),
            });
        }
        stats
    }

    /// PodSandboxStats.
    pub async fn pod_sandbox_stats(&self, id: &str) -> Result<cri::PodSandboxStats, RuntimeError> {
        let id = self.resolve_sandbox(id)?;
        let record = self.sandbox(&id)?;
        Ok(self.pod_stats_of(record).await)
    }

    /// ListPodSandboxStats.
    pub async fn list_pod_sandbox_stats(
        &self,
        filter: Option<&cri::PodSandboxStatsFilter>,
    ) -> Vec<cri::PodSandboxStats> {
        let records: Vec<SandboxRecord> = self
            .state()
            .sandboxes
            .values()
            .filter(|s| {
                filter.is_none_or(|f| {
                    (f.id.is_empty() || s.id.starts_with(&f.id))
                        && labels_match(&s.config.labels, &f.label_selector)
                })
            })
            .cloned()
            .collect();
        let mut stats = Vec::with_capacity(records.len());
        for record in records {
            stats.push(self.pod_stats_of(record).await);
        }
        stats
    }

    async fn pod_stats_of(&self, record: SandboxRecord) -> cri::PodSandboxStats {
        let mut linux = cri::LinuxPodSandboxStats::default();
        match self.inner.cgroups.read(&record.cgroup_parent) {
            Ok(usage) => {
                linux.cpu = Some(self.inner.cgroups.cpu_usage(&record.cgroup_parent, &usage));
                linux.memory = Some(memory_usage(&usage));
                linux.process = Some(process_usage(&usage));
            }
            Err(err) => tracing::debug!(sandbox = %record.id, error = %err, "no pod cgroup stats"),
        }
        if let Some(netns) = record.namespaces.net.clone() {
            let network = self.inner.config.network.clone();
            if let Ok(Ok(counters)) =
                tokio::task::spawn_blocking(move || network.stats(&netns)).await
            {
                let value = |value| Some(cri::UInt64Value { value });
                let interface = cri::NetworkInterfaceUsage {
                    name: counters.name,
                    rx_bytes: value(counters.rx_bytes),
                    rx_errors: value(counters.rx_errors),
                    tx_bytes: value(counters.tx_bytes),
                    tx_errors: value(counters.tx_errors),
                };
                linux.network = Some(cri::NetworkUsage {
                    timestamp: now_ns(),
                    default_interface: Some(interface.clone()),
                    interfaces: vec![interface],
                });
            }
        }
        for container in self.containers_of(&record.id) {
            linux.containers.push(self.stats_of(container).await);
        }
        cri::PodSandboxStats {
            attributes: Some(cri::PodSandboxAttributes {
                id: record.id.clone(),
                metadata: record.config.metadata.clone(),
                labels: record.config.labels.clone(),
                annotations: record.config.annotations.clone(),
            }),
            linux: Some(linux),
            windows: None,
        }
    }

    /// The NetworkReady condition's inputs: ready, reason, message.
    pub fn network_status(&self) -> (bool, String, String) {
        let status = self.inner.config.network.status();
        (status.ready, status.reason, status.message)
    }

    /// UpdateRuntimeConfig: the node's pod CIDR.
    pub async fn set_pod_cidr(&self, cidr: &str) -> Result<(), RuntimeError> {
        if cidr.is_empty() {
            return Ok(());
        }
        let cidr: ipnet::IpNet = cidr
            .parse()
            .map_err(|e| RuntimeError::InvalidArgument(format!("pod CIDR {cidr:?}: {e}")))?;
        let network = self.inner.config.network.clone();
        tokio::task::spawn_blocking(move || network.set_pod_cidr(cidr))
            .await
            .map_err(|e| RuntimeError::Internal(e.to_string()))??;
        tracing::info!(%cidr, "pod CIDR set");
        Ok(())
    }
}
