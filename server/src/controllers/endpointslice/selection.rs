//! Which pods back a Service and how each appears among its endpoints: the
//! rules upstream's `k8s.io/endpointslice/util` shares between the
//! Endpoints and EndpointSlice controllers, and the pod → Services index
//! their watches use to find which Services a pod change concerns.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use k8s_openapi::api::core::v1::{ObjectReference, Pod, Service, ServicePort};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::runtime::reflector::{ObjectRef, Store};

/// The Service's selector when the controllers make its endpoints: not for
/// ExternalName Services, nor for Services without a selector (their
/// endpoints are written by hand). An empty selector counts as none, as
/// upstream reads a stored one.
pub(crate) fn managed_selector(service: &Service) -> Option<&BTreeMap<String, String>> {
    let spec = service.spec.as_ref()?;
    if spec.type_.as_deref() == Some("ExternalName") {
        return None;
    }
    spec.selector
        .as_ref()
        .filter(|selector| !selector.is_empty())
}

/// Whether every `key: value` of `selector` is among the pod's labels.
pub(crate) fn selects(selector: &BTreeMap<String, String>, pod: &Pod) -> bool {
    let labels = pod.metadata.labels.as_ref();
    selector
        .iter()
        .all(|(key, value)| labels.and_then(|l| l.get(key)) == Some(value))
}

/// The pods of the Service's namespace its selector matches, by name.
pub(crate) fn selected_pods(
    pods: &Store<Pod>,
    namespace: &str,
    selector: &BTreeMap<String, String>,
) -> Vec<Arc<Pod>> {
    let mut selected = pods.state_filter(|pod| {
        pod.metadata.namespace.as_deref() == Some(namespace) && selects(selector, pod)
    });
    selected.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
    selected
}

/// Whether the pod is Succeeded or Failed.
pub(crate) fn is_terminal(pod: &Pod) -> bool {
    matches!(
        pod.status.as_ref().and_then(|s| s.phase.as_deref()),
        Some("Succeeded" | "Failed")
    )
}

/// The pod's IPs: `status.podIPs`, or `status.podIP` when the list is
/// empty (kube-apiserver fills the list from it; Skiff's does not yet).
pub(crate) fn pod_ips(pod: &Pod) -> Vec<&str> {
    let Some(status) = pod.status.as_ref() else {
        return Vec::new();
    };
    let listed: Vec<&str> = status
        .pod_ips
        .iter()
        .flatten()
        .map(|ip| ip.ip.as_str())
        .filter(|ip| !ip.is_empty())
        .collect();
    if !listed.is_empty() {
        return listed;
    }
    status
        .pod_ip
        .as_deref()
        .filter(|ip| !ip.is_empty())
        .into_iter()
        .collect()
}

/// Whether a pod is among a Service's endpoints at all (upstream's
/// `ShouldPodBeInEndpoints`): not terminal, has an IP, and is not being
/// deleted unless `include_terminating`.
pub(crate) fn should_pod_be_in_endpoints(pod: &Pod, include_terminating: bool) -> bool {
    if is_terminal(pod) || pod_ips(pod).is_empty() {
        return false;
    }
    include_terminating || pod.metadata.deletion_timestamp.is_none()
}

/// The container port a Service port sends to on `pod` (upstream's
/// `FindPort`): a numeric targetPort as is; a named one looked up among the
/// ports of the pod's containers and sidecars (init containers with
/// `restartPolicy: Always`) with the same protocol. None when no such
/// named port exists; the pod is then left out for that port.
pub(crate) fn find_port(pod: &Pod, service_port: &ServicePort) -> Option<i32> {
    let name = match &service_port.target_port {
        None => return Some(service_port.port),
        Some(IntOrString::Int(port)) => return Some(*port),
        Some(IntOrString::String(name)) => name,
    };
    let protocol = service_port.protocol.as_deref().unwrap_or("TCP");
    let spec = pod.spec.as_ref()?;
    let sidecars = spec
        .init_containers
        .iter()
        .flatten()
        .filter(|c| c.restart_policy.as_deref() == Some("Always"));
    spec.containers
        .iter()
        .chain(sidecars)
        .flat_map(|c| c.ports.iter().flatten())
        .find(|port| {
            port.name.as_deref() == Some(name.as_str())
                && port.protocol.as_deref().unwrap_or("TCP") == protocol
        })
        .map(|port| port.container_port)
}

