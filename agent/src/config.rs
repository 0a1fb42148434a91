//! The agent's configuration: where the node runtime keeps its state, who
//! the node is, and how the kubelet serves; plus the parsers for k3s's
//! `--node-label key=value` and `--node-taint key=value:Effect`, and the
//! node IP k3s picks when none is given (the default route's interface).

use std::collections::BTreeMap;
use std::ffi::CStr;
use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;

use k8s_openapi::api::core::v1::Taint;
use skiff_cri::node::NodeConfig;
use skiff_images::gc::GcPolicy;

use crate::kubelet::KubeletConfig;

/// How `run` runs the node: the node runtime and the kubelet.
#[derive(Debug, Clone)]
pub struct AgentConfig {
    /// The node's name.
    pub node_name: String,
    /// Skiff's data directory (`/var/lib/skiff`).
    pub data_dir: PathBuf,
    /// Volatile state: pod directories, bundles, shim sockets (`/run/skiff`).
    pub run_dir: PathBuf,
    /// The CRI socket served for crictl (`/run/skiff/cri.sock`).
    pub cri_socket: PathBuf,
    /// The node's InternalIP (see [`default_node_ip`]).
    pub node_ip: IpAddr,
    /// The kubelet API's port (10250; 0 lets the kernel pick one, which the
    /// node then reports).
    pub kubelet_port: u16,
    /// Cluster DNS servers for pods' resolv.conf (10.43.0.10).
    pub cluster_dns: Vec<IpAddr>,
    /// The cluster domain (`cluster.local`).
    pub cluster_domain: String,
    /// Labels the node registers with, the server's roles included.
    pub node_labels: BTreeMap<String, String>,
    /// Taints the node registers with.
    pub node_taints: Vec<Taint>,
    /// `registries.yaml` (`/etc/skiff/registries.yaml`); missing is fine.
    pub registries: PathBuf,
    /// The pod bridge (`skiff0`).
    pub bridge: String,
    /// Where the exec/attach/port-forward streaming server listens
    /// (127.0.0.1:0).
    pub streaming_address: SocketAddr,
    /// The binary re-executed as the per-pod shim (this skiff).
    pub shim_binary: PathBuf,
}

impl AgentConfig {
    /// The node runtime's configuration (as `skiff runtime` would have it).
    /// The pod CIDR is not known yet: the kubelet passes the node's
    /// `spec.podCIDR` through CRI UpdateRuntimeConfig once assigned.
    pub fn node_config(&self) -> NodeConfig {
        NodeConfig {
            data_dir: self.data_dir.clone(),
            cri_socket: self.cri_socket.clone(),
            registries: self.registries.clone(),
            gc: GcPolicy::default(),
            run_dir: self.run_dir.clone(),
            bridge: self.bridge.clone(),
            pod_cidr: None,
            streaming_address: self.streaming_address,
            shim_binary: self.shim_binary.clone(),
        }
    }

    /// The kubelet's configuration; its directory is
    /// `<data-dir>/agent/kubelet`.
    pub fn kubelet_config(&self) -> KubeletConfig {
        KubeletConfig {
            node_name: self.node_name.clone(),
            node_ip: self.node_ip,
            kubelet_port: self.kubelet_port,
            root_dir: self.data_dir.join("agent").join("kubelet"),
            cluster_dns: self.cluster_dns.clone(),
            cluster_domain: self.cluster_domain.clone(),
            node_labels: self.node_labels.clone(),
            node_taints: self.node_taints.clone(),
            skiff_version: env!("CARGO_PKG_VERSION").to_owned(),
        }
    }
}

/// A flag value that cannot be used, or a node IP that cannot be found.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// `--node-label` is not `key=value`.
    #[error("invalid node label {0:?}: expected key=value")]
    Label(String),
    /// `--node-taint` is not `key[=value]:Effect`.
    #[error("invalid taint spec: {spec}, {reason}")]
    Taint {
        /// The flag's value.
        spec: String,
        /// What is wrong, in kubelet's words.
        reason: String,
    },
    /// The routing table could not be read.
    #[error("reading the routing table /proc/net/route: {0}")]
    Routes(io::Error),
    /// No IPv4 default route: `--node-ip` is needed.
    #[error("no default route found: set --node-ip")]
    NoDefaultRoute,
    /// The interfaces' addresses could not be listed.
    #[error("listing network interface addresses: {0}")]
    Interfaces(io::Error),
    /// The default route's interface has no IPv4 address.
    #[error("the default route's interface {0} has no IPv4 address: set --node-ip")]
    NoAddress(String),
}

/// Parses `--node-label key=value` (the value may be empty).
pub fn parse_node_label(text: &str) -> Result<(String, String), ConfigError> {
    match text.split_once('=') {
        Some((key, value)) if !key.trim().is_empty() => {
            Ok((key.trim().to_owned(), value.trim().to_owned()))
        }
        _ => Err(ConfigError::Label(text.to_owned())),
    }
}

/// Parses `--node-taint key=value:Effect` (or `key:Effect`), as kubelet's
/// `--register-with-taints` reads it.
pub fn parse_node_taint(text: &str) -> Result<Taint, ConfigError> {
    let invalid = |reason: &str| ConfigError::Taint {
        spec: text.to_owned(),
        reason: reason.to_owned(),
    };
    let (key_value, effect) = text
        .rsplit_once(':')
        .ok_or_else(|| invalid("effect is required"))?;
    if !matches!(effect, "NoSchedule" | "PreferNoSchedule" | "NoExecute") {
        return Err(invalid(&format!(
            "invalid taint effect: {effect}, unsupported taint effect"
        )));
    }
    let (key, value) = match key_value.split_once('=') {
        Some((key, value)) => (key, Some(value.to_owned())),
        None => (key_value, None),
    };
    if key.is_empty() {
        return Err(invalid("key is required"));
    }
    Ok(Taint {
        key: key.to_owned(),
        value,
        effect: effect.to_owned(),
        time_added: None,
    })
}

