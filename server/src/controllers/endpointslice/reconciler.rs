//! What to create, update and delete so that a Service's EndpointSlices
//! list its pods: upstream's `Reconciler` as a pure function. Endpoints are
//! grouped by their port set; within a group existing slices are updated
//! in place (changed endpoints replaced, gone ones removed, new ones filling
//! the fullest changed slices, then the unchanged slice they fit best),
//! new slices hold at most `max` endpoints, a create is turned into an
//! update of a slice that would be deleted, and a Service without
//! endpoints keeps one empty placeholder slice.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use k8s_openapi::api::core::v1::{Node, Pod, Service};
use k8s_openapi::api::discovery::v1::{Endpoint, EndpointConditions, EndpointPort, EndpointSlice};
use kube::api::ObjectMeta;

use super::selection;
use crate::controllers::common::{controller_ref, pod_is_ready};

/// The most endpoints one slice holds (`--max-endpoints-per-slice`).
pub(crate) const MAX_ENDPOINTS_PER_SLICE: usize = 100;
/// The label naming a slice's Service.
pub(crate) const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";
/// The label naming a slice's manager.
pub(crate) const MANAGED_BY_LABEL: &str = "endpointslice.kubernetes.io/managed-by";
/// This controller's value of [`MANAGED_BY_LABEL`].
pub(crate) const CONTROLLER_NAME: &str = "endpointslice-controller.k8s.io";
/// The label marking the slices of a headless Service.
const HEADLESS_LABEL: &str = "service.kubernetes.io/headless";
/// The node label giving an endpoint's zone.
const ZONE_LABEL: &str = "topology.kubernetes.io/zone";

/// The writes that bring a Service's slices in line.
#[derive(Debug, Default)]
pub(crate) struct Plan {
    /// New slices (`generateName` set, no name).
    pub create: Vec<EndpointSlice>,
    /// Slices to write whole (a name set; a resourceVersion when read from the cache).
    pub update: Vec<EndpointSlice>,
    /// Slices to delete.
    pub delete: Vec<EndpointSlice>,
    /// Pods left out because their node is unknown (upstream's error text).
    pub skipped: Vec<String>,
}

/// Plans the slices of `service` for its selected `pods` given its
/// `existing` slices (this controller's, not being deleted); `node` looks a
/// node up by name.
pub(crate) fn plan(
    service: &Service,
    pods: &[Arc<Pod>],
    node: &dyn Fn(&str) -> Option<Arc<Node>>,
    existing: &[Arc<EndpointSlice>],
    max: usize,
) -> Plan {
    let mut result = Plan::default();
    let supported = address_types(service);
    let mut by_type: BTreeMap<&str, Vec<&EndpointSlice>> = BTreeMap::new();
    for slice in existing {
        if supported.contains(slice.address_type.as_str()) {
            by_type
                .entry(slice.address_type.as_str())
                .or_default()
                .push(slice);
        } else {
            result.delete.push(slice.as_ref().clone());
        }
    }
    for address_type in supported {
        let slices = by_type.remove(address_type).unwrap_or_default();
        let typed = plan_address_type(service, pods, node, &slices, address_type, max);
        result.create.extend(typed.create);
        result.update.extend(typed.update);
        result.delete.extend(typed.delete);
        for skipped in typed.skipped {
            if !result.skipped.contains(&skipped) {
                result.skipped.push(skipped);
            }
        }
    }
    result
}

/// The address types of the Service's slices: from its IP families, else
/// its cluster IP's family, else (headless, not yet defaulted) both.
fn address_types(service: &Service) -> BTreeSet<&'static str> {
    let spec = service.spec.as_ref();
    let mut types: BTreeSet<&'static str> = spec
        .and_then(|s| s.ip_families.as_ref())
        .into_iter()
        .flatten()
        .filter_map(|family| match family.as_str() {
            "IPv4" => Some("IPv4"),
            "IPv6" => Some("IPv6"),
            _ => None,
        })
        .collect();
    if types.is_empty() {
        if selection::is_service_ip_set(service) {
            let v6 = spec
                .and_then(|s| s.cluster_ip.as_deref())
                .is_some_and(|ip| ip.contains(':'));
            types.insert(if v6 { "IPv6" } else { "IPv4" });
        } else {
            types.extend(["IPv4", "IPv6"]);
        }
    }
    types
}

