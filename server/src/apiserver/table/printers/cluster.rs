//! Nodes, namespaces, configuration and events.

use std::collections::BTreeSet;

use serde_json::Value;
use time::OffsetDateTime;

use super::super::descriptions as d;
use super::super::format::{age, arr_at, int_at, obj_at, or, parse_time, since, str_at, text};
use super::{AGE, Column, NAME, col, name, s, wide};

pub(super) const NODE: &[Column] = &[
    NAME,
    col("Status", "string", "The status of the node"),
    col("Roles", "string", "The roles of the node"),
    AGE,
    col("Version", "string", d::NODE_INFO_KUBELET_VERSION),
    wide("Internal-IP", "string", d::NODE_STATUS_ADDRESSES),
    wide("External-IP", "string", d::NODE_STATUS_ADDRESSES),
    wide("OS-Image", "string", d::NODE_INFO_OS_IMAGE),
    wide("Kernel-Version", "string", d::NODE_INFO_KERNEL_VERSION),
    wide(
        "Container-Runtime",
        "string",
        d::NODE_INFO_CONTAINER_RUNTIME,
    ),
];

pub(super) fn node(o: &Value, now: OffsetDateTime) -> Vec<Value> {
    let mut status: Vec<&str> = Vec::new();
    if let Some(c) = arr_at(o, "/status/conditions")
        .iter()
        .rev()
        .find(|c| str_at(c, "/type") == "Ready")
    {
        status.push(if str_at(c, "/status") == "True" {
            "Ready"
        } else {
            "NotReady"
        });
    }
    if status.is_empty() {
        status.push("Unknown");
    }
    if o.pointer("/spec/unschedulable").and_then(Value::as_bool) == Some(true) {
        status.push("SchedulingDisabled");
    }
    let mut roles = BTreeSet::new();
    for (k, v) in obj_at(o, "/metadata/labels").into_iter().flatten() {
        if let Some(role) = k
            .strip_prefix("node-role.kubernetes.io/")
            .filter(|r| !r.is_empty())
        {
            roles.insert(role.to_string());
        } else if k == "kubernetes.io/role" && !text(v).is_empty() {
            roles.insert(text(v));
        }
    }
    let address = |kind: &str| {
        arr_at(o, "/status/addresses")
            .iter()
            .find(|a| str_at(a, "/type") == kind)
            .map(|a| str_at(a, "/address").to_string())
            .unwrap_or_else(|| "<none>".to_string())
    };
    let info = |field: &str| or(str_at(o, &format!("/status/nodeInfo/{field}")), "<unknown>");
    vec![
        name(o),
        s(status.join(",")),
        s(or(
            &roles.into_iter().collect::<Vec<_>>().join(","),
            "<none>",
        )),
        s(age(o, now)),
        Value::from(str_at(o, "/status/nodeInfo/kubeletVersion")),
        s(address("InternalIP")),
        s(address("ExternalIP")),
        s(info("osImage")),
        s(info("kernelVersion")),
        s(info("containerRuntimeVersion")),
    ]
}

pub(super) const NAMESPACE: &[Column] = &[
    NAME,
    col("Status", "string", "The status of the namespace"),
    AGE,
];

pub(super) fn namespace(o: &Value, now: OffsetDateTime) -> Vec<Value> {
    vec![
        name(o),
        Value::from(str_at(o, "/status/phase")),
        s(age(o, now)),
    ]
}

pub(super) const SECRET: &[Column] = &[
    NAME,
    col("Type", "string", d::SECRET_TYPE),
    col("Data", "string", d::SECRET_DATA),
    AGE,
];

pub(super) fn secret(o: &Value, now: OffsetDateTime) -> Vec<Value> {
    // stringData overwrites data when converted, so count the union of keys.
    let keys: BTreeSet<&String> = obj_at(o, "/data")
        .into_iter()
        .flatten()
        .chain(obj_at(o, "/stringData").into_iter().flatten())
        .map(|(k, _)| k)
        .collect();
    vec![
        name(o),
        Value::from(str_at(o, "/type")),
        Value::from(keys.len()),
        s(age(o, now)),
    ]
}

pub(super) const SERVICE_ACCOUNT: &[Column] = &[NAME, col("Secrets", "string", d::SA_SECRETS), AGE];

pub(super) fn service_account(o: &Value, now: OffsetDateTime) -> Vec<Value> {
    vec![
        name(o),
        Value::from(arr_at(o, "/secrets").len()),
        s(age(o, now)),
    ]
}

pub(super) const CONFIG_MAP: &[Column] = &[NAME, col("Data", "string", d::CONFIGMAP_DATA), AGE];

pub(super) fn config_map(o: &Value, now: OffsetDateTime) -> Vec<Value> {
    let count =
        obj_at(o, "/data").map_or(0, |m| m.len()) + obj_at(o, "/binaryData").map_or(0, |m| m.len());
    vec![name(o), Value::from(count), s(age(o, now))]
}

