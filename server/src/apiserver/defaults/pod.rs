//! Pod specs. Every PodSpec (a Pod's and every template's) gets
//! `SetDefaults_PodSpec` and its containers', probes' and volumes'
//! defaults; a Pod alone also gets `SetDefaults_Pod` (service links,
//! requests from limits, host-network ports) and the admission steps:
//! ServiceAccount (`default`), DefaultTolerationSeconds (300 s for
//! not-ready and unreachable) and Priority (0, or a system class's value).

use serde_json::{Value, json};

use super::{
    child, cluster, default_int, default_str, default_value, existing, items, quantity, str_of,
    unset,
};

/// Tolerations DefaultTolerationSeconds adds unless the pod has its own.
const DEFAULT_TOLERATIONS: [&str; 2] = [
    "node.kubernetes.io/not-ready",
    "node.kubernetes.io/unreachable",
];

/// The built-in PriorityClasses and their values.
const SYSTEM_PRIORITIES: [(&str, i64); 2] = [
    ("system-node-critical", 2_000_001_000),
    ("system-cluster-critical", 2_000_000_000),
];

/// A Pod: PodSpec defaults, Pod defaults and admission.
pub(super) fn pod(obj: &mut Value) {
    let mirror = obj
        .pointer("/metadata/annotations/kubernetes.io~1config.mirror")
        .is_some();
    let Some(spec) = child(obj, "spec") else {
        return;
    };
    service_account(spec, (!mirror).then_some("default"));
    pod_spec(spec);
    default_value(spec, "enableServiceLinks", json!(true));
    requests_from_limits(spec);
    if spec.get("hostNetwork").and_then(Value::as_bool) == Some(true) {
        host_network_ports(spec);
    }
    default_tolerations(spec);
    priority(spec);
}

/// A PodTemplateSpec (`{metadata, spec}`): the PodSpec defaults.
pub(super) fn template(template: &mut Value) {
    if let Some(spec) = child(template, "spec") {
        service_account(spec, None);
        pod_spec(spec);
    }
}

/// `SetDefaults_PodSpec` and everything nested in a PodSpec.
fn pod_spec(spec: &mut Value) {
    default_str(spec, "dnsPolicy", "ClusterFirst");
    default_str(spec, "restartPolicy", "Always");
    default_value(spec, "securityContext", json!({}));
    default_value(spec, "terminationGracePeriodSeconds", json!(30));
    default_str(spec, "schedulerName", "default-scheduler");
    for volume in items(spec, "volumes") {
        pod_volume(volume);
    }
    for key in ["initContainers", "containers", "ephemeralContainers"] {
        for c in items(spec, key) {
            container(c);
        }
    }
    quantity::resource_list_at(spec, "overhead");
}

/// `serviceAccountName` from the deprecated `serviceAccount` when unset,
/// else `fallback` (the ServiceAccount admission's "default", pods only);
/// then `serviceAccount` mirrors it, as v1 conversion writes it.
fn service_account(spec: &mut Value, fallback: Option<&str>) {
    let mut name = str_of(spec, "serviceAccountName").to_owned();
    if name.is_empty() {
        name = str_of(spec, "serviceAccount").to_owned();
    }
    if name.is_empty() {
        name = fallback.unwrap_or_default().to_owned();
    }
    if !name.is_empty()
        && let Some(map) = spec.as_object_mut()
    {
        map.insert("serviceAccountName".into(), json!(name));
        map.insert("serviceAccount".into(), json!(name));
    }
}