/// One address type's plan, including upstream's `finalize` turning
/// creates into updates of slices about to be deleted.
fn plan_address_type(
    service: &Service,
    pods: &[Arc<Pod>],
    node: &dyn Fn(&str) -> Option<Arc<Node>>,
    existing: &[&EndpointSlice],
    address_type: &str,
    max: usize,
) -> Plan {
    let mut plan = Plan::default();
    let mut existing_by_ports: BTreeMap<PortKey, Vec<EndpointSlice>> = BTreeMap::new();
    for slice in existing {
        if owned_by(slice, service) {
            let key = port_key(slice.ports.as_deref().unwrap_or_default());
            existing_by_ports
                .entry(key)
                .or_default()
                .push((*slice).clone());
        } else {
            plan.delete.push((*slice).clone());
        }
    }
    let mut desired: BTreeMap<PortKey, (Vec<EndpointPort>, EndpointSet)> = BTreeMap::new();
    for pod in pods {
        if !selection::should_pod_be_in_endpoints(pod, true) {
            continue;
        }
        let ports = endpoint_ports(service, pod);
        let (_, set) = desired
            .entry(port_key(&ports))
            .or_insert_with(|| (ports, EndpointSet::new()));
        let node_name = pod
            .spec
            .as_ref()
            .and_then(|s| s.node_name.clone())
            .unwrap_or_default();
        let Some(node) = node(&node_name) else {
            plan.skipped.push(format!(
                "skipping Pod {} for Service {}/{}: Node {node_name} Not Found",
                pod.metadata.name.as_deref().unwrap_or_default(),
                service.metadata.namespace.as_deref().unwrap_or_default(),
                service.metadata.name.as_deref().unwrap_or_default(),
            ));
            continue;
        };
        let endpoint = pod_to_endpoint(pod, &node, service, address_type);
        if !endpoint.addresses.is_empty() {
            set.insert(endpoint_key(&endpoint), endpoint);
        }
    }
    for (key, (ports, set)) in &desired {
        let slices = existing_by_ports.get(key).cloned().unwrap_or_default();
        let group = plan_port_group(service, slices, set.clone(), ports, address_type, max);
        plan.create.extend(group.create);
        plan.update.extend(group.update);
        plan.delete.extend(group.delete);
    }
    for (key, slices) in existing_by_ports {
        if !desired.contains_key(&key) {
            plan.delete.extend(slices);
        }
    }
    if existing.len() == plan.delete.len() && plan.create.is_empty() {
        let placeholder = new_slice(service, Vec::new(), address_type);
        if plan.delete.len() == 1 && same_placeholder(&plan.delete[0], &placeholder) {
            plan.delete.clear();
        } else {
            plan.create.push(placeholder);
        }
    }
    // Reuse slices about to be deleted for slices about to be created.
    let mut i = 0;
    while i < plan.delete.len() {
        let Some(last) = plan.create.last() else {
            break;
        };
        let doomed = &plan.delete[i];
        if doomed.address_type == last.address_type && owned_by(doomed, service) {
            let name = doomed.metadata.name.clone();
            plan.delete.remove(i);
            if let Some(mut slice) = plan.create.pop() {
                slice.metadata.name = name;
                plan.update.push(slice);
            }
        } else {
            i += 1;
        }
    }
    plan
}

/// Desired endpoints by their identity, popped in a stable order.
type EndpointSet = BTreeMap<EndpointKey, Endpoint>;

