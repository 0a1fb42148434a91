//! Service cluster IPs (from the service CIDR, 10.43.0.0/16 by default as
//! in k3s) and node ports (30000-32767): allocated on create, kept on
//! update, released on delete. The allocations are rebuilt from the stored
//! services at start.

use std::collections::BTreeSet;
use std::net::Ipv4Addr;
use std::sync::Mutex;

use ipnet::Ipv4Net;
use serde_json::{Value, json};

use super::Api;
use super::error::{ApiError, StatusCause};
use super::object::{meta_str, random_bytes};
use super::resources::ResourceType;

/// The node port range.
pub const NODE_PORTS: std::ops::RangeInclusive<u16> = 30000..=32767;

#[derive(Debug, Default)]
struct Allocated {
    ips: BTreeSet<Ipv4Addr>,
    ports: BTreeSet<u16>,
}

/// Cluster IPs and node ports in use.
#[derive(Debug)]
pub struct ServiceAllocator {
    cidr: Ipv4Net,
    allocated: Mutex<Allocated>,
}

impl ServiceAllocator {
    /// An allocator over `cidr`.
    pub fn new(cidr: Ipv4Net) -> Self {
        Self {
            cidr,
            allocated: Mutex::new(Allocated::default()),
        }
    }

    /// The service CIDR.
    pub fn cidr(&self) -> Ipv4Net {
        self.cidr
    }

