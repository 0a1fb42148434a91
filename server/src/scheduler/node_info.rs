//! A node together with what is already bound to it, computed once per
//! scheduling attempt (upstream's `NodeInfo`).

use serde_json::Value;

use super::resources::{Allocatable, Resources, allocatable, pod_requests};

/// Taint key the node lifecycle controller puts on a node whose Ready
/// condition is False.
pub(super) const NOT_READY_TAINT: &str = "node.kubernetes.io/not-ready";
/// Taint key for a node whose Ready condition is Unknown.
pub(super) const UNREACHABLE_TAINT: &str = "node.kubernetes.io/unreachable";

/// One taint of a node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Taint {
    pub key: String,
    pub value: String,
    pub effect: String,
}

/// A host port a container claims.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct HostPort {
    /// "0.0.0.0" when the pod did not name an address.
    pub ip: String,
    /// "TCP", "UDP" or "SCTP".
    pub protocol: String,
    pub port: i64,
}

impl HostPort {
    /// Whether two claims cannot both be granted.
    pub fn conflicts(&self, other: &HostPort) -> bool {
        self.port == other.port
            && self.protocol == other.protocol
            && (self.ip == other.ip || self.ip == "0.0.0.0" || other.ip == "0.0.0.0")
    }
}

/// A node and the pods bound to it.
#[derive(Debug)]
pub(super) struct NodeInfo<'a> {
    pub name: &'a str,
    pub node: &'a Value,
    /// The node's taints plus the ones its Ready condition implies.
    pub taints: Vec<Taint>,
    pub allocatable: Allocatable,
    /// Sum of the bound pods' requests.
    pub requested: Resources,
    /// The same, with upstream's defaults for containers without requests.
    pub non_zero_requested: Resources,
    pub pods: Vec<&'a Value>,
    pub used_ports: Vec<HostPort>,
}

impl<'a> NodeInfo<'a> {
    /// Gathers the node's view from the pods bound to it.
    pub fn new(node: &'a Value, bound_pods: &[&'a Value]) -> Self {
        let name = str_at(node, &["metadata", "name"]).unwrap_or("");
        let pods: Vec<&Value> = bound_pods
            .iter()
            .copied()
            .filter(|p| str_at(p, &["spec", "nodeName"]) == Some(name) && !name.is_empty())
            .filter(|p| {
                !matches!(
                    str_at(p, &["status", "phase"]),
                    Some("Succeeded") | Some("Failed")
                )
            })
            .collect();
        let mut requested = Resources::default();
        let mut non_zero_requested = Resources::default();
        let mut used_ports = Vec::new();
        for pod in &pods {
            requested = requested.plus(pod_requests(pod, false));
            non_zero_requested = non_zero_requested.plus(pod_requests(pod, true));
            used_ports.extend(host_ports(pod));
        }
        NodeInfo {
            name,
            node,
            taints: taints(node),
            allocatable: allocatable(node),
            requested,
            non_zero_requested,
            pods,
            used_ports,
        }
    }

    /// The node's labels.
    pub fn label(&self, key: &str) -> Option<&'a str> {
        self.node
            .get("metadata")
            .and_then(|m| m.get("labels"))
            .and_then(|l| l.get(key))
            .and_then(Value::as_str)
    }
}

/// The string at a path of object keys.
pub(super) fn str_at<'v>(value: &'v Value, path: &[&str]) -> Option<&'v str> {
    path.iter()
        .try_fold(value, |v, key| v.get(key))
        .and_then(Value::as_str)
}

/// The array at a path of object keys (empty when absent).
pub(super) fn array_at<'v>(value: &'v Value, path: &[&str]) -> &'v [Value] {
    path.iter()
        .try_fold(value, |v, key| v.get(key))
        .and_then(Value::as_array)
        .map_or(&[], Vec::as_slice)
}

/// The host ports a pod's containers claim.
pub(super) fn host_ports(pod: &Value) -> Vec<HostPort> {
    array_at(pod, &["spec", "containers"])
        .iter()
        .flat_map(|c| array_at(c, &["ports"]))
        .filter_map(|p| {
            let port = p
                .get("hostPort")
                .and_then(Value::as_i64)
                .filter(|n| *n > 0)?;
            let ip = str_at(p, &["hostIP"]).filter(|s| !s.is_empty());
            let protocol = str_at(p, &["protocol"]).filter(|s| !s.is_empty());
            Some(HostPort {
                ip: ip.unwrap_or("0.0.0.0").to_string(),
                protocol: protocol.unwrap_or("TCP").to_string(),
                port,
            })
        })
        .collect()
}

/// The node's taints, plus the NoSchedule taint its Ready condition implies
/// when the node lifecycle controller has not put it there yet.
fn taints(node: &Value) -> Vec<Taint> {
    let mut taints: Vec<Taint> = array_at(node, &["spec", "taints"])
        .iter()
        .map(|t| Taint {
            key: str_at(t, &["key"]).unwrap_or("").to_string(),
            value: str_at(t, &["value"]).unwrap_or("").to_string(),
            effect: str_at(t, &["effect"]).unwrap_or("").to_string(),
        })
        .collect();
    let ready = array_at(node, &["status", "conditions"])
        .iter()
        .find(|c| str_at(c, &["type"]) == Some("Ready"))
        .and_then(|c| str_at(c, &["status"]));
    let implied = match ready {
        Some("True") => None,
        Some("Unknown") => Some(UNREACHABLE_TAINT),
        _ => Some(NOT_READY_TAINT),
    };
    if let Some(key) = implied
        && !taints
            .iter()
            .any(|t| t.key == key && t.effect == "NoSchedule")
    {
        taints.push(Taint {
            key: key.to_string(),
            value: String::new(),
            effect: "NoSchedule".to_string(),
        });
    }
    taints
}
