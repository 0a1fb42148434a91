//! Links, addresses, routes and sysctls: the kernel side of the bridge
//! network, behind [`NodeLinks`] so the bookkeeping above it is tested
//! without root.
//!
//! [`Rtnetlink`] speaks rtnetlink. A netlink socket works on the namespace it
//! was opened in, so node-side requests use a socket opened by the calling
//! thread, and pod-side requests one opened by a short-lived thread that
//! first `setns`-es into the pod's namespace file. The calling thread never
//! changes namespace: it may be a pooled `spawn_blocking` thread.

use std::fs::{self, File};
use std::future::Future;
use std::io;
use std::net::{IpAddr, Ipv4Addr};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

use futures::TryStreamExt;
use nix::sched::CloneFlags;
use rtnetlink::packet_route::address::AddressAttribute;
use rtnetlink::packet_route::link::{InfoData, InfoVeth, LinkAttribute};
use rtnetlink::{
    Handle, LinkBridge, LinkBridgePort, LinkMessageBuilder, LinkUnspec, LinkVeth,
    RouteMessageBuilder,
};

use super::error::errno;
use super::{InterfaceStats, NetworkError};

/// What the node's bridge must look like.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BridgeSpec {
    /// Its name (`skiff0`).
    pub name: String,
    /// The gateway address it holds.
    pub gateway: Ipv4Addr,
    /// The pod CIDR's prefix length.
    pub prefix_len: u8,
    /// MTU given to the bridge when it is created.
    pub mtu: u32,
}

/// One pod's veth pair and the pod side's configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VethSpec {
    /// The node end's name (`veth…`), attached to the bridge.
    pub host_name: String,
    /// The bridge to attach to.
    pub bridge: String,
    /// The pod's network namespace file.
    pub netns: PathBuf,
    /// The pod end's name (`eth0`).
    pub pod_interface: String,
    /// The pod's address.
    pub ip: Ipv4Addr,
    /// Its prefix length.
    pub prefix_len: u8,
    /// The pod's default gateway.
    pub gateway: Ipv4Addr,
    /// The pod end's MAC address.
    pub mac: [u8; 6],
    /// MTU of both ends.
    pub mtu: u32,
}

/// The kernel operations the bridge network needs.
pub trait NodeLinks: Send + Sync + std::fmt::Debug {
    /// Creates the bridge if missing, brings it up, adds the gateway address
    /// when missing, and turns forwarding on.
    fn ensure_bridge(&self, bridge: &BridgeSpec) -> Result<(), NetworkError>;

    /// Creates the veth pair (replacing a stale one of the same name) with
    /// its node end on the bridge, and configures the pod end: address, up,
    /// `lo` up, default route.
    fn attach(&self, veth: &VethSpec) -> Result<(), NetworkError>;

    /// Deletes a node-side link: a pod's veth end (the pod end goes with
    /// it) or, at `skiff killall`, the bridge. Ok when it is already gone.
    fn detach(&self, host_name: &str) -> Result<(), NetworkError>;

    /// Whether an interface of this name exists in the node's namespace.
    fn exists(&self, name: &str) -> Result<bool, NetworkError>;

    /// Counters of `interface` inside the namespace file `netns`.
    fn interface_stats(
        &self,
        netns: &Path,
        interface: &str,
    ) -> Result<InterfaceStats, NetworkError>;
}

/// [`NodeLinks`] over rtnetlink and /proc/sys.
#[derive(Debug, Default, Clone, Copy)]
pub struct Rtnetlink;

impl NodeLinks for Rtnetlink {
    fn ensure_bridge(&self, bridge: &BridgeSpec) -> Result<(), NetworkError> {
        block_on(ensure_bridge(bridge))?;
        // Pods reach the world through the node; DNAT of hostPorts on
        // 127.0.0.1 needs 127/8 sources to be routable out of the bridge
        // (the `input` chain of the nft table drops what this would let in).
        set_sysctl("net/ipv4/ip_forward", "1")?;
        set_sysctl(
            &format!("net/ipv4/conf/{}/route_localnet", bridge.name),
            "1",
        )
    }