/// What makes two endpoints "the same" (upstream's endpoint hash):
/// addresses, hostname and the target's namespace and name.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct EndpointKey {
    addresses: Vec<String>,
    hostname: String,
    namespace: String,
    name: String,
}

fn endpoint_key(endpoint: &Endpoint) -> EndpointKey {
    let mut addresses = endpoint.addresses.clone();
    addresses.sort();
    let target = endpoint.target_ref.as_ref();
    EndpointKey {
        addresses,
        hostname: endpoint.hostname.clone().unwrap_or_default(),
        namespace: target.and_then(|t| t.namespace.clone()).unwrap_or_default(),
        name: target.and_then(|t| t.name.clone()).unwrap_or_default(),
    }
}

/// Upstream's `EndpointsEqualBeyondHash`: node, zone, conditions and
/// target (its resourceVersion aside).
fn equal_beyond_key(a: &Endpoint, b: &Endpoint) -> bool {
    let conditions = |e: &Endpoint| {
        let c = e.conditions.clone().unwrap_or_default();
        (c.ready, c.serving, c.terminating)
    };
    let target = |e: &Endpoint| {
        e.target_ref.clone().map(|mut t| {
            t.resource_version = None;
            t
        })
    };
    a.node_name == b.node_name
        && a.zone == b.zone
        && conditions(a) == conditions(b)
        && target(a) == target(b)
}

/// A port set's identity: its ports sorted.
type PortKey = Vec<(String, i32, String, String)>;

fn port_key(ports: &[EndpointPort]) -> PortKey {
    let mut key: PortKey = ports
        .iter()
        .map(|p| {
            (
                p.name.clone().unwrap_or_default(),
                p.port.unwrap_or_default(),
                p.protocol.clone().unwrap_or_default(),
                p.app_protocol.clone().unwrap_or_default(),
            )
        })
        .collect();
    key.sort();
    key
}

/// The slice ports for `pod` (upstream's `getEndpointPorts`): each Service
/// port whose target the pod has, sorted; none for a headless Service
/// without ports.
fn endpoint_ports(service: &Service, pod: &Pod) -> Vec<EndpointPort> {
    let mut ports: Vec<EndpointPort> = selection::service_ports(service)
        .iter()
        .filter_map(|service_port| {
            let number = selection::find_port(pod, service_port)?;
            Some(EndpointPort {
                name: Some(service_port.name.clone().unwrap_or_default()),
                port: Some(number),
                protocol: Some(
                    service_port
                        .protocol
                        .clone()
                        .unwrap_or_else(|| "TCP".into()),
                ),
                app_protocol: service_port.app_protocol.clone(),
            })
        })
        .collect();
    ports.sort_by_key(|p| port_key(std::slice::from_ref(p)));
    ports
}

/// The pod as an endpoint of `address_type` (upstream's `podToEndpoint`).
fn pod_to_endpoint(pod: &Pod, node: &Node, service: &Service, address_type: &str) -> Endpoint {
    let serving = pod_is_ready(pod);
    let terminating = pod.metadata.deletion_timestamp.is_some();
    let publish_not_ready = service
        .spec
        .as_ref()
        .and_then(|s| s.publish_not_ready_addresses)
        .unwrap_or(false);
    let want_v6 = address_type == "IPv6";
    Endpoint {
        addresses: selection::pod_ips(pod)
            .into_iter()
            .filter(|ip| ip.contains(':') == want_v6)
            .map(str::to_owned)
            .collect(),
        conditions: Some(EndpointConditions {
            // Ready is never true for a terminating pod, unless the
            // Service publishes not-ready addresses.
            ready: Some(publish_not_ready || (serving && !terminating)),
            serving: Some(serving),
            terminating: Some(terminating),
        }),
        hostname: selection::endpoint_hostname(pod, service),
        node_name: selection::node_name(pod),
        target_ref: Some(selection::pod_reference(pod)),
        zone: node
            .metadata
            .labels
            .as_ref()
            .and_then(|l| l.get(ZONE_LABEL))
            .filter(|z| !z.is_empty())
            .cloned(),
        ..Default::default()
    }
}

