//! The pod network on one node, without CNI binaries.
//!
//! [`PodNetwork`] is what the runtime calls around a sandbox's life: `setup`
//! when RunPodSandbox has pinned the pod's network namespace, `teardown` when
//! the sandbox is stopped or removed, `status` for CRI's `NetworkReady`
//! condition, `set_pod_cidr` for UpdateRuntimeConfig and `stats` for
//! PodSandboxStats. Every call blocks (run it under `spawn_blocking`): it
//! opens netlink sockets inside the pod's namespace from a short-lived
//! thread, and runs the `nft` binary.
//!
//! Only two namespaces are ever touched: the one the *calling thread* is in
//! (the node's) and the pod namespace named by the call. Tests and several
//! runtimes on one machine therefore each bring their own node namespace.
//!
//! [`BridgeNetwork`] is the built-in implementation: bridge `skiff0` holding
//! the gateway address, one veth pair per pod, host-local style IPAM on disk
//! and one nftables table (`inet skiff`) for masquerade and hostPorts.
//! [`CniNetwork`] marks the seam where a CNI plugin chain would plug in; it
//! refuses to be built for now.
//!
//! # Layout
//!
//! - [`bridge`]: [`BridgeNetwork`], the bookkeeping around one pod: IP,
//!   links, hostPort rules, with rollback when a step fails.
//! - [`ipam`]: addresses from the pod CIDR, one file per allocated IP.
//! - [`links`]: the [`NodeLinks`] seam and its rtnetlink implementation
//!   (bridge, veth pairs, addresses, routes, sysctls, interface counters).
//! - [`nft`]: the [`NftRunner`] seam and the `inet skiff` ruleset.
//! - [`cni`]: [`CniNetwork`], the seam for CNI plugin chains.
//! - [`fake`]: [`FakeNetwork`], an in-memory [`PodNetwork`] for unit tests.
//! - [`error`]: [`NetworkError`], naming what failed and on what.

pub mod bridge;
pub mod cni;
pub mod error;
pub mod fake;
pub mod ipam;
pub mod links;
pub mod nft;

#[cfg(test)]
mod tests;

use std::fmt;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

pub use bridge::{BridgeConfig, BridgeNetwork};
pub use cni::CniNetwork;
pub use error::NetworkError;
pub use fake::FakeNetwork;
pub use links::{NodeLinks, Rtnetlink};
pub use nft::{NftBinary, NftRunner};

/// A pod network: attaches pod network namespaces to the node's network.
///
/// Every method blocks; callers on a tokio runtime use `spawn_blocking`.
pub trait PodNetwork: Send + Sync + fmt::Debug {
    /// Attaches the pod's network namespace (a bind-mounted namespace file):
    /// veth pair, address, routes and hostPorts. Calling it again for the
    /// same sandbox gives the same address and rebuilds the links.
    fn setup(&self, pod: &PodAttachment) -> Result<PodAddresses, NetworkError>;

    /// Undoes `setup`: hostPort rules, the veth pair and the address. Fine to
    /// call when any of them (or the namespace itself) is already gone.
    fn teardown(&self, pod: &PodAttachment) -> Result<(), NetworkError>;

    /// The `NetworkReady` condition as CRI's Status reports it.
    fn status(&self) -> NetworkStatus;

    /// Sets the node's pod CIDR (UpdateRuntimeConfig). Pods holding
    /// addresses from an earlier CIDR keep them; new pods use the new one.
    fn set_pod_cidr(&self, cidr: ipnet::IpNet) -> Result<(), NetworkError>;

    /// Counters of the pod's `eth0`, for PodSandboxStats.
    fn stats(&self, netns: &Path) -> Result<InterfaceStats, NetworkError>;
}

/// What the network needs to know about a pod.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodAttachment {
    /// The sandbox ID: owner of the address and of the hostPort rules.
    pub sandbox_id: String,
    /// The pod's network namespace file (a bind mount of `/proc/<pid>/ns/net`).
    pub netns: PathBuf,
    /// The pod's name, for logs.
    pub name: String,
    /// The pod's namespace, for logs.
    pub namespace: String,
    /// Ports to forward from the node into the pod.
    pub port_mappings: Vec<PortMapping>,
}

/// One hostPort: traffic to the node's `host_port` goes to the pod's
/// `container_port`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PortMapping {
    /// TCP, UDP or SCTP.
    pub protocol: Protocol,
    /// The port inside the pod.
    pub container_port: u16,
    /// The port on the node; 0 means no forwarding (kubelet sends those too).
    pub host_port: u16,
    /// Only traffic to this node address is forwarded; `None` (or an
    /// unspecified address) means every local address, 127.0.0.1 included.
    pub host_ip: Option<IpAddr>,
}

/// A transport protocol of a port mapping.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Protocol {
    /// TCP.
    Tcp,
    /// UDP.
    Udp,
    /// SCTP.
    Sctp,
}

impl Protocol {
    /// The protocol's name as nftables spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
            Protocol::Sctp => "sctp",
        }
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Display for PortMapping {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.host_ip.filter(|ip| !ip.is_unspecified()) {
            Some(ip) => write!(f, "{}/{ip}:{}", self.protocol, self.host_port)?,
            None => write!(f, "{}/*:{}", self.protocol, self.host_port)?,
        }
        write!(f, "->{}", self.container_port)
    }
}

/// Where a pod ended up on the network.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodAddresses {
    /// The pod IP (shown in PodSandboxStatus).
    pub ip: IpAddr,
    /// Prefix length of the pod CIDR the IP came from.
    pub prefix_len: u8,
    /// The default gateway inside the pod (the bridge's address).
    pub gateway: IpAddr,
    /// The pod's interface (`eth0`).
    pub interface: String,
    /// The MAC address of the pod's interface, `aa:bb:cc:dd:ee:ff`.
    pub mac: String,
    /// The node-side end of the pod's veth pair.
    pub host_interface: String,
}

/// The `NetworkReady` runtime condition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetworkStatus {
    /// Whether pods can be attached now.
    pub ready: bool,
    /// A CamelCase reason when not ready (empty when ready).
    pub reason: String,
    /// A human-readable explanation when not ready (empty when ready).
    pub message: String,
}

impl NetworkStatus {
    /// The condition when all is well.
    pub fn ready() -> Self {
        NetworkStatus {
            ready: true,
            reason: String::new(),
            message: String::new(),
        }
    }

    /// The condition when pods cannot be attached.
    pub fn not_ready(reason: &str, message: impl Into<String>) -> Self {
        NetworkStatus {
            ready: false,
            reason: reason.to_owned(),
            message: message.into(),
        }
    }
}

/// Counters of one interface, as CRI's `NetworkInterfaceUsage` wants them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InterfaceStats {
    /// The interface's name (`eth0`).
    pub name: String,
    /// Bytes received.
    pub rx_bytes: u64,
    /// Receive errors.
    pub rx_errors: u64,
    /// Bytes sent.
    pub tx_bytes: u64,
    /// Transmit errors.
    pub tx_errors: u64,
}