    fn attach(&self, veth: &VethSpec) -> Result<(), NetworkError> {
        block_on(attach(veth))
    }

    fn detach(&self, host_name: &str) -> Result<(), NetworkError> {
        block_on(async {
            let node = node_handle().await?;
            delete_link(&node, host_name).await.map(drop)
        })
    }

    fn exists(&self, name: &str) -> Result<bool, NetworkError> {
        block_on(async {
            let node = node_handle().await?;
            Ok(link_index(&node, name)
                .await
                .map_err(netlink("look up", name))?
                .is_some())
        })
    }

    fn interface_stats(
        &self,
        netns: &Path,
        interface: &str,
    ) -> Result<InterfaceStats, NetworkError> {
        block_on(interface_stats(netns, interface))
    }
}

/// The MAC address for an IPv4 address: `0a:58` and the address's bytes, as
/// several CNI plugins do. Stable per address, so neighbours' ARP caches stay
/// right when an address moves to a new pod, and the bridge keeps one
/// address instead of taking the lowest of its ports'.
pub fn mac_for(ip: Ipv4Addr) -> [u8; 6] {
    let [a, b, c, d] = ip.octets();
    [0x0a, 0x58, a, b, c, d]
}

/// `aa:bb:cc:dd:ee:ff`.
pub fn format_mac(mac: [u8; 6]) -> String {
    mac.iter()
        .map(|byte| format!("{byte:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// Runs netlink work on a private single-threaded runtime. Callers block: the
/// runtime calls the network from `spawn_blocking`, never from a task.
fn block_on<T>(work: impl Future<Output = Result<T, NetworkError>>) -> Result<T, NetworkError> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()
        .map_err(|source| NetworkError::NetlinkSocket {
            netns: "node".into(),
            source,
        })?;
    runtime.block_on(work)
}

/// A netlink handle on the calling thread's namespace.
async fn node_handle() -> Result<Handle, NetworkError> {
    let (connection, handle, _) =
        rtnetlink::new_connection().map_err(|source| NetworkError::NetlinkSocket {
            netns: "node".into(),
            source,
        })?;
    tokio::spawn(connection);
    Ok(handle)
}

/// A netlink handle on the namespace file `netns`, opened by a thread that
/// enters it and exits, so no thread is left in the pod's namespace.
async fn pod_handle(netns: &Path) -> Result<Handle, NetworkError> {
    let runtime = tokio::runtime::Handle::current();
    let opened = std::thread::scope(|scope| {
        scope
            .spawn(|| {
                // The socket registers with this runtime's reactor.
                let _entered = runtime.enter();
                let file = File::open(netns).map_err(|source| NetworkError::Netns {
                    path: netns.to_owned(),
                    source,
                })?;
                nix::sched::setns(&file, CloneFlags::CLONE_NEWNET).map_err(|errno| {
                    NetworkError::Netns {
                        path: netns.to_owned(),
                        source: io::Error::from(errno),
                    }
                })?;
                let (connection, handle, _) =
                    rtnetlink::new_connection().map_err(|source| NetworkError::NetlinkSocket {
                        netns: netns.display().to_string(),
                        source,
                    })?;
                Ok((connection, handle))
            })
            .join()
    });
    let (connection, handle) = opened.map_err(|_| NetworkError::Netns {
        path: netns.to_owned(),
        source: io::Error::other("the thread entering the namespace panicked"),
    })??;
    tokio::spawn(connection);
    Ok(handle)
}

fn netlink(op: &'static str, interface: &str) -> impl FnOnce(rtnetlink::Error) -> NetworkError {
    let interface = interface.to_owned();
    move |source| NetworkError::Netlink {
        op,
        interface,
        source,
    }
}

async fn link_index(handle: &Handle, name: &str) -> Result<Option<u32>, rtnetlink::Error> {
    let mut links = handle.link().get().match_name(name.to_owned()).execute();
    match links.try_next().await {
        Ok(link) => Ok(link.map(|link| link.header.index)),
        Err(e) if errno(&e) == Some(libc::ENODEV) => Ok(None),
        Err(e) => Err(e),
    }
}

/// Deletes a link by name; false when there was none.
async fn delete_link(handle: &Handle, name: &str) -> Result<bool, NetworkError> {
    let Some(index) = link_index(handle, name)
        .await
        .map_err(netlink("look up", name))?
    else {
        return Ok(false);
    };
    match handle.link().del(index).execute().await {
        Ok(()) => Ok(true),
        Err(e) if errno(&e) == Some(libc::ENODEV) => Ok(false),
        Err(e) => Err(netlink("delete", name)(e)),
    }
}

async fn set_up(handle: &Handle, index: u32, name: &str) -> Result<(), NetworkError> {
    handle
        .link()
        .set(LinkUnspec::new_with_index(index).up().build())
        .execute()
        .await
        .map_err(netlink("set up", name))
}

async fn ensure_bridge(spec: &BridgeSpec) -> Result<(), NetworkError> {
    let node = node_handle().await?;
    let name = spec.name.as_str();
    let index = match link_index(&node, name)
        .await
        .map_err(netlink("look up", name))?
    {
        Some(index) => index,
        None => {
            let bridge = LinkBridge::new(name)
                .mtu(spec.mtu)
                .address(mac_for(spec.gateway).to_vec())
                .build();
            match node.link().add(bridge).execute().await {
                Ok(()) => {}
                // Another thread created it first.
                Err(e) if errno(&e) == Some(libc::EEXIST) => {}
                Err(e) => return Err(netlink("create bridge", name)(e)),
            }
            tracing::info!(bridge = name, gateway = %spec.gateway, "created the pod bridge");
            link_index(&node, name)
                .await
                .map_err(netlink("look up", name))?
                .ok_or_else(|| NetworkError::InterfaceNotFound {
                    interface: name.to_owned(),
                    netns: "node".into(),
                })?
        }
    };
    set_up(&node, index, name).await?;

    let mut addresses = node.address().get().set_link_index_filter(index).execute();
    while let Some(address) = addresses
        .try_next()
        .await
        .map_err(netlink("list addresses of", name))?
    {
        let holds_gateway = address.attributes.iter().any(|attribute| {
            matches!(attribute, AddressAttribute::Address(IpAddr::V4(ip)) if *ip == spec.gateway)
        });
        if holds_gateway && address.header.prefix_len == spec.prefix_len {
            return Ok(());
        }
    }
    match node
        .address()
        .add(index, spec.gateway.into(), spec.prefix_len)
        .execute()
        .await
    {
        Ok(()) => Ok(()),
        Err(e) if errno(&e) == Some(libc::EEXIST) => Ok(()),
        Err(e) => Err(netlink("add the gateway address to", name)(e)),
    }
}

async fn attach(spec: &VethSpec) -> Result<(), NetworkError> {
    let netns = File::open(&spec.netns).map_err(|source| NetworkError::Netns {
        path: spec.netns.clone(),
        source,
    })?;
    let node = node_handle().await?;
    let host = spec.host_name.as_str();
    if delete_link(&node, host).await? {
        tracing::debug!(veth = host, "replaced a stale veth pair");
    }
    let bridge = link_index(&node, &spec.bridge)
        .await
        .map_err(netlink("look up", &spec.bridge))?
        .ok_or_else(|| NetworkError::InterfaceNotFound {
            interface: spec.bridge.clone(),
            netns: "node".into(),
        })?;

    // The pod end is born inside the pod's namespace with its final name,
    // so no temporary name can clash with another pod's.
    let peer = LinkMessageBuilder::<LinkUnspec>::new()
        .name(spec.pod_interface.clone())
        .mtu(spec.mtu)
        .address(spec.mac.to_vec())
        .setns_by_fd(netns.as_raw_fd())
        .build();
    let pair = LinkVeth::new(host, &spec.pod_interface)
        .mtu(spec.mtu)
        .controller(bridge)
        .up()
        .set_info_data(InfoData::Veth(InfoVeth::Peer(peer)))
        .build();
    node.link()
        .add(pair)
        .execute()
        .await
        .map_err(netlink("create veth pair", host))?;
    drop(netns);
    // With br_netfilter loaded, a hairpin reply (a pod reaching itself
    // through a hostPort) is de-NATed in the bridge and sent back out of the
    // port it came in by, which the bridge refuses unless the port hairpins.
    let host_index = link_index(&node, host)
        .await
        .map_err(netlink("look up", host))?
        .ok_or_else(|| NetworkError::InterfaceNotFound {
            interface: host.to_owned(),
            netns: "node".into(),
        })?;
    node.link()
        .set_port(LinkBridgePort::new(host_index).hairpin(true).build())
        .execute()
        .await
        .map_err(netlink("turn hairpin mode on for", host))?;

    let pod = pod_handle(&spec.netns).await?;
    let where_ = format!("{} in {}", spec.pod_interface, spec.netns.display());
    let lo = link_index(&pod, "lo")
        .await
        .map_err(netlink("look up", "lo"))?
        .ok_or_else(|| NetworkError::InterfaceNotFound {
            interface: "lo".into(),
            netns: spec.netns.display().to_string(),
        })?;
    set_up(&pod, lo, "lo").await?;
    let eth = link_index(&pod, &spec.pod_interface)
        .await
        .map_err(netlink("look up", &where_))?
        .ok_or_else(|| NetworkError::InterfaceNotFound {
            interface: spec.pod_interface.clone(),
            netns: spec.netns.display().to_string(),
        })?;
    set_up(&pod, eth, &where_).await?;
    pod.address()
        .add(eth, spec.ip.into(), spec.prefix_len)
        .replace()
        .execute()
        .await
        .map_err(netlink("add the pod address to", &where_))?;
    pod.route()
        .add(
            RouteMessageBuilder::<Ipv4Addr>::new()
                .gateway(spec.gateway)
                .output_interface(eth)
                .build(),
        )
        .replace()
        .execute()
        .await
        .map_err(netlink("add the default route via", &where_))
}

async fn interface_stats(netns: &Path, interface: &str) -> Result<InterfaceStats, NetworkError> {
    let pod = pod_handle(netns).await?;
    let where_ = format!("{interface} in {}", netns.display());
    let mut links = pod.link().get().match_name(interface.to_owned()).execute();
    let not_found = || NetworkError::InterfaceNotFound {
        interface: interface.to_owned(),
        netns: netns.display().to_string(),
    };
    let link = match links.try_next().await {
        Ok(Some(link)) => link,
        Ok(None) => return Err(not_found()),
        Err(e) if errno(&e) == Some(libc::ENODEV) => return Err(not_found()),
        Err(e) => return Err(netlink("read counters of", &where_)(e)),
    };
    let mut stats = InterfaceStats {
        name: interface.to_owned(),
        ..InterfaceStats::default()
    };
    for attribute in &link.attributes {
        if let LinkAttribute::Stats64(counters) = attribute {
            stats.rx_bytes = counters.rx_bytes;
            stats.rx_errors = counters.rx_errors;
            stats.tx_bytes = counters.tx_bytes;
            stats.tx_errors = counters.tx_errors;
        }
    }
    Ok(stats)
}

/// Writes a sysctl of the calling thread's namespace (files under
/// /proc/sys/net belong to the namespace of whoever opens them).
fn set_sysctl(name: &str, value: &str) -> Result<(), NetworkError> {
    let path = Path::new("/proc/sys").join(name);
    match fs::read_to_string(&path) {
        Ok(current) if current.trim() == value => return Ok(()),
        Ok(_) => {}
        Err(source) => return Err(NetworkError::Sysctl { path, source }),
    }
    fs::write(&path, value).map_err(|source| NetworkError::Sysctl { path, source })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn macs_derive_from_addresses() {
        let mac = mac_for("10.42.0.17".parse().unwrap());
        assert_eq!(format_mac(mac), "0a:58:0a:2a:00:11");
    }
}
