//! Cluster-scoped and storage kinds: Namespace, Secret, PersistentVolume
//! and claims, Node, LimitRange, ResourceQuota, RBAC bindings,
//! StorageClass, CSIDriver, CustomResourceDefinition, PriorityClass.

use serde_json::{Map, Value, json};

use super::{child, default_str, default_value, existing, items, pod, quantity, str_of};

const RBAC_GROUP: &str = "rbac.authorization.k8s.io";

/// Namespace: the `kubernetes.io/metadata.name` label always equals the
/// name; on create the `kubernetes` finalizer (only when the client sent
/// no `spec.finalizers`, so finalizing can still empty the list).
pub(super) fn namespace(obj: &mut Value) {
    let name = obj
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_owned();
    let deleting = obj
        .pointer("/metadata/deletionTimestamp")
        .is_some_and(|v| !v.is_null());
    if !name.is_empty()
        && let Some(labels) = child(obj, "metadata")
            .and_then(|m| child(m, "labels"))
            .and_then(Value::as_object_mut)
    {
        labels.insert("kubernetes.io/metadata.name".into(), json!(name));
    }
    if !deleting && let Some(spec) = child(obj, "spec") {
        default_value(spec, "finalizers", json!(["kubernetes"]));
    }
}

/// Secret: type Opaque.
pub(super) fn secret(obj: &mut Value) {
    default_str(obj, "type", "Opaque");
}

/// PersistentVolume: reclaim policy Retain, volume mode Filesystem, phase
/// Pending, and its source's defaults.
pub(super) fn persistent_volume(obj: &mut Value) {
    if let Some(spec) = child(obj, "spec") {
        default_str(spec, "persistentVolumeReclaimPolicy", "Retain");
        default_value(spec, "volumeMode", json!("Filesystem"));
        quantity::resource_list_at(spec, "capacity");
        pod::volume_sources(spec);
    }
    if let Some(status) = child(obj, "status") {
        default_str(status, "phase", "Pending");
    }
}

/// PersistentVolumeClaim: volume mode Filesystem, phase Pending.
pub(super) fn persistent_volume_claim(obj: &mut Value) {
    if let Some(spec) = child(obj, "spec") {
        claim_spec(spec);
    }
    claim_status(obj);
}

/// A claim's status (claims and StatefulSet claim templates).
pub(super) fn claim_status(obj: &mut Value) {
    if let Some(status) = child(obj, "status") {
        default_str(status, "phase", "Pending");
        quantity::resource_list_at(status, "capacity");
        quantity::resource_list_at(status, "allocatedResources");
    }
}

/// A PersistentVolumeClaimSpec (claims, claim templates, ephemeral volumes).
pub(super) fn claim_spec(spec: &mut Value) {
    default_value(spec, "volumeMode", json!("Filesystem"));
    if let Some(resources) = child(spec, "resources") {
        quantity::resource_list_at(resources, "limits");
        quantity::resource_list_at(resources, "requests");
    }
}

/// Node: allocatable defaults to capacity.
pub(super) fn node(obj: &mut Value) {
    let Some(status) = existing(obj, "status") else {
        return;
    };
    quantity::resource_list_at(status, "capacity");
    if let Some(capacity) = status.get("capacity").filter(|c| c.is_object()).cloned() {
        default_value(status, "allocatable", capacity);
    }
    quantity::resource_list_at(status, "allocatable");
}

/// LimitRange: for `Container` items the default limit comes from `max`,
/// the default request from the default limit, else from `min`.
pub(super) fn limit_range(obj: &mut Value) {
    let Some(spec) = existing(obj, "spec") else {
        return;
    };
    for item in items(spec, "limits") {
        for key in [
            "max",
            "min",
            "default",
            "defaultRequest",
            "maxLimitRequestRatio",
        ] {
            quantity::resource_list_at(item, key);
        }
        if str_of(item, "type") != "Container" {
            continue;
        }
        let list = |item: &Value, key: &str| {
            item.get(key)
                .and_then(Value::as_object)
                .cloned()
                .unwrap_or_default()
        };
        let mut limit = list(item, "default");
        for (name, value) in list(item, "max") {
            limit.entry(name).or_insert(value);
        }
        let mut request = list(item, "defaultRequest");
        for (name, value) in limit.iter().chain(list(item, "min").iter()) {
            request.entry(name.clone()).or_insert_with(|| value.clone());
        }
        set_list(item, "default", limit);
        set_list(item, "defaultRequest", request);
    }
}