    /// The first address of the range: the `kubernetes` service's.
    pub fn first_ip(&self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.cidr.network()) + 1)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Allocated> {
        self.allocated.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Marks every stored service's IP and node ports as used.
    pub fn load(&self, api: &Api) -> Result<(), ApiError> {
        let Some(rt) = api.resources.find("", "v1", "services") else {
            return Ok(());
        };
        let page = api.store.list(&rt, "", 0, None, 0)?;
        let mut allocated = self.lock();
        for svc in &page.items {
            for ip in cluster_ips(svc) {
                allocated.ips.insert(ip);
            }
            for port in node_ports(svc) {
                allocated.ports.insert(port);
            }
        }
        Ok(())
    }

    /// Allocates (create) or keeps (update) the service's cluster IP and
    /// node ports; a taken or out-of-range address or port is a 422.
    pub fn admit(
        &self,
        rt: &ResourceType,
        svc: &mut Value,
        old: Option<&Value>,
    ) -> Result<(), ApiError> {
        let name = meta_str(svc, "name").to_owned();
        let invalid = |field: &str, message: String| {
            ApiError::invalid(
                &rt.group,
                &rt.kind,
                &name,
                format!("Service \"{name}\" is invalid: {field}: {message}"),
                &[StatusCause {
                    reason: "FieldValueInvalid".into(),
                    message,
                    field: field.into(),
                }],
            )
        };
        let kind = svc["spec"]["type"]
            .as_str()
            .unwrap_or("ClusterIP")
            .to_owned();
        let mut allocated = self.lock();
        let mut taken_ip = None;
        if kind != "ExternalName" {
            let asked = svc["spec"]["clusterIP"].as_str().unwrap_or("").to_owned();
            let old_ip = old
                .and_then(|o| o["spec"]["clusterIP"].as_str())
                .unwrap_or("")
                .to_owned();
            let ip = if !old_ip.is_empty() && (asked.is_empty() || asked == old_ip) {
                old_ip
            } else if asked == "None" {
                asked
            } else if asked.is_empty() {
                let ip = self.next_ip(&allocated).ok_or_else(|| {
                    ApiError::internal(format!(
                        "failed to allocate a serviceIP: range {} is full",
                        self.cidr
                    ))
                })?;
                allocated.ips.insert(ip);
                taken_ip = Some(ip);
                ip.to_string()
            } else {
                let ip: Ipv4Addr = asked.parse().map_err(|_| {
                    invalid(
                        "spec.clusterIPs",
                        format!("Invalid value: []string{{{asked:?}}}: must be a valid IP address"),
                    )
                })?;
                if !self.cidr.contains(&ip) {
                    return Err(invalid(
                        "spec.clusterIPs",
                        format!(
                            "Invalid value: []string{{\"{ip}\"}}: failed to allocate IP {ip}: the provided IP ({ip}) is not in the valid range. The range of valid IPs is {}",
                            self.cidr
                        ),
                    ));
                }
                if allocated.ips.contains(&ip) {
                    return Err(invalid(
                        "spec.clusterIPs",
                        format!(
                            "Invalid value: []string{{\"{ip}\"}}: failed to allocate IP {ip}: provided IP is already allocated"
                        ),
                    ));
                }
                allocated.ips.insert(ip);
                taken_ip = Some(ip);
                ip.to_string()
            };
            svc["spec"]["clusterIP"] = json!(ip);
            svc["spec"]["clusterIPs"] = json!([ip]);
        }
        if matches!(kind.as_str(), "NodePort" | "LoadBalancer") {
            let old_ports: Vec<(i64, String, u16)> = old
                .and_then(|o| o["spec"]["ports"].as_array())
                .into_iter()
                .flatten()
                .filter_map(|p| {
                    Some((
                        p["port"].as_i64()?,
                        p["protocol"].as_str().unwrap_or("TCP").to_owned(),
                        u16::try_from(p["nodePort"].as_i64()?).ok()?,
                    ))
                })
                .collect();
            let mut taken_now = Vec::new();
            let ports = svc["spec"]["ports"].as_array_mut();
            for (i, port) in ports.into_iter().flatten().enumerate() {
                let field = format!("spec.ports[{i}].nodePort");
                let mine = old_ports.iter().find(|(p, proto, _)| {
                    Some(*p) == port["port"].as_i64()
                        && proto == port["protocol"].as_str().unwrap_or("TCP")
                });
                let node_port = match port["nodePort"].as_i64() {
                    Some(asked) if mine.is_some_and(|(_, _, n)| i64::from(*n) == asked) => continue,
                    Some(asked) => {
                        let Some(asked) =
                            u16::try_from(asked).ok().filter(|p| NODE_PORTS.contains(p))
                        else {
                            for p in &taken_now {
                                allocated.ports.remove(p);
                            }
                            return Err(invalid(
                                &field,
                                format!(
                                    "Invalid value: {asked}: provided port is not in the valid range. The range of valid ports is 30000-32767"
                                ),
                            ));
                        };
                        if allocated.ports.contains(&asked) {
                            for p in &taken_now {
                                allocated.ports.remove(p);
                            }
                            return Err(invalid(
                                &field,
                                format!(
                                    "Invalid value: {asked}: provided port is already allocated"
                                ),
                            ));
                        }
                        asked
                    }
                    None => match mine {
                        Some((_, _, n)) => {
                            port["nodePort"] = json!(n);
                            continue;
                        }
                        None => match next_port(&allocated) {
                            Some(p) => p,
                            None => {
                                return Err(ApiError::internal(
                                    "failed to allocate a nodePort: range is full",
                                ));
                            }
                        },
                    },
                };
                allocated.ports.insert(node_port);
                taken_now.push(node_port);
                port["nodePort"] = json!(node_port);
            }
        }
        drop(allocated);
        let _ = taken_ip;
        Ok(())
    }

    fn next_ip(&self, allocated: &Allocated) -> Option<Ipv4Addr> {
        let base = u32::from(self.cidr.network());
        let size = u32::from(self.cidr.broadcast()) - base;
        if size < 3 {
            return None;
        }
        // Random start as kube-apiserver; .0, .1 (kubernetes) and the
        // broadcast address are never handed out.
        let start = u32::from_le_bytes(random_bytes::<4>()) % (size - 2);
        (0..size - 2)
            .map(|i| Ipv4Addr::from(base + 2 + (start + i) % (size - 2)))
            .find(|ip| !allocated.ips.contains(ip))
    }

    /// Frees a deleted (or never stored) service's IP and node ports.
    pub fn release(&self, svc: &Value) {
        let mut allocated = self.lock();
        for ip in cluster_ips(svc) {
            allocated.ips.remove(&ip);
        }
        for port in node_ports(svc) {
            allocated.ports.remove(&port);
        }
    }

    /// Frees what an update stopped using.
    pub fn updated(&self, old: &Value, new: &Value) {
        let keep_ips = cluster_ips(new);
        let keep_ports = node_ports(new);
        let mut allocated = self.lock();
        for ip in cluster_ips(old) {
            if !keep_ips.contains(&ip) {
                allocated.ips.remove(&ip);
            }
        }
        for port in node_ports(old) {
            if !keep_ports.contains(&port) {
                allocated.ports.remove(&port);
            }
        }
    }

    /// Marks `ip` as used (the `kubernetes` service's, made at start).
    pub fn reserve(&self, ip: Ipv4Addr) {
        self.lock().ips.insert(ip);
    }
}