/// Whether the endpoint carries the pod's hostname: the pod names one and
/// its subdomain is this Service, in the Service's namespace.
pub(crate) fn should_set_hostname(pod: &Pod, service: &Service) -> bool {
    let Some(spec) = pod.spec.as_ref() else {
        return false;
    };
    spec.hostname.as_deref().is_some_and(|h| !h.is_empty())
        && spec.subdomain.is_some()
        && spec.subdomain == service.metadata.name
        && pod.metadata.namespace == service.metadata.namespace
}

/// The hostname an endpoint of the pod carries for the Service, if any.
pub(crate) fn endpoint_hostname(pod: &Pod, service: &Service) -> Option<String> {
    if should_set_hostname(pod, service) {
        pod.spec.as_ref().and_then(|s| s.hostname.clone())
    } else {
        None
    }
}

/// The node the pod is bound to, if any.
pub(crate) fn node_name(pod: &Pod) -> Option<String> {
    pod.spec
        .as_ref()
        .and_then(|s| s.node_name.clone())
        .filter(|n| !n.is_empty())
}

/// An endpoint's `targetRef` to the pod.
pub(crate) fn pod_reference(pod: &Pod) -> ObjectReference {
    ObjectReference {
        kind: Some("Pod".into()),
        namespace: pod.metadata.namespace.clone(),
        name: pod.metadata.name.clone(),
        uid: pod.metadata.uid.clone(),
        ..Default::default()
    }
}

/// Whether the Service has a cluster IP (is not headless).
pub(crate) fn is_service_ip_set(service: &Service) -> bool {
    service
        .spec
        .as_ref()
        .and_then(|s| s.cluster_ip.as_deref())
        .is_some_and(|ip| !ip.is_empty() && ip != "None")
}

/// Whether the Service is headless (`clusterIP: None`).
pub(crate) fn is_headless(service: &Service) -> bool {
    service.spec.as_ref().and_then(|s| s.cluster_ip.as_deref()) == Some("None")
}

/// The Service's ports.
pub(crate) fn service_ports(service: &Service) -> &[ServicePort] {
    service
        .spec
        .as_ref()
        .and_then(|s| s.ports.as_deref())
        .unwrap_or_default()
}

/// Remembers which Services each pod was last found to back, so that a
/// pod whose labels changed also wakes the Services it left (upstream
/// compares the old and new pod of an update; a watch gives only the new).
#[derive(Debug, Default)]
pub(crate) struct PodServices {
    last: Mutex<HashMap<PodKey, Vec<ObjectRef<Service>>>>,
}

/// A pod's namespace and name.
type PodKey = (String, String);

impl PodServices {
    /// The Services to reconcile for a change of `pod` (`deleted` when it
    /// went away): those selecting it now and those it backed before.
    pub(crate) fn changed(
        &self,
        pod: &Pod,
        services: &Store<Service>,
        deleted: bool,
    ) -> Vec<ObjectRef<Service>> {
        let namespace = pod.metadata.namespace.clone().unwrap_or_default();
        let name = pod.metadata.name.clone().unwrap_or_default();
        let mut current: Vec<ObjectRef<Service>> = services
            .state()
            .iter()
            .filter(|svc| svc.metadata.namespace.as_deref() == Some(namespace.as_str()))
            .filter(|svc| managed_selector(svc).is_some_and(|sel| selects(sel, pod)))
            .map(|svc| ObjectRef::from_obj(svc.as_ref()))
            .collect();
        let mut last = self
            .last
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let key = (namespace, name);
        let before = if deleted {
            last.remove(&key)
        } else {
            last.insert(key, current.clone())
        };
        for svc in before.into_iter().flatten() {
            if !current.contains(&svc) {
                current.push(svc);
            }
        }
        current
    }

