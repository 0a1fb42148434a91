//! [`BridgeNetwork`]: pods on a Linux bridge, addresses from IPAM on disk,
//! masquerade and hostPorts in Skiff's nftables table.
//!
//! The node side (bridge, sysctls, base ruleset) is prepared lazily: by the
//! first `setup` after start, and again when the pod CIDR changes or the
//! bridge has disappeared. Each step of `setup` is undone when a later one
//! fails, so a failed RunPodSandbox leaks no address, veth or rule.

use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use ipnet::{IpNet, Ipv4Net};
use nftables::batch::Batch;
use sha2::{Digest, Sha256};

use super::ipam::{self, Ipam};
use super::links::{self, BridgeSpec, NodeLinks, Rtnetlink, VethSpec};
use super::nft::{self, NftBinary, NftRunner, SkiffTable};
use super::{InterfaceStats, NetworkError, NetworkStatus, PodAddresses, PodAttachment, PodNetwork};

/// The pod's interface name.
pub const POD_INTERFACE: &str = "eth0";

/// How the bridge network is set up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BridgeConfig {
    /// The bridge's name.
    pub bridge: String,
    /// The node's pod CIDR, when known at start (UpdateRuntimeConfig may set
    /// or change it later).
    pub pod_cidr: Option<IpNet>,
    /// Where IPAM keeps one file per allocated address.
    pub state_dir: PathBuf,
    /// MTU of the bridge (when created) and of every veth.
    pub mtu: u32,
    /// Whether pod traffic leaving the node is masqueraded.
    pub masquerade: bool,
    /// Destinations pods reach with their own address: the cluster CIDR, so
    /// pods on other nodes see the real source.
    pub no_masquerade: Vec<IpNet>,
    /// The nftables table (family `inet`) owned by Skiff.
    pub nft_table: String,
}

impl BridgeConfig {
    /// Defaults: bridge `skiff0`, MTU 1500, masquerade on, table `skiff`.
    pub fn new(state_dir: impl Into<PathBuf>) -> Self {
        BridgeConfig {
            bridge: "skiff0".into(),
            pod_cidr: None,
            state_dir: state_dir.into(),
            mtu: 1500,
            masquerade: true,
            no_masquerade: Vec::new(),
            nft_table: "skiff".into(),
        }
    }
}

/// The built-in pod network.
#[derive(Debug)]
pub struct BridgeNetwork {
    bridge: String,
    mtu: u32,
    ipam: Ipam,
    table: SkiffTable,
    links: Box<dyn NodeLinks>,
    nft: Box<dyn NftRunner>,
    node: Mutex<NodeState>,
    /// Listing and changing the hostports chain is one critical section, so
    /// two pods cannot both claim a port.
    hostports: Mutex<()>,
}

#[derive(Debug, Default)]
struct NodeState {
    pod_cidr: Option<Ipv4Net>,
    /// The CIDR the node side was last prepared for.
    prepared: Option<Ipv4Net>,
    /// Why the last preparation failed.
    failure: Option<String>,
}

impl BridgeNetwork {
    /// A bridge network over rtnetlink and the `nft` binary. Touches nothing
    /// until the first pod (or pod CIDR) arrives.
    pub fn new(config: BridgeConfig) -> Result<Self, NetworkError> {
        Self::with_backends(config, Box::new(Rtnetlink), Box::new(NftBinary::default()))
    }

    /// A bridge network over the given kernel seams (fakes in unit tests).
    pub fn with_backends(
        config: BridgeConfig,
        links: Box<dyn NodeLinks>,
        nft: Box<dyn NftRunner>,
    ) -> Result<Self, NetworkError> {
        let pod_cidr = config.pod_cidr.map(usable_cidr).transpose()?;
        let no_masquerade = config
            .no_masquerade
            .iter()
            .filter_map(|net| match net {
                IpNet::V4(net) => Some(net.trunc()),
                IpNet::V6(_) => None,
            })
            .collect();
        Ok(BridgeNetwork {
            table: SkiffTable {
                name: config.nft_table,
                bridge: config.bridge.clone(),
                masquerade: config.masquerade,
                no_masquerade,
            },
            bridge: config.bridge,
            mtu: config.mtu,
            ipam: Ipam::new(config.state_dir),
            links,
            nft,
            node: Mutex::new(NodeState {
                pod_cidr,
                ..NodeState::default()
            }),
            hostports: Mutex::new(()),
        })
    }

    /// Removes what this network built on the node: Skiff's nftables table
    /// and the bridge (`skiff killall`, once the pods are gone). Whatever is
    /// already gone is skipped.
    pub fn remove(&self) -> Result<(), NetworkError> {
        if self.nft.list(&self.table.table_listing())?.is_some() {
            self.nft
                .apply(&self.table.delete(), "deleting Skiff's nftables table")?;
        }
        self.links.detach(&self.bridge)?;
        tracing::info!(bridge = %self.bridge, table = %self.table.name, "pod network removed");
        Ok(())
    }

