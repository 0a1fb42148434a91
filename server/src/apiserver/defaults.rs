//! Defaulting of the built-in kinds, as kube-apiserver does it: the
//! defaulting functions of `pkg/apis/<group>/v1` (hand-written and
//! generated), the mutating admission steps every cluster runs on pods
//! (ServiceAccount, DefaultTolerationSeconds, Priority), and the create-time
//! strategy steps whose result clients see (the Job selector and labels, the
//! Namespace `kubernetes` finalizer and name label).
//!
//! Only absent fields are set (a string field also when empty, a
//! non-pointer integer also when 0, as Go's zero values are "unset"); the
//! few overwrites are upstream's own: the namespace name label, the
//! deprecated `serviceAccount` mirroring `serviceAccountName`, and
//! `sessionAffinityConfig` dropped with `sessionAffinity: None`.
//! Resource quantities come out in upstream's canonical form.
//!
//! # Layout
//! - `pod`: every PodSpec (pods and templates): containers, probes,
//!   volumes; the Pod-only defaults and admission steps.
//! - `workloads`: apps/v1, batch/v1, ReplicationController, PodTemplate,
//!   HorizontalPodAutoscaler.
//! - `network`: Service, Endpoints, EndpointSlice, NetworkPolicy, Ingress,
//!   IngressClass.
//! - `cluster`: Namespace, Secret, volumes and claims, Node, LimitRange,
//!   ResourceQuota, RBAC bindings, storage, CRDs, PriorityClass.
//! - `quantity`: `resource.Quantity` parsing and canonical form.

#[path = "defaults/cluster.rs"]
mod cluster;
#[path = "defaults/network.rs"]
mod network;
#[path = "defaults/pod.rs"]
mod pod;
#[path = "defaults/quantity.rs"]
mod quantity;
#[path = "defaults/workloads.rs"]
mod workloads;

use serde_json::{Value, json};

/// Sets the fields kube-apiserver defaults on a `resource` (lowercase
/// plural; group "" for core) object. Expects `metadata.uid` and
/// `metadata.name` set already (the Job selector is made from them).
/// Objects of other kinds, and values that are not objects, are left alone.
pub fn apply_defaults(group: &str, resource: &str, obj: &mut Value) {
    if !obj.is_object() {
        return;
    }
    match (group, resource) {
        ("", "pods") => pod::pod(obj),
        ("", "podtemplates") => workloads::pod_template(obj),
        ("", "replicationcontrollers") => workloads::replication_controller(obj),
        ("apps", "deployments") => workloads::deployment(obj),
        ("apps", "replicasets") => workloads::replica_set(obj),
        ("apps", "statefulsets") => workloads::stateful_set(obj),
        ("apps", "daemonsets") => workloads::daemon_set(obj),
        ("batch", "jobs") => workloads::job(obj),
        ("batch", "cronjobs") => workloads::cron_job(obj),
        ("autoscaling", "horizontalpodautoscalers") => workloads::horizontal_pod_autoscaler(obj),
        ("", "services") => network::service(obj),
        ("", "endpoints") => network::endpoints(obj),
        ("discovery.k8s.io", "endpointslices") => network::endpoint_slice(obj),
        ("networking.k8s.io", "networkpolicies") => network::network_policy(obj),
        ("networking.k8s.io", "ingresses") => network::ingress(obj),
        ("networking.k8s.io", "ingressclasses") => network::ingress_class(obj),
        ("", "namespaces") => cluster::namespace(obj),
        ("", "secrets") => cluster::secret(obj),
        ("", "persistentvolumes") => cluster::persistent_volume(obj),
        ("", "persistentvolumeclaims") => cluster::persistent_volume_claim(obj),
        ("", "nodes") => cluster::node(obj),
        ("", "limitranges") => cluster::limit_range(obj),
        ("", "resourcequotas") => cluster::resource_quota(obj),
        ("rbac.authorization.k8s.io", "rolebindings" | "clusterrolebindings") => {
            cluster::role_binding(obj)
        }
        ("storage.k8s.io", "storageclasses") => cluster::storage_class(obj),
        ("storage.k8s.io", "csidrivers") => cluster::csi_driver(obj),
        ("apiextensions.k8s.io", "customresourcedefinitions") => {
            cluster::custom_resource_definition(obj)
        }
        ("scheduling.k8s.io", "priorityclasses") => cluster::priority_class(obj),
        _ => {}
    }
}

/// Whether a field counts as unset: absent or null.
fn unset(obj: &Value, key: &str) -> bool {
    obj.get(key).is_none_or(Value::is_null)
}

/// Sets `obj[key]` when absent or null (Go pointer fields).
fn default_value(obj: &mut Value, key: &str, value: Value) {
    if let Some(map) = obj.as_object_mut()
        && map.get(key).is_none_or(Value::is_null)
    {
        map.insert(key.to_owned(), value);
    }
}

/// Sets `obj[key]` when absent, null or "" (Go string fields).
fn default_str(obj: &mut Value, key: &str, value: &str) {
    if let Some(map) = obj.as_object_mut()
        && map
            .get(key)
            .is_none_or(|v| v.is_null() || v.as_str() == Some(""))
    {
        map.insert(key.to_owned(), json!(value));
    }
}

/// Sets `obj[key]` when absent, null or 0 (Go non-pointer integers).
fn default_int(obj: &mut Value, key: &str, value: i64) {
    if let Some(map) = obj.as_object_mut()
        && map
            .get(key)
            .is_none_or(|v| v.is_null() || v.as_i64() == Some(0))
    {
        map.insert(key.to_owned(), json!(value));
    }
}

/// The string at `obj[key]`, "" when absent or another type.
fn str_of<'a>(obj: &'a Value, key: &str) -> &'a str {
    obj.get(key).and_then(Value::as_str).unwrap_or("")
}

/// The object at `obj[key]`, made `{}` when absent or null (a Go struct
/// field, always present); `None` when `obj` is not an object or the field
/// has another type.
fn child<'a>(obj: &'a mut Value, key: &str) -> Option<&'a mut Value> {
    let map = obj.as_object_mut()?;
    let slot = map.entry(key.to_owned()).or_insert(Value::Null);
    if slot.is_null() {
        *slot = json!({});
    }
    slot.is_object().then_some(slot)
}

/// The object at `obj[key]` if there is one (a Go pointer field).
fn existing<'a>(obj: &'a mut Value, key: &str) -> Option<&'a mut Value> {
    obj.get_mut(key).filter(|v| v.is_object())
}

/// The objects in the array at `obj[key]`.
fn items<'a>(obj: &'a mut Value, key: &str) -> impl Iterator<Item = &'a mut Value> {
    obj.get_mut(key)
        .and_then(Value::as_array_mut)
        .into_iter()
        .flatten()
        .filter(|v| v.is_object())
}

/// Whether the map at `obj[key]` is absent, null or has no entries.
fn empty_map(obj: &Value, key: &str) -> bool {
    obj.get(key)
        .and_then(Value::as_object)
        .is_none_or(|m| m.is_empty())
}

#[cfg(test)]
#[path = "defaults/tests.rs"]
mod tests;