/// The node IP k3s picks without `--node-ip`: the first IPv4 address of
/// the interface holding the default route.
pub fn default_node_ip() -> Result<IpAddr, ConfigError> {
    let routes = std::fs::read_to_string("/proc/net/route").map_err(ConfigError::Routes)?;
    let interface = default_route_interface(&routes).ok_or(ConfigError::NoDefaultRoute)?;
    match interface_ipv4(&interface).map_err(ConfigError::Interfaces)? {
        Some(ip) => Ok(IpAddr::V4(ip)),
        None => Err(ConfigError::NoAddress(interface)),
    }
}

/// The interface of the IPv4 default route with the lowest metric, from
/// `/proc/net/route`'s text.
fn default_route_interface(table: &str) -> Option<String> {
    const RTF_UP: u32 = 0x1;
    table
        .lines()
        .skip(1)
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let [iface, destination, _gateway, flags, _, _, metric, mask, ..] = fields[..] else {
                return None;
            };
            let flags = u32::from_str_radix(flags, 16).ok()?;
            let metric: u32 = metric.parse().ok()?;
            (destination == "00000000" && mask == "00000000" && flags & RTF_UP != 0)
                .then(|| (metric, iface.to_owned()))
        })
        .min()
        .map(|(_, iface)| iface)
}

/// The first IPv4 address of `name`.
fn interface_ipv4(name: &str) -> io::Result<Option<Ipv4Addr>> {
    let mut list: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: getifaddrs writes the head of a list it allocates; it is
    // freed below with freeifaddrs, once.
    if unsafe { libc::getifaddrs(&mut list) } != 0 {
        return Err(io::Error::last_os_error());
    }
    let mut found = None;
    let mut cursor = list;
    while !cursor.is_null() {
        // SAFETY: `cursor` is a node of the list getifaddrs returned, not
        // freed until after the loop.
        let entry = unsafe { &*cursor };
        cursor = entry.ifa_next;
        if entry.ifa_addr.is_null() || entry.ifa_name.is_null() {
            continue;
        }
        // SAFETY: ifa_name is a NUL-terminated string owned by the list.
        let entry_name = unsafe { CStr::from_ptr(entry.ifa_name) };
        // SAFETY: ifa_addr points to a sockaddr whose family can be read.
        let family = unsafe { (*entry.ifa_addr).sa_family };
        if entry_name.to_bytes() == name.as_bytes() && i32::from(family) == libc::AF_INET {
            // SAFETY: an AF_INET address is a sockaddr_in.
            let address = unsafe { &*(entry.ifa_addr as *const libc::sockaddr_in) };
            found = Some(Ipv4Addr::from(u32::from_be(address.sin_addr.s_addr)));
            break;
        }
    }
    // SAFETY: `list` came from getifaddrs and is freed exactly once.
    unsafe { libc::freeifaddrs(list) };
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_key_value() {
        assert_eq!(
            parse_node_label("zone=a").unwrap(),
            ("zone".to_owned(), "a".to_owned())
        );
        assert_eq!(parse_node_label("flag=").unwrap().1, "");
        assert!(parse_node_label("nokey").is_err());
        assert!(parse_node_label("=x").is_err());
    }

    #[test]
    fn taints_are_read_as_kubelet_reads_them() {
        let taint = parse_node_taint("dedicated=gpu:NoSchedule").unwrap();
        assert_eq!(
            (
                taint.key.as_str(),
                taint.value.as_deref(),
                taint.effect.as_str()
            ),
            ("dedicated", Some("gpu"), "NoSchedule")
        );
        let taint = parse_node_taint("only:NoExecute").unwrap();
        assert_eq!((taint.key.as_str(), taint.value), ("only", None));
        let err = parse_node_taint("a=b:Sometimes").unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid taint spec: a=b:Sometimes, invalid taint effect: Sometimes, unsupported taint effect"
        );
        assert!(parse_node_taint("a=b").is_err());
        assert!(parse_node_taint("=b:NoSchedule").is_err());
    }

    #[test]
    fn the_default_route_with_the_lowest_metric_wins() {
        let table = "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n\
                     wlan0\t00000000\t0101A8C0\t0003\t0\t0\t600\t00000000\t0\t0\t0\n\
                     eth0\t00000000\t017AA8C0\t0003\t0\t0\t100\t00000000\t0\t0\t0\n\
                     eth0\t007AA8C0\t00000000\t0001\t0\t0\t100\t00FFFFFF\t0\t0\t0\n";
        assert_eq!(default_route_interface(table).as_deref(), Some("eth0"));
        let no_default = "Iface\tDestination\tGateway\tFlags\tRefCnt\tUse\tMetric\tMask\n\
                          eth0\t007AA8C0\t00000000\t0001\t0\t0\t100\t00FFFFFF\n";
        assert_eq!(default_route_interface(no_default), None);
    }

    #[test]
    fn loopback_has_an_ipv4_address() {
        assert_eq!(interface_ipv4("lo").unwrap(), Some(Ipv4Addr::LOCALHOST));
        assert_eq!(interface_ipv4("no-such-interface0").unwrap(), None);
    }
}