    /// The allocator (to inspect allocations).
    pub fn ipam(&self) -> &Ipam {
        &self.ipam
    }

    /// The current pod CIDR.
    pub fn pod_cidr(&self) -> Option<Ipv4Net> {
        self.lock_node().pod_cidr
    }

    /// The node end of a sandbox's veth pair: `veth` and 11 hex digits of
    /// the ID's SHA-256 (interface names hold 15 bytes).
    pub fn host_interface(sandbox_id: &str) -> String {
        let digest = Sha256::digest(sandbox_id.as_bytes());
        let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
        format!("veth{}", &hex[..11])
    }

    fn lock_node(&self) -> std::sync::MutexGuard<'_, NodeState> {
        // The state stays consistent even if a holder panicked.
        self.node.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Prepares the node side for `cidr` unless it already is.
    fn prepare(&self, cidr: Ipv4Net) -> Result<(), NetworkError> {
        let mut node = self.lock_node();
        if node.prepared == Some(cidr) && self.links.exists(&self.bridge)? {
            return Ok(());
        }
        let result = self.prepare_node(cidr);
        match &result {
            Ok(()) => {
                node.prepared = Some(cidr);
                node.failure = None;
            }
            Err(e) => {
                node.prepared = None;
                node.failure = Some(e.to_string());
            }
        }
        result
    }

    fn prepare_node(&self, cidr: Ipv4Net) -> Result<(), NetworkError> {
        self.links.ensure_bridge(&self.bridge_spec(cidr))?;
        // Earlier CIDRs stay in the set while the table lives: their pods
        // may still run.
        let mut cidrs = match self.nft.list(&self.table.pod_cidrs_listing())? {
            Some(listing) => nft::parse_set_prefixes(&listing),
            None => Vec::new(),
        };
        cidrs.push(cidr);
        self.nft.apply(
            &self.table.base_ruleset(&cidrs),
            "building the base ruleset",
        )?;
        tracing::info!(bridge = %self.bridge, pod_cidr = %cidr, table = %self.table.name, "pod network ready");
        Ok(())
    }

    fn bridge_spec(&self, cidr: Ipv4Net) -> BridgeSpec {
        BridgeSpec {
            name: self.bridge.clone(),
            gateway: gateway_of(cidr),
            prefix_len: cidr.prefix_len(),
            mtu: self.mtu,
        }
    }

    fn attach(
        &self,
        pod: &PodAttachment,
        allocation: &ipam::Allocation,
    ) -> Result<PodAddresses, NetworkError> {
        let gateway = gateway_of(allocation.cidr);
        let mac = links::mac_for(allocation.ip);
        let host_name = Self::host_interface(&pod.sandbox_id);
        self.links.attach(&VethSpec {
            host_name: host_name.clone(),
            bridge: self.bridge.clone(),
            netns: pod.netns.clone(),
            pod_interface: POD_INTERFACE.into(),
            ip: allocation.ip,
            prefix_len: allocation.cidr.prefix_len(),
            gateway,
            mac,
            mtu: self.mtu,
        })?;
        self.replace_hostports(pod, allocation.ip)?;
        Ok(PodAddresses {
            ip: IpAddr::V4(allocation.ip),
            prefix_len: allocation.cidr.prefix_len(),
            gateway: IpAddr::V4(gateway),
            interface: POD_INTERFACE.into(),
            mac: links::format_mac(mac),
            host_interface: host_name,
        })
    }

    /// Makes the pod's hostPort rules exactly those its mappings ask for.
    fn replace_hostports(&self, pod: &PodAttachment, pod_ip: Ipv4Addr) -> Result<(), NetworkError> {
        let forwards = nft::hostport_forwards(pod_ip, &pod.port_mappings)?;
        if forwards.is_empty() {
            return Ok(());
        }
        let owner = nft::owner_tag(&pod.sandbox_id);
        let _serial = self.hostports.lock().unwrap_or_else(|e| e.into_inner());
        let existing = match self.nft.list(&self.table.hostports_listing())? {
            Some(listing) => nft::parse_hostport_rules(&listing),
            None => Vec::new(),
        };
        for forward in &forwards {
            if let Some(taken) = existing
                .iter()
                .find(|rule| rule.owner != owner && rule.key.overlaps(&forward.key))
            {
                return Err(NetworkError::HostPortInUse {
                    mapping: forward.key.to_string(),
                    owner: taken.owner.clone(),
                });
            }
        }
        let mut batch = Batch::new();
        let stale: Vec<u32> = existing
            .iter()
            .filter(|rule| rule.owner == owner)
            .filter_map(|rule| rule.handle)
            .collect();
        self.table.delete_hostport_rules(&mut batch, &stale);
        for rule in self.table.hostport_rules(&owner, &forwards) {
            batch.add(nftables::schema::NfListObject::Rule(rule));
        }
        self.nft
            .apply(&batch.to_nftables(), "adding hostPort rules")?;
        tracing::debug!(sandbox = %pod.sandbox_id, count = forwards.len(), "hostPorts forwarded");
        Ok(())
    }