pub(super) const RESOURCE_QUOTA: &[Column] = &[
    NAME,
    col(
        "Request",
        "string",
        "Request represents a minimum amount of cpu/memory that a container may consume.",
    ),
    col(
        "Limit",
        "string",
        "Limits control the maximum amount of cpu/memory that a container may use independent of contention on the node.",
    ),
    AGE,
];

pub(super) fn resource_quota(o: &Value, now: OffsetDateTime) -> Vec<Value> {
    let mut requests = Vec::new();
    let mut limits = Vec::new();
    for (resource, hard) in obj_at(o, "/status/hard").into_iter().flatten() {
        let used = obj_at(o, "/status/used")
            .and_then(|u| u.get(resource))
            .map(text)
            .unwrap_or_else(|| "0".to_string());
        let entry = format!("{resource}: {used}/{}", text(hard));
        if resource.starts_with("limits.") {
            limits.push(entry)
        } else {
            requests.push(entry)
        }
    }
    vec![
        name(o),
        s(requests.join(", ")),
        s(limits.join(", ")),
        s(age(o, now)),
    ]
}

pub(super) const COMPONENT_STATUS: &[Column] = &[
    NAME,
    col("Status", "string", "Status of the component conditions"),
    col("Message", "string", "Message of the component conditions"),
    col("Error", "string", "Error of the component conditions"),
];

pub(super) fn component_status(o: &Value, _now: OffsetDateTime) -> Vec<Value> {
    let (status, message, error) = match arr_at(o, "/conditions")
        .iter()
        .find(|c| str_at(c, "/type") == "Healthy")
    {
        Some(c) => (
            if str_at(c, "/status") == "True" {
                "Healthy"
            } else {
                "Unhealthy"
            },
            str_at(c, "/message"),
            str_at(c, "/error"),
        ),
        None => ("Unknown", "", ""),
    };
    vec![name(o), s(status), s(message), s(error)]
}

pub(super) const EVENT: &[Column] = &[
    col("Last Seen", "string", d::EVENT_LAST_TIMESTAMP),
    col("Type", "string", d::EVENT_TYPE),
    col("Reason", "string", d::EVENT_REASON),
    col("Object", "string", d::EVENT_INVOLVED_OBJECT),
    wide("Subobject", "string", d::OBJECT_REFERENCE_FIELD_PATH),
    wide("Source", "string", d::EVENT_SOURCE),
    col("Message", "string", d::EVENT_MESSAGE),
    wide("First Seen", "string", d::EVENT_FIRST_TIMESTAMP),
    wide("Count", "string", d::EVENT_COUNT),
    Column {
        name: "Name",
        kind: "string",
        format: "name",
        description: d::META_NAME,
        priority: 1,
    },
];

/// Both core/v1 and events.k8s.io/v1 Events, read through upstream's internal field names.
pub(super) fn event(o: &Value, now: OffsetDateTime) -> Vec<Value> {
    let new_api = str_at(o, "/apiVersion").starts_with("events.k8s.io/")
        || o.get("regarding").is_some()
        || o.get("note").is_some();
    let field =
        |core: &'static str, events_v1: &'static str| o.get(if new_api { events_v1 } else { core });
    let first_seen = field("firstTimestamp", "deprecatedFirstTimestamp").filter(|t| !t.is_null());
    let first = match first_seen.and_then(Value::as_str).and_then(parse_time) {
        Some(_) => since(now, first_seen),
        None => since(now, o.get("eventTime")),
    };
    let last_seen = field("lastTimestamp", "deprecatedLastTimestamp");
    let mut last = match last_seen.and_then(Value::as_str).and_then(parse_time) {
        Some(_) => since(now, last_seen),
        None => first.clone(),
    };
    let mut count = field("count", "deprecatedCount")
        .and_then(Value::as_i64)
        .unwrap_or(0);
    if let Some(series) = o.get("series").filter(|s| s.is_object()) {
        last = since(now, series.get("lastObservedTime"));
        count = int_at(series, "/count");
    } else if count == 0 {
        count = 1;
    }
    let involved = field("involvedObject", "regarding").unwrap_or(&Value::Null);
    let kind = str_at(involved, "/kind").to_lowercase();
    let target = match str_at(involved, "/name") {
        "" => kind,
        n => format!("{kind}/{n}"),
    };
    let source = field("source", "deprecatedSource").unwrap_or(&Value::Null);
    let component = or(
        str_at(source, "/component"),
        str_at(
            o,
            if new_api {
                "/reportingController"
            } else {
                "/reportingComponent"
            },
        ),
    );
    let instance = or(str_at(source, "/host"), str_at(o, "/reportingInstance"));
    let source_text = if instance.is_empty() {
        component
    } else {
        format!("{component}, {instance}")
    };
    let message = field("message", "note").map(text).unwrap_or_default();
    vec![
        s(last),
        Value::from(str_at(o, "/type")),
        Value::from(str_at(o, "/reason")),
        s(target),
        Value::from(str_at(involved, "/fieldPath")),
        s(source_text),
        s(message.trim()),
        s(first),
        Value::from(count),
        name(o),
    ]
}