/// A container's defaults (init and ephemeral ones too).
fn container(c: &mut Value) {
    let policy = pull_policy(str_of(c, "image"));
    default_str(c, "imagePullPolicy", policy);
    default_str(c, "terminationMessagePath", "/dev/termination-log");
    default_str(c, "terminationMessagePolicy", "File");
    for port in items(c, "ports") {
        default_str(port, "protocol", "TCP");
    }
    for env in items(c, "env") {
        if let Some(field_ref) = existing(env, "valueFrom").and_then(|v| existing(v, "fieldRef")) {
            default_str(field_ref, "apiVersion", "v1");
        }
    }
    if let Some(resources) = child(c, "resources") {
        quantity::resource_list_at(resources, "limits");
        quantity::resource_list_at(resources, "requests");
    }
    for key in ["livenessProbe", "readinessProbe", "startupProbe"] {
        if let Some(probe) = existing(c, key) {
            default_int(probe, "timeoutSeconds", 1);
            default_int(probe, "periodSeconds", 10);
            default_int(probe, "successThreshold", 1);
            default_int(probe, "failureThreshold", 3);
            handler(probe);
            if let Some(grpc) = existing(probe, "grpc") {
                default_value(grpc, "service", json!(""));
            }
        }
    }
    if let Some(lifecycle) = existing(c, "lifecycle") {
        for key in ["postStart", "preStop"] {
            if let Some(hook) = existing(lifecycle, key) {
                handler(hook);
            }
        }
    }
}

/// A probe's or hook's `httpGet`: path `/`, scheme HTTP.
fn handler(handler: &mut Value) {
    if let Some(http) = existing(handler, "httpGet") {
        default_str(http, "path", "/");
        default_str(http, "scheme", "HTTP");
    }
}

/// `imagePullPolicy` for `image`: Always for the `latest` tag, written or
/// implied (no tag, no digest), else IfNotPresent. A reference that does
/// not parse (empty, upper-case repository) gets IfNotPresent, as upstream.
pub(super) fn pull_policy(image: &str) -> &'static str {
    let (name, digest) = match image.split_once('@') {
        Some((name, digest)) => (name, Some(digest)),
        None => (image, None),
    };
    let last = name.rsplit('/').next().unwrap_or(name);
    let (repository, tag) = match last.rsplit_once(':') {
        Some((_, tag)) => (&name[..name.len() - tag.len() - 1], Some(tag)),
        None => (name, None),
    };
    let mut components = repository.split('/');
    let first = components.next().unwrap_or_default();
    // The first component may be a registry host (`Host:5000`, `localhost`).
    let host = first.contains(['.', ':']) || first == "localhost";
    let path_ok = (!host)
        .then_some(first)
        .into_iter()
        .chain(components)
        .all(|c| {
            !c.is_empty()
                && c.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b))
        });
    if repository.is_empty() || !path_ok || repository.chars().any(char::is_whitespace) {
        return "IfNotPresent";
    }
    match (tag, digest) {
        (Some("latest"), _) | (None, None) => "Always",
        _ => "IfNotPresent",
    }
}

/// A pod volume: `emptyDir: {}` when it names no source, then its
/// source's defaults.
fn pod_volume(volume: &mut Value) {
    let Some(map) = volume.as_object_mut() else {
        return;
    };
    if !map
        .iter()
        .any(|(key, value)| key != "name" && !value.is_null())
    {
        map.insert("emptyDir".into(), json!({}));
    }
    if let Some(empty_dir) = existing(volume, "emptyDir")
        && let Some(limit) = empty_dir.get_mut("sizeLimit")
    {
        quantity::canonicalize(limit);
    }
    for key in ["secret", "configMap", "downwardAPI", "projected"] {
        if let Some(source) = existing(volume, key) {
            default_value(source, "defaultMode", json!(420));
        }
    }
    if let Some(downward) = existing(volume, "downwardAPI") {
        field_refs(downward);
    }
    if let Some(projected) = existing(volume, "projected") {
        for source in items(projected, "sources") {
            if let Some(downward) = existing(source, "downwardAPI") {
                field_refs(downward);
            }
            if let Some(token) = existing(source, "serviceAccountToken") {
                default_value(token, "expirationSeconds", json!(3600));
            }
        }
    }
    if let Some(claim) =
        existing(volume, "ephemeral").and_then(|e| existing(e, "volumeClaimTemplate"))
        && let Some(spec) = child(claim, "spec")
    {
        cluster::claim_spec(spec);
    }
    volume_sources(volume);
}