    /// The Services `pod` was last found to back.
    pub(crate) fn of(&self, namespace: &str, name: &str) -> Vec<ObjectRef<Service>> {
        self.last
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(&(namespace.to_owned(), name.to_owned()))
            .cloned()
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(value: serde_json::Value) -> Pod {
        serde_json::from_value(value).unwrap()
    }

    fn port(value: serde_json::Value) -> ServicePort {
        serde_json::from_value(value).unwrap()
    }

    fn web_pod() -> Pod {
        pod(json!({
            "metadata": {"name": "web-1", "namespace": "default", "labels": {"app": "web", "tier": "fe"}},
            "spec": {
                "containers": [{"name": "c", "ports": [
                    {"name": "http", "containerPort": 8080, "protocol": "TCP"},
                    {"name": "dns", "containerPort": 5353, "protocol": "UDP"},
                ]}],
                "initContainers": [
                    {"name": "sidecar", "restartPolicy": "Always", "ports": [{"name": "metrics", "containerPort": 9090}]},
                    {"name": "init", "ports": [{"name": "setup", "containerPort": 7070}]},
                ],
            },
            "status": {"podIP": "10.42.0.5", "podIPs": [{"ip": "10.42.0.5"}]},
        }))
    }

    #[test]
    fn numeric_target_port_is_used_as_is() {
        let p = web_pod();
        assert_eq!(
            find_port(&p, &port(json!({"port": 80, "targetPort": 9376}))),
            Some(9376)
        );
        assert_eq!(find_port(&p, &port(json!({"port": 80}))), Some(80));
    }

    #[test]
    fn named_target_port_is_looked_up_with_its_protocol() {
        let p = web_pod();
        let http = port(json!({"port": 80, "targetPort": "http", "protocol": "TCP"}));
        assert_eq!(find_port(&p, &http), Some(8080));
        let dns_tcp = port(json!({"port": 53, "targetPort": "dns", "protocol": "TCP"}));
        assert_eq!(find_port(&p, &dns_tcp), None);
        let dns_udp = port(json!({"port": 53, "targetPort": "dns", "protocol": "UDP"}));
        assert_eq!(find_port(&p, &dns_udp), Some(5353));
        let missing = port(json!({"port": 80, "targetPort": "nope"}));
        assert_eq!(find_port(&p, &missing), None);
    }

    #[test]
    fn sidecar_ports_count_but_plain_init_container_ports_do_not() {
        let p = web_pod();
        assert_eq!(
            find_port(&p, &port(json!({"port": 1, "targetPort": "metrics"}))),
            Some(9090)
        );
        assert_eq!(
            find_port(&p, &port(json!({"port": 1, "targetPort": "setup"}))),
            None
        );
    }

    #[test]
    fn selection_needs_every_selector_label() {
        let p = web_pod();
        let sel = |v: serde_json::Value| -> BTreeMap<String, String> {
            serde_json::from_value(v).unwrap()
        };
        assert!(selects(&sel(json!({"app": "web"})), &p));
        assert!(selects(&sel(json!({"app": "web", "tier": "fe"})), &p));
        assert!(!selects(&sel(json!({"app": "web", "tier": "be"})), &p));
        assert!(!selects(&sel(json!({"other": "x"})), &p));
    }

    #[test]
    fn pods_without_ip_terminal_or_terminating_are_left_out() {
        let p = web_pod();
        assert!(should_pod_be_in_endpoints(&p, false));
        let mut no_ip = p.clone();
        no_ip.status = None;
        assert!(!should_pod_be_in_endpoints(&no_ip, true));
        let mut done = p.clone();
        done.status.as_mut().unwrap().phase = Some("Succeeded".into());
        assert!(!should_pod_be_in_endpoints(&done, true));
        let mut deleting = p.clone();
        deleting.metadata.deletion_timestamp =
            Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
                k8s_openapi::jiff::Timestamp::UNIX_EPOCH,
            ));
        assert!(!should_pod_be_in_endpoints(&deleting, false));
        assert!(should_pod_be_in_endpoints(&deleting, true));
    }

    #[test]
    fn pod_ip_stands_in_for_an_empty_pod_ips_list() {
        let p = pod(json!({"metadata": {"name": "a"}, "status": {"podIP": "10.42.0.9"}}));
        assert_eq!(pod_ips(&p), vec!["10.42.0.9"]);
    }

    #[test]
    fn selector_less_and_external_name_services_are_not_managed() {
        let svc = |spec: serde_json::Value| -> Service {
            serde_json::from_value(json!({"metadata": {"name": "s"}, "spec": spec})).unwrap()
        };
        assert!(managed_selector(&svc(json!({"selector": {"app": "web"}}))).is_some());
        assert!(managed_selector(&svc(json!({}))).is_none());
        assert!(managed_selector(&svc(json!({"selector": {}}))).is_none());
        assert!(
            managed_selector(&svc(
                json!({"type": "ExternalName", "selector": {"app": "web"}})
            ))
            .is_none()
        );
    }
}