/// Upstream's `reconcileByPortMapping` for one port set.
fn plan_port_group(
    service: &Service,
    existing: Vec<EndpointSlice>,
    mut desired: EndpointSet,
    ports: &[EndpointPort],
    address_type: &str,
    max: usize,
) -> Plan {
    let mut by_name: BTreeMap<String, EndpointSlice> = BTreeMap::new();
    let mut unchanged: BTreeSet<String> = BTreeSet::new();
    let mut to_update: BTreeSet<String> = BTreeSet::new();
    let mut to_delete: BTreeSet<String> = BTreeSet::new();
    // 1. Drop endpoints no longer desired and refresh changed ones.
    for slice in existing {
        let name = slice.metadata.name.clone().unwrap_or_default();
        let mut kept = Vec::new();
        let mut changed = false;
        for endpoint in &slice.endpoints {
            if let Some(want) = desired.remove(&endpoint_key(endpoint)) {
                changed |= !equal_beyond_key(&want, endpoint);
                kept.push(want);
            }
        }
        let (labels, labels_changed) = slice_labels(&slice, service);
        if changed || kept.len() != slice.endpoints.len() {
            if kept.is_empty() {
                to_delete.insert(name.clone());
                by_name.insert(name, slice);
            } else {
                let mut slice = slice;
                slice.endpoints = kept;
                slice.metadata.labels = Some(labels);
                to_update.insert(name.clone());
                by_name.insert(name, slice);
            }
        } else if labels_changed {
            let mut slice = slice;
            slice.metadata.labels = Some(labels);
            to_update.insert(name.clone());
            by_name.insert(name, slice);
        } else {
            unchanged.insert(name.clone());
            by_name.insert(name, slice);
        }
    }
    // 2. Fill the slices being updated anyway, fullest first.
    if !desired.is_empty() && !to_update.is_empty() {
        let mut names: Vec<String> = to_update.iter().cloned().collect();
        names.sort_by_key(|n| std::cmp::Reverse(by_name.get(n).map_or(0, |s| s.endpoints.len())));
        for name in names {
            if let Some(slice) = by_name.get_mut(&name) {
                while slice.endpoints.len() < max {
                    let Some((_, endpoint)) = desired.pop_first() else {
                        break;
                    };
                    slice.endpoints.push(endpoint);
                }
            }
        }
    }
    // 3. Put the rest in the unchanged slice they fit best, or new slices.
    let mut create = Vec::new();
    while !desired.is_empty() {
        let fill = if desired.len() < max {
            slice_to_fill(&unchanged, &by_name, desired.len(), max)
        } else {
            None
        };
        let mut slice = match fill.as_ref().and_then(|name| by_name.get(name)) {
            Some(slice) => slice.clone(),
            None => new_slice(service, ports.to_vec(), address_type),
        };
        while slice.endpoints.len() < max {
            let Some((_, endpoint)) = desired.pop_first() else {
                break;
            };
            slice.endpoints.push(endpoint);
        }
        match fill {
            Some(name) => {
                unchanged.remove(&name);
                to_update.insert(name.clone());
                by_name.insert(name, slice);
            }
            None => create.push(slice),
        }
    }
    let pick = |names: &BTreeSet<String>| -> Vec<EndpointSlice> {
        names
            .iter()
            .filter_map(|n| by_name.get(n).cloned())
            .collect()
    };
    Plan {
        create,
        update: pick(&to_update),
        delete: pick(&to_delete),
        skipped: Vec::new(),
    }
}

