//! Volumes, claims, storage classes and CSI objects.

use serde_json::Value;
use time::OffsetDateTime;

use super::super::descriptions as d;
use super::super::format::{age, arr_at, obj_at, or, str_at, text};
use super::{AGE, Column, NAME, col, name, s, wide};

pub(super) const PERSISTENT_VOLUME: &[Column] = &[
    NAME,
    col("Capacity", "string", d::PV_SPEC_CAPACITY),
    col("Access Modes", "string", d::PV_SPEC_ACCESS_MODES),
    col("Reclaim Policy", "string", d::PV_SPEC_RECLAIM_POLICY),
    col("Status", "string", d::PV_STATUS_PHASE),
    col("Claim", "string", d::PV_SPEC_CLAIM_REF),
    col("StorageClass", "string", "StorageClass of the pv"),
    col(
        "VolumeAttributesClass",
        "string",
        "VolumeAttributesClass of the pv",
    ),
    col("Reason", "string", d::PV_STATUS_REASON),
    AGE,
    wide("VolumeMode", "string", d::PV_SPEC_VOLUME_MODE),
];

/// Upstream's `GetAccessModesAsString`.
fn access_modes(modes: &[Value]) -> String {
    let has = |m: &str| modes.iter().any(|v| v.as_str() == Some(m));
    [
        ("ReadWriteOnce", "RWO"),
        ("ReadOnlyMany", "ROX"),
        ("ReadWriteMany", "RWX"),
        ("ReadWriteOncePod", "RWOP"),
    ]
    .iter()
    .filter(|(mode, _)| has(mode))
    .map(|(_, short)| *short)
    .collect::<Vec<_>>()
    .join(",")
}

const BETA_STORAGE_CLASS: &str = "volume.beta.kubernetes.io/storage-class";

fn storage_class_of(o: &Value) -> String {
    match obj_at(o, "/metadata/annotations").and_then(|a| a.get(BETA_STORAGE_CLASS)) {
        Some(class) => text(class),
        None => str_at(o, "/spec/storageClassName").to_string(),
    }
}

fn terminating_or(o: &Value, phase: &str) -> String {
    if o.pointer("/metadata/deletionTimestamp")
        .is_some_and(|t| !t.is_null())
    {
        "Terminating".to_string()
    } else {
        phase.to_string()
    }
}

pub(super) fn persistent_volume(o: &Value, now: OffsetDateTime) -> Vec<Value> {
    let claim = match o.pointer("/spec/claimRef").filter(|c| c.is_object()) {
        Some(c) => format!("{}/{}", str_at(c, "/namespace"), str_at(c, "/name")),
        None => String::new(),
    };
    vec![
        name(o),
        s(o.pointer("/spec/capacity/storage")
            .map(text)
            .unwrap_or_else(|| "0".to_string())),
        s(access_modes(arr_at(o, "/spec/accessModes"))),
        Value::from(str_at(o, "/spec/persistentVolumeReclaimPolicy")),
        s(terminating_or(o, str_at(o, "/status/phase"))),
        s(claim),
        s(storage_class_of(o)),
        s(or(str_at(o, "/spec/volumeAttributesClassName"), "<unset>")),
        Value::from(str_at(o, "/status/reason")),
        s(age(o, now)),
        s(or(str_at(o, "/spec/volumeMode"), "<unset>")),
    ]
}

pub(super) const PERSISTENT_VOLUME_CLAIM: &[Column] = &[
    NAME,
    col("Status", "string", d::PVC_STATUS_PHASE),
    col("Volume", "string", d::PVC_SPEC_VOLUME_NAME),
    col("Capacity", "string", d::PVC_STATUS_CAPACITY),
    col("Access Modes", "string", d::PVC_STATUS_ACCESS_MODES),
    col("StorageClass", "string", "StorageClass of the pvc"),
    col(
        "VolumeAttributesClass",
        "string",
        "VolumeAttributesClass of the pvc",
    ),
    AGE,
    wide("VolumeMode", "string", d::PVC_SPEC_VOLUME_MODE),
];

pub(super) fn persistent_volume_claim(o: &Value, now: OffsetDateTime) -> Vec<Value> {
    let volume = str_at(o, "/spec/volumeName");
    let (capacity, modes) = if volume.is_empty() {
        (String::new(), String::new())
    } else {
        (
            o.pointer("/status/capacity/storage")
                .map(text)
                .unwrap_or_else(|| "0".to_string()),
            access_modes(arr_at(o, "/status/accessModes")),
        )
    };
    vec![
        name(o),
        s(terminating_or(o, str_at(o, "/status/phase"))),
        Value::from(volume),
        s(capacity),
        s(modes),
        s(storage_class_of(o)),
        s(or(str_at(o, "/spec/volumeAttributesClassName"), "<unset>")),
        s(age(o, now)),
        s(or(str_at(o, "/spec/volumeMode"), "<unset>")),
    ]
}