    /// Deletes the pod's hostPort rules, if any.
    fn remove_hostports(&self, sandbox_id: &str) -> Result<(), NetworkError> {
        let owner = nft::owner_tag(sandbox_id);
        let _serial = self.hostports.lock().unwrap_or_else(|e| e.into_inner());
        let listing = match self.nft.list(&self.table.hostports_listing()) {
            Ok(Some(listing)) => listing,
            Ok(None) => return Ok(()),
            // Without nft no rule of ours can exist.
            Err(NetworkError::NftExec { source, .. })
                if source.kind() == std::io::ErrorKind::NotFound =>
            {
                return Ok(());
            }
            Err(e) => return Err(e),
        };
        let handles: Vec<u32> = nft::parse_hostport_rules(&listing)
            .into_iter()
            .filter(|rule| rule.owner == owner)
            .filter_map(|rule| rule.handle)
            .collect();
        if handles.is_empty() {
            return Ok(());
        }
        let mut batch = Batch::new();
        self.table.delete_hostport_rules(&mut batch, &handles);
        self.nft
            .apply(&batch.to_nftables(), "deleting hostPort rules")
    }
}

impl PodNetwork for BridgeNetwork {
    fn setup(&self, pod: &PodAttachment) -> Result<PodAddresses, NetworkError> {
        let cidr = self.pod_cidr().ok_or(NetworkError::NoPodCidr)?;
        self.prepare(cidr)?;
        let allocation = self.ipam.allocate(cidr, &pod.sandbox_id)?;
        if allocation.cidr != cidr {
            // A pod set up again after a CIDR change keeps its address; its
            // gateway must still be on the bridge.
            self.links
                .ensure_bridge(&self.bridge_spec(allocation.cidr))?;
        }
        match self.attach(pod, &allocation) {
            Ok(addresses) => {
                tracing::info!(
                    sandbox = %pod.sandbox_id,
                    pod = %format_args!("{}/{}", pod.namespace, pod.name),
                    ip = %addresses.ip,
                    veth = %addresses.host_interface,
                    "pod attached to the network"
                );
                Ok(addresses)
            }
            Err(e) => {
                if let Err(undo) = self.teardown(pod) {
                    tracing::warn!(sandbox = %pod.sandbox_id, error = %undo, "could not undo a failed network setup");
                }
                Err(e)
            }
        }
    }

    fn teardown(&self, pod: &PodAttachment) -> Result<(), NetworkError> {
        // Rules first: no traffic may be forwarded to an address that could
        // be handed to the next pod.
        self.remove_hostports(&pod.sandbox_id)?;
        self.links.detach(&Self::host_interface(&pod.sandbox_id))?;
        let released = self.ipam.release(&pod.sandbox_id)?;
        tracing::debug!(sandbox = %pod.sandbox_id, ?released, "pod detached from the network");
        Ok(())
    }

    fn status(&self) -> NetworkStatus {
        let node = self.lock_node();
        if node.pod_cidr.is_none() {
            return NetworkStatus::not_ready(
                "NoPodCIDR",
                "no pod CIDR yet: configure one or send UpdateRuntimeConfig",
            );
        }
        match &node.failure {
            Some(failure) => NetworkStatus::not_ready("NetworkSetupFailed", failure.clone()),
            None => NetworkStatus::ready(),
        }
    }

    fn set_pod_cidr(&self, cidr: IpNet) -> Result<(), NetworkError> {
        let cidr = usable_cidr(cidr)?;
        let previous = self.lock_node().pod_cidr.replace(cidr);
        if previous != Some(cidr) {
            tracing::info!(pod_cidr = %cidr, ?previous, "pod CIDR set");
        }
        self.prepare(cidr)
    }

    fn stats(&self, netns: &Path) -> Result<InterfaceStats, NetworkError> {
        self.links.interface_stats(netns, POD_INTERFACE)
    }
}

/// Checks that a pod CIDR is one this network can use; returns it truncated.
fn usable_cidr(cidr: IpNet) -> Result<Ipv4Net, NetworkError> {
    match cidr {
        IpNet::V4(net) if ipam::pod_range(net).is_some() => Ok(net.trunc()),
        IpNet::V4(_) => Err(NetworkError::InvalidPodCidr {
            cidr,
            reason: "it has no room for a gateway and a pod (at most /30)",
        }),
        IpNet::V6(_) => Err(NetworkError::InvalidPodCidr {
            cidr,
            reason: "IPv6 pod CIDRs are not supported yet",
        }),
    }
}

fn gateway_of(cidr: Ipv4Net) -> Ipv4Addr {
    // Callers hold CIDRs checked by usable_cidr, which have a gateway.
    ipam::gateway(cidr).unwrap_or_else(|| cidr.network())
}
