//! [`FakeNetwork`]: a [`PodNetwork`] in memory, for tests of the code that
//! drives a pod network (no root, no kernel state).

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;
use std::sync::{Mutex, MutexGuard};

use ipnet::{IpNet, Ipv4Net};

use super::ipam;
use super::{InterfaceStats, NetworkError, NetworkStatus, PodAddresses, PodAttachment, PodNetwork};

/// Hands out addresses in order and remembers who holds them.
#[derive(Debug, Default)]
pub struct FakeNetwork {
    state: Mutex<FakeState>,
}

#[derive(Debug, Default)]
struct FakeState {
    pod_cidr: Option<Ipv4Net>,
    pods: BTreeMap<String, PodAddresses>,
    next: u32,
}

impl FakeNetwork {
    /// A fake network with this pod CIDR (IPv4 only, like the real one).
    pub fn new(pod_cidr: Option<IpNet>) -> Self {
        let network = FakeNetwork::default();
        if let Some(IpNet::V4(cidr)) = pod_cidr {
            network.lock().pod_cidr = Some(cidr.trunc());
        }
        network
    }

    /// The sandboxes holding an address, in ID order.
    pub fn attached(&self) -> Vec<String> {
        self.lock().pods.keys().cloned().collect()
    }

    fn lock(&self) -> MutexGuard<'_, FakeState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl PodNetwork for FakeNetwork {
    fn setup(&self, pod: &PodAttachment) -> Result<PodAddresses, NetworkError> {
        let mut state = self.lock();
        if let Some(held) = state.pods.get(&pod.sandbox_id) {
            return Ok(held.clone());
        }
        let cidr = state.pod_cidr.ok_or(NetworkError::NoPodCidr)?;
        let (first, last) = ipam::pod_range(cidr).ok_or(NetworkError::InvalidPodCidr {
            cidr: IpNet::V4(cidr),
            reason: "it has no room for a gateway and a pod (at most /30)",
        })?;
        let taken: Vec<IpAddr> = state.pods.values().map(|p| p.ip).collect();
        let size = u32::from(last) - u32::from(first) + 1;
        let free = (0..size)
            .map(|step| Ipv4Addr::from(u32::from(first) + (state.next + step) % size))
            .find(|ip| !taken.contains(&IpAddr::V4(*ip)))
            .ok_or_else(|| NetworkError::AddressesExhausted {
                cidr: IpNet::V4(cidr),
                dir: "(fake)".into(),
            })?;
        state.next = u32::from(free) - u32::from(first) + 1;
        let addresses = PodAddresses {
            ip: IpAddr::V4(free),
            prefix_len: cidr.prefix_len(),
            gateway: IpAddr::V4(ipam::gateway(cidr).unwrap_or(cidr.network())),
            interface: "eth0".into(),
            mac: super::links::format_mac(super::links::mac_for(free)),
            host_interface: super::BridgeNetwork::host_interface(&pod.sandbox_id),
        };
        state.pods.insert(pod.sandbox_id.clone(), addresses.clone());
        Ok(addresses)
    }

    fn teardown(&self, pod: &PodAttachment) -> Result<(), NetworkError> {
        self.lock().pods.remove(&pod.sandbox_id);
        Ok(())
    }

    fn status(&self) -> NetworkStatus {
        match self.lock().pod_cidr {
            Some(_) => NetworkStatus::ready(),
            None => NetworkStatus::not_ready("NoPodCIDR", "no pod CIDR yet"),
        }
    }

    fn set_pod_cidr(&self, cidr: IpNet) -> Result<(), NetworkError> {
        match cidr {
            IpNet::V4(net) => {
                self.lock().pod_cidr = Some(net.trunc());
                Ok(())
            }
            IpNet::V6(_) => Err(NetworkError::InvalidPodCidr {
                cidr,
                reason: "IPv6 pod CIDRs are not supported yet",
            }),
        }
    }

    fn stats(&self, _netns: &Path) -> Result<InterfaceStats, NetworkError> {
        Ok(InterfaceStats {
            name: "eth0".into(),
            ..InterfaceStats::default()
        })
    }
}