fn next_port(allocated: &Allocated) -> Option<u16> {
    let size = u32::from(*NODE_PORTS.end() - *NODE_PORTS.start()) + 1;
    let start = u32::from_le_bytes(random_bytes::<4>()) % size;
    (0..size)
        .filter_map(|i| u16::try_from(u32::from(*NODE_PORTS.start()) + (start + i) % size).ok())
        .find(|p| !allocated.ports.contains(p))
}

fn cluster_ips(svc: &Value) -> Vec<Ipv4Addr> {
    svc["spec"]["clusterIPs"]
        .as_array()
        .into_iter()
        .flatten()
        .chain(std::iter::once(&svc["spec"]["clusterIP"]))
        .filter_map(|ip| ip.as_str()?.parse().ok())
        .collect()
}

fn node_ports(svc: &Value) -> Vec<u16> {
    svc["spec"]["ports"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|p| u16::try_from(p["nodePort"].as_i64()?).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rt() -> ResourceType {
        super::super::resources::Resources::new()
            .find("", "v1", "services")
            .unwrap()
            .as_ref()
            .clone()
    }

    #[test]
    fn cluster_ips_and_node_ports_are_allocated_kept_and_released() {
        let allocator = ServiceAllocator::new("10.43.0.0/16".parse().unwrap());
        let mut svc = json!({"metadata": {"name": "web"}, "spec": {"type": "NodePort", "ports": [{"port": 80, "protocol": "TCP"}]}});
        allocator.admit(&rt(), &mut svc, None).unwrap();
        let ip: Ipv4Addr = svc["spec"]["clusterIP"].as_str().unwrap().parse().unwrap();
        assert!(allocator.cidr().contains(&ip) && ip != allocator.first_ip());
        let port = svc["spec"]["ports"][0]["nodePort"].as_u64().unwrap();
        assert!((30000..=32767).contains(&port));
        // An update without them keeps them.
        let mut updated = json!({"metadata": {"name": "web"}, "spec": {"type": "NodePort", "ports": [{"port": 80, "protocol": "TCP"}]}});
        allocator.admit(&rt(), &mut updated, Some(&svc)).unwrap();
        assert_eq!(updated["spec"]["clusterIP"], svc["spec"]["clusterIP"]);
        assert_eq!(updated["spec"]["ports"][0]["nodePort"], port);
        // Another service cannot take them.
        let mut other = json!({"metadata": {"name": "b"}, "spec": {"clusterIP": ip.to_string(), "ports": [{"port": 80}]}});
        let err = allocator.admit(&rt(), &mut other, None).unwrap_err();
        assert!(
            err.message.contains("provided IP is already allocated"),
            "{}",
            err.message
        );
        allocator.release(&svc);
        allocator.admit(&rt(), &mut other, None).unwrap();
    }
}