/// Writes a resource list, leaving an empty one out as upstream's output does.
fn set_list(item: &mut Value, key: &str, list: Map<String, Value>) {
    if let Some(map) = item.as_object_mut()
        && !list.is_empty()
    {
        map.insert(key.to_owned(), Value::Object(list));
    }
}

/// ResourceQuota: its quantities in canonical form.
pub(super) fn resource_quota(obj: &mut Value) {
    if let Some(spec) = existing(obj, "spec") {
        quantity::resource_list_at(spec, "hard");
    }
    if let Some(status) = existing(obj, "status") {
        quantity::resource_list_at(status, "hard");
        quantity::resource_list_at(status, "used");
    }
}

/// RoleBinding and ClusterRoleBinding: the RBAC API group on the role
/// reference and on User and Group subjects.
pub(super) fn role_binding(obj: &mut Value) {
    if let Some(role_ref) = child(obj, "roleRef") {
        default_str(role_ref, "apiGroup", RBAC_GROUP);
    }
    for subject in items(obj, "subjects") {
        if matches!(str_of(subject, "kind"), "User" | "Group") {
            default_str(subject, "apiGroup", RBAC_GROUP);
        }
    }
}

/// StorageClass: reclaim policy Delete, binding mode Immediate.
pub(super) fn storage_class(obj: &mut Value) {
    default_value(obj, "reclaimPolicy", json!("Delete"));
    default_value(obj, "volumeBindingMode", json!("Immediate"));
}

/// CSIDriver: the spec's flags and modes.
pub(super) fn csi_driver(obj: &mut Value) {
    let Some(spec) = child(obj, "spec") else {
        return;
    };
    default_value(spec, "attachRequired", json!(true));
    default_value(spec, "podInfoOnMount", json!(false));
    default_value(spec, "storageCapacity", json!(false));
    default_value(spec, "fsGroupPolicy", json!("ReadWriteOnceWithFSType"));
    default_value(spec, "requiresRepublish", json!(false));
    default_value(spec, "seLinuxMount", json!(false));
    if empty_list(spec, "volumeLifecycleModes")
        && let Some(map) = spec.as_object_mut()
    {
        map.insert("volumeLifecycleModes".into(), json!(["Persistent"]));
    }
}

fn empty_list(obj: &Value, key: &str) -> bool {
    obj.get(key)
        .and_then(Value::as_array)
        .is_none_or(Vec::is_empty)
}

/// CustomResourceDefinition: singular and list kind from the kind,
/// conversion strategy None, webhook service port 443.
pub(super) fn custom_resource_definition(obj: &mut Value) {
    let Some(spec) = child(obj, "spec") else {
        return;
    };
    if let Some(names) = child(spec, "names") {
        let kind = str_of(names, "kind").to_owned();
        if !kind.is_empty() {
            default_str(names, "singular", &kind.to_lowercase());
            default_str(names, "listKind", &format!("{kind}List"));
        }
    }
    default_value(spec, "conversion", json!({ "strategy": "None" }));
    if let Some(service) = existing(spec, "conversion")
        .and_then(|c| existing(c, "webhook"))
        .and_then(|w| existing(w, "clientConfig"))
        .and_then(|c| existing(c, "service"))
    {
        default_value(service, "port", json!(443));
    }
}

/// PriorityClass: preemption policy PreemptLowerPriority.
pub(super) fn priority_class(obj: &mut Value) {
    default_value(obj, "preemptionPolicy", json!("PreemptLowerPriority"));
}