/// `items[].fieldRef.apiVersion` of a downward API source.
fn field_refs(downward: &mut Value) {
    for item in items(downward, "items") {
        if let Some(field_ref) = existing(item, "fieldRef") {
            default_str(field_ref, "apiVersion", "v1");
        }
    }
}

/// Defaults of the sources a pod volume and a PersistentVolume share.
pub(super) fn volume_sources(source: &mut Value) {
    if let Some(host_path) = existing(source, "hostPath") {
        default_value(host_path, "type", json!(""));
    }
    if let Some(iscsi) = existing(source, "iscsi") {
        default_str(iscsi, "iscsiInterface", "default");
    }
    if let Some(rbd) = existing(source, "rbd") {
        default_str(rbd, "pool", "rbd");
        default_str(rbd, "user", "admin");
        default_str(rbd, "keyring", "/etc/ceph/keyring");
    }
    if let Some(disk) = existing(source, "azureDisk") {
        default_value(disk, "cachingMode", json!("ReadWrite"));
        default_value(disk, "kind", json!("Shared"));
        default_value(disk, "fsType", json!("ext4"));
        default_value(disk, "readOnly", json!(false));
    }
    if let Some(scale_io) = existing(source, "scaleIO") {
        default_str(scale_io, "storageMode", "ThinProvisioned");
        default_str(scale_io, "fsType", "xfs");
    }
}

/// Requests default to limits for what a container limits but does not
/// request (Pods only, not templates).
fn requests_from_limits(spec: &mut Value) {
    for key in ["initContainers", "containers"] {
        for c in items(spec, key) {
            let Some(resources) = existing(c, "resources") else {
                continue;
            };
            let Some(limits) = resources.get("limits").and_then(Value::as_object).cloned() else {
                continue;
            };
            let Some(requests) = child(resources, "requests").and_then(Value::as_object_mut) else {
                continue;
            };
            for (name, value) in limits {
                requests.entry(name).or_insert(value);
            }
            if requests.is_empty()
                && let Some(map) = resources.as_object_mut()
            {
                map.remove("requests");
            }
        }
    }
}

/// With host networking a container port's `hostPort` is its
/// `containerPort`.
fn host_network_ports(spec: &mut Value) {
    for key in ["initContainers", "containers"] {
        for c in items(spec, key) {
            for port in items(c, "ports") {
                if let Some(number) = port.get("containerPort").and_then(Value::as_i64) {
                    default_int(port, "hostPort", number);
                }
            }
        }
    }
}

/// DefaultTolerationSeconds: `NoExecute` tolerations of 300 s for
/// not-ready and unreachable nodes, unless one already covers them (same
/// or empty key, `NoExecute` or empty effect).
fn default_tolerations(spec: &mut Value) {
    let present: Vec<(String, String)> = spec
        .get("tolerations")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|t| (str_of(t, "key").to_owned(), str_of(t, "effect").to_owned()))
        .collect();
    let missing: Vec<Value> = DEFAULT_TOLERATIONS
        .iter()
        .filter(|taint| {
            !present
                .iter()
                .any(|(key, effect)| (key == *taint || key.is_empty()) && (effect == "NoExecute" || effect.is_empty()))
        })
        .map(|taint| json!({ "key": taint, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300 }))
        .collect();
    if missing.is_empty() {
        return;
    }
    if unset(spec, "tolerations") {
        default_value(spec, "tolerations", json!([]));
    }
    if let Some(list) = spec.get_mut("tolerations").and_then(Value::as_array_mut) {
        list.extend(missing);
    }
}

/// Priority admission without a cluster default class: priority 0 and
/// PreemptLowerPriority when no class is named, a system class's value
/// when one is. Other classes are the caller's to look up.
fn priority(spec: &mut Value) {
    let class = str_of(spec, "priorityClassName");
    let value = if class.is_empty() {
        0
    } else if let Some((_, value)) = SYSTEM_PRIORITIES.iter().find(|(name, _)| *name == class) {
        *value
    } else {
        return;
    };
    default_value(spec, "priority", json!(value));
    default_value(spec, "preemptionPolicy", json!("PreemptLowerPriority"));
}