pub(super) const STORAGE_CLASS: &[Column] = &[
    NAME,
    col("Provisioner", "string", d::SC_PROVISIONER),
    col("ReclaimPolicy", "string", d::SC_RECLAIM_POLICY),
    col("VolumeBindingMode", "string", d::SC_VOLUME_BINDING_MODE),
    col(
        "AllowVolumeExpansion",
        "string",
        d::SC_ALLOW_VOLUME_EXPANSION,
    ),
    AGE,
];

pub(super) fn storage_class(o: &Value, now: OffsetDateTime) -> Vec<Value> {
    let annotations = obj_at(o, "/metadata/annotations");
    let is_default = [
        "storageclass.kubernetes.io/is-default-class",
        "storageclass.beta.kubernetes.io/is-default-class",
    ]
    .iter()
    .any(|k| annotations.and_then(|a| a.get(*k)).and_then(Value::as_str) == Some("true"));
    let mut class_name = str_at(o, "/metadata/name").to_string();
    if is_default {
        class_name.push_str(" (default)");
    }
    vec![
        s(class_name),
        Value::from(str_at(o, "/provisioner")),
        s(or(str_at(o, "/reclaimPolicy"), "Delete")),
        s(or(str_at(o, "/volumeBindingMode"), "Immediate")),
        Value::Bool(
            o.get("allowVolumeExpansion")
                .and_then(Value::as_bool)
                .unwrap_or(false),
        ),
        s(age(o, now)),
    ]
}

pub(super) const CSI_NODE: &[Column] = &[
    NAME,
    col(
        "Drivers",
        "integer",
        "Drivers indicates the number of CSI drivers registered on the node",
    ),
    AGE,
];

pub(super) fn csi_node(o: &Value, now: OffsetDateTime) -> Vec<Value> {
    vec![
        name(o),
        Value::from(arr_at(o, "/spec/drivers").len()),
        s(age(o, now)),
    ]
}

pub(super) const CSI_DRIVER: &[Column] = &[
    NAME,
    col("AttachRequired", "boolean", d::CSID_ATTACH_REQUIRED),
    col("PodInfoOnMount", "boolean", d::CSID_POD_INFO_ON_MOUNT),
    col("StorageCapacity", "boolean", d::CSID_STORAGE_CAPACITY),
    col("TokenRequests", "string", d::CSID_TOKEN_REQUESTS),
    col("RequiresRepublish", "boolean", d::CSID_REQUIRES_REPUBLISH),
    col("Modes", "string", d::CSID_MODES),
    AGE,
];

pub(super) fn csi_driver(o: &Value, now: OffsetDateTime) -> Vec<Value> {
    let flag = |f: &str, default: bool| {
        Value::Bool(
            o.pointer(&format!("/spec/{f}"))
                .and_then(Value::as_bool)
                .unwrap_or(default),
        )
    };
    let tokens = match o.pointer("/spec/tokenRequests").and_then(Value::as_array) {
        Some(list) => list
            .iter()
            .map(|t| str_at(t, "/audience"))
            .collect::<Vec<_>>()
            .join(","),
        None => "<unset>".to_string(),
    };
    let modes: Vec<String> = arr_at(o, "/spec/volumeLifecycleModes")
        .iter()
        .map(text)
        .collect();
    vec![
        name(o),
        flag("attachRequired", true),
        flag("podInfoOnMount", false),
        flag("storageCapacity", false),
        s(tokens),
        flag("requiresRepublish", false),
        s(or(&modes.join(","), "<none>")),
        s(age(o, now)),
    ]
}

pub(super) const VOLUME_ATTACHMENT: &[Column] = &[
    NAME,
    Column {
        name: "Attacher",
        kind: "string",
        format: "name",
        description: d::VA_SPEC_ATTACHER,
        priority: 0,
    },
    col("PV", "string", d::VA_SOURCE_PV_NAME),
    col("Node", "string", d::VA_SPEC_NODE_NAME),
    col("Attached", "boolean", d::VA_STATUS_ATTACHED),
    AGE,
];

pub(super) fn volume_attachment(o: &Value, now: OffsetDateTime) -> Vec<Value> {
    vec![
        name(o),
        Value::from(str_at(o, "/spec/attacher")),
        Value::from(str_at(o, "/spec/source/persistentVolumeName")),
        Value::from(str_at(o, "/spec/nodeName")),
        Value::Bool(
            o.pointer("/status/attached")
                .and_then(Value::as_bool)
                .unwrap_or(false),
        ),
        s(age(o, now)),
    ]
}

pub(super) const CSI_STORAGE_CAPACITY: &[Column] = &[
    NAME,
    col("StorageClassName", "string", d::CSISC_STORAGE_CLASS_NAME),
    col("Capacity", "string", d::CSISC_CAPACITY),
];

pub(super) fn csi_storage_capacity(o: &Value, _now: OffsetDateTime) -> Vec<Value> {
    let capacity = o
        .get("capacity")
        .filter(|c| !c.is_null())
        .map(text)
        .unwrap_or_else(|| "<unset>".to_string());
    vec![
        name(o),
        Value::from(str_at(o, "/storageClassName")),
        s(capacity),
    ]
}