/// Upstream's `getSliceToFill`: the unchanged slice that `count` more
/// endpoints fill closest to `max` without passing it.
fn slice_to_fill(
    unchanged: &BTreeSet<String>,
    by_name: &BTreeMap<String, EndpointSlice>,
    count: usize,
    max: usize,
) -> Option<String> {
    let mut closest: Option<(usize, &String)> = None;
    for name in unchanged {
        let Some(slice) = by_name.get(name) else {
            continue;
        };
        let Some(room) = max.checked_sub(count + slice.endpoints.len()) else {
            continue;
        };
        if closest.is_none_or(|(best, _)| room < best) {
            closest = Some((room, name));
            if room == 0 {
                break;
            }
        }
    }
    closest.map(|(_, name)| name.clone())
}

/// Whether the slice is owned by this very Service (its UID).
fn owned_by(slice: &EndpointSlice, service: &Service) -> bool {
    slice
        .metadata
        .owner_references
        .iter()
        .flatten()
        .any(|owner| {
            Some(&owner.uid) == service.metadata.uid.as_ref()
                && owner.kind == "Service"
                && owner.api_version == "v1"
        })
}

/// A new, empty slice of the Service (upstream's `newEndpointSlice`).
fn new_slice(service: &Service, ports: Vec<EndpointPort>, address_type: &str) -> EndpointSlice {
    let mut slice = EndpointSlice {
        metadata: ObjectMeta {
            generate_name: Some(format!(
                "{}-",
                service.metadata.name.as_deref().unwrap_or_default()
            )),
            namespace: service.metadata.namespace.clone(),
            owner_references: controller_ref(service).map(|owner| vec![owner]),
            ..Default::default()
        },
        address_type: address_type.to_owned(),
        endpoints: Vec::new(),
        ports: Some(ports),
    };
    slice.metadata.labels = Some(slice_labels(&slice, service).0);
    slice
}

/// A slice's labels for the Service (upstream's `setEndpointSliceLabels`):
/// the Service's labels without the reserved ones, the headless label,
/// the Service name and the manager; and whether they differ from the
/// slice's own (reserved labels aside).
fn slice_labels(slice: &EndpointSlice, service: &Service) -> (BTreeMap<String, String>, bool) {
    let reserved =
        |key: &str| key == SERVICE_NAME_LABEL || key == MANAGED_BY_LABEL || key == HEADLESS_LABEL;
    let current: BTreeMap<&String, &String> = slice
        .metadata
        .labels
        .iter()
        .flatten()
        .filter(|(k, _)| !reserved(k))
        .collect();
    let mut labels: BTreeMap<String, String> = service
        .metadata
        .labels
        .iter()
        .flatten()
        .filter(|(k, _)| !reserved(k))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let changed =
        current.len() != labels.len() || current.iter().any(|(k, v)| labels.get(*k) != Some(*v));
    if !selection::is_service_ip_set(service) {
        labels.insert(HEADLESS_LABEL.into(), String::new());
    }
    labels.insert(
        SERVICE_NAME_LABEL.into(),
        service.metadata.name.clone().unwrap_or_default(),
    );
    labels.insert(MANAGED_BY_LABEL.into(), CONTROLLER_NAME.into());
    (labels, changed)
}

/// Upstream's placeholder comparison: same namespace, labels and address
/// type, and neither has endpoints or ports.
fn same_placeholder(a: &EndpointSlice, b: &EndpointSlice) -> bool {
    let labels = |s: &EndpointSlice| s.metadata.labels.clone().unwrap_or_default();
    let no_ports = |s: &EndpointSlice| s.ports.as_ref().is_none_or(Vec::is_empty);
    a.metadata.namespace == b.metadata.namespace
        && labels(a) == labels(b)
        && a.address_type == b.address_type
        && a.endpoints.is_empty()
        && b.endpoints.is_empty()
        && no_ports(a)
        && no_ports(b)
}

#[cfg(test)]
#[path = "reconciler_tests.rs"]
mod tests;
