//! PersistentVolumeClaims, PersistentVolumes and StorageClasses.

use serde_json::Value;

use super::cause::{
    Errs, diff, field, forbidden, go_quote, go_value, index, invalid, list, not_supported, opt_s,
    required, s, semantic, sorted_entries, strings,
};
use super::meta::label_selector;
use super::names::{dns1123_subdomain, qualified_name};
use super::quantity::{QUANTITY_FORMAT_ERROR, Quantity};
use super::volumes::source;

const ACCESS_MODES: &[&str] = &[
    "ReadOnlyMany",
    "ReadWriteMany",
    "ReadWriteOnce",
    "ReadWriteOncePod",
];

/// Volume source fields of a PersistentVolume.
const PV_SOURCES: &[&str] = &[
    "hostPath",
    "gcePersistentDisk",
    "awsElasticBlockStore",
    "glusterfs",
    "flocker",
    "nfs",
    "rbd",
    "quobyte",
    "cephfs",
    "iscsi",
    "cinder",
    "fc",
    "flexVolume",
    "azureFile",
    "vsphereVolume",
    "photonPersistentDisk",
    "portworxVolume",
    "azureDisk",
    "scaleIO",
    "local",
    "storageos",
    "csi",
];

fn access_modes(spec: &Value, required_detail: &str, errs: &mut Errs) {
    let modes = strings(spec.get("accessModes"));
    if modes.is_empty() {
        required(errs, "spec.accessModes", required_detail);
    }
    let mut once_pod = false;
    let mut other = false;
    for mode in &modes {
        if !ACCESS_MODES.contains(mode) {
            not_supported(errs, "spec.accessModes", go_quote(mode), ACCESS_MODES);
        } else if *mode == "ReadWriteOncePod" {
            once_pod = true;
        } else {
            other = true;
        }
    }
    if once_pod && other {
        forbidden(
            errs,
            "spec.accessModes",
            "may not use ReadWriteOncePod with other access modes",
        );
    }
}

fn class_name(spec: &Value, name: &str, errs: &mut Errs) {
    if let Some(class) = opt_s(spec, name).filter(|c| !c.is_empty()) {
        for msg in dns1123_subdomain(class) {
            invalid(errs, &format!("spec.{name}"), go_quote(class), &msg);
        }
    }
}

fn volume_mode(spec: &Value, errs: &mut Errs) {
    if let Some(mode) = opt_s(spec, "volumeMode")
        && !matches!(mode, "Block" | "Filesystem")
    {
        not_supported(
            errs,
            "spec.volumeMode",
            go_quote(mode),
            &["Block", "Filesystem"],
        );
    }
}

fn requested_storage(spec: &Value) -> Option<&Value> {
    spec.get("resources")
        .and_then(|r| r.get("requests"))
        .and_then(|r| r.get("storage"))
}

/// core/v1 PersistentVolumeClaim (create, or update when `old` is given).
pub(super) fn persistent_volume_claim(obj: &Value, old: Option<&Value>, errs: &mut Errs) {
    let spec = obj.get("spec").unwrap_or(&Value::Null);
    access_modes(spec, "at least 1 access mode is required", errs);
    label_selector(field(spec, "selector"), "spec.selector", errs);
    match requested_storage(spec) {
        None => required(errs, "spec.resources[storage]", ""),
        Some(v) => match Quantity::from_value(v) {
            None => invalid(
                errs,
                "spec.resources[storage]",
                go_value(Some(v)),
                QUANTITY_FORMAT_ERROR,
            ),
            Some(q) if !q.is_positive() => invalid(
                errs,
                "spec.resources[storage]",
                go_quote(&q.canonical()),
                "must be greater than zero",
            ),
            Some(_) => {}
        },
    }
    class_name(spec, "storageClassName", errs);
    class_name(spec, "volumeAttributesClassName", errs);
    volume_mode(spec, errs);
    for name in ["dataSource", "dataSourceRef"] {
        if let Some(src) = field(spec, name) {
            if s(src, "name").is_empty() {
                required(errs, &format!("spec.{name}.name"), "");
            }
            if s(src, "kind").is_empty() {
                required(errs, &format!("spec.{name}.kind"), "");
            }
            if s(src, "apiGroup").is_empty() && s(src, "kind") != "PersistentVolumeClaim" {
                invalid(
                    errs,
                    &format!("spec.{name}"),
                    go_quote(s(src, "kind")),
                    "must be 'PersistentVolumeClaim' when referencing the default apiGroup",
                );
            }
        }
    }
    if let Some(old) = old {
        claim_update(obj, old, errs);
    }
}

fn claim_update(obj: &Value, old: &Value, errs: &mut Errs) {
    let new_spec = obj.get("spec").unwrap_or(&Value::Null);
    let old_spec = old.get("spec").unwrap_or(&Value::Null);
    let mut new_clone = semantic(new_spec);
    let mut old_clone = semantic(old_spec);
    let set = |v: &mut Value, name: &str, from: Option<&Value>| {
        if let Some(m) = v.as_object_mut() {
            match from {
                Some(x) => {
                    m.insert(name.to_owned(), x.clone());
                }
                None => {
                    m.remove(name);
                }
            }
        }
    };
    // The volume name may be set once; a missing class may be set once.
    if s(old_spec, "volumeName").is_empty() {
        let v = new_clone.get("volumeName").cloned();
        set(&mut old_clone, "volumeName", v.as_ref());
    }
    if field(old_spec, "storageClassName").is_none() {
        let v = new_clone.get("storageClassName").cloned();
        set(&mut old_clone, "storageClassName", v.as_ref());
    }
    let bound = obj.get("status").map(|st| s(st, "phase")) == Some("Bound");
    if bound {
        let storage = requested_storage(&old_clone).cloned();
        if let Some(requests) = new_clone
            .get_mut("resources")
            .and_then(|r| r.get_mut("requests"))
            .and_then(Value::as_object_mut)
        {
            match storage {
                Some(v) => {
                    requests.insert("storage".into(), v);
                }
                None => {
                    requests.remove("storage");
                }
            }
        }
        let v = old_clone.get("volumeAttributesClassName").cloned();
        set(&mut new_clone, "volumeAttributesClassName", v.as_ref());
    }
    let (new_clone, old_clone) = (semantic(&new_clone), semantic(&old_clone));
    if new_clone != old_clone {
        forbidden(
            errs,
            "spec",
            &format!(
                "spec is immutable after creation except resources.requests and volumeAttributesClassName for bound claims\n  core.PersistentVolumeClaimSpec{{\n{}\n  }}\n",
                diff(&old_clone, &new_clone)
            ),
        );
    }
    let size = |spec: &Value| requested_storage(spec).and_then(Quantity::from_value);
    let capacity = old
        .get("status")
        .and_then(|st| st.get("capacity"))
        .and_then(|c| c.get("storage"))
        .and_then(Quantity::from_value);
    if let (Some(new), Some(old_size)) = (size(new_spec), size(old_spec)) {
        let shrinks = new.cmp_value(&old_size) == std::cmp::Ordering::Less;
        // Shrinking back towards the capacity recovers a failed expansion.
        if shrinks && capacity.is_some_and(|c| new.cmp_value(&c) != std::cmp::Ordering::Greater) {
            forbidden(
                errs,
                "spec.resources.requests.storage",
                "field can not be less than status.capacity",
            );
        }
    }
    if field(new_spec, "volumeMode") != field(old_spec, "volumeMode") {
        invalid(
            errs,
            "volumeMode",
            go_value(field(new_spec, "volumeMode")),
            "field is immutable",
        );
    }
}

/// core/v1 PersistentVolume (create, or update when `old` is given).
pub(super) fn persistent_volume(obj: &Value, old: Option<&Value>, errs: &mut Errs) {
    let spec = obj.get("spec").unwrap_or(&Value::Null);
    access_modes(spec, "", errs);
    let capacity = spec.get("capacity").and_then(Value::as_object);
    if capacity.is_none_or(|c| c.is_empty()) {
        required(errs, "spec.capacity", "");
    }
    if capacity.is_none_or(|c| !c.contains_key("storage") || c.len() > 1) {
        let items: Vec<String> = sorted_entries(spec.get("capacity"))
            .iter()
            .map(|(k, v)| format!("{}:{}", go_quote(k), go_value(Some(v))))
            .collect();
        not_supported(
            errs,
            "spec.capacity",
            format!("core.ResourceList{{{}}}", items.join(", ")),
            &["storage"],
        );
    }
    for (k, v) in sorted_entries(spec.get("capacity")) {
        let path = format!("spec.capacity[{k}]");
        match Quantity::from_value(v) {
            None => invalid(errs, &path, go_value(Some(v)), QUANTITY_FORMAT_ERROR),
            Some(q) if !q.is_positive() => invalid(
                errs,
                &path,
                go_quote(&q.canonical()),
                "must be greater than zero",
            ),
            Some(_) => {}
        }
    }
    if let Some(policy) = opt_s(spec, "persistentVolumeReclaimPolicy").filter(|p| !p.is_empty())
        && !matches!(policy, "Delete" | "Recycle" | "Retain")
    {
        not_supported(
            errs,
            "spec.persistentVolumeReclaimPolicy",
            go_quote(policy),
            &["Delete", "Recycle", "Retain"],
        );
    }
    source(spec, "spec", PV_SOURCES, errs);
    let first = PV_SOURCES.iter().find(|name| field(spec, name).is_some());
    if first == Some(&"local") && field(spec, "nodeAffinity").is_none() {
        required(
            errs,
            "spec.nodeAffinity",
            "Local volume requires node affinity",
        );
    }
    if let Some(csi) = field(spec, "csi")
        && s(csi, "volumeHandle").is_empty()
    {
        required(errs, "spec.csi.volumeHandle", "");
    }
    class_name(spec, "storageClassName", errs);
    volume_mode(spec, errs);
    if let Some(old) = old {
        let old_spec = old.get("spec").unwrap_or(&Value::Null);
        let sources = |spec: &Value| {
            let picked: serde_json::Map<String, Value> = PV_SOURCES
                .iter()
                .filter_map(|name| field(spec, name).map(|v| ((*name).to_owned(), v.clone())))
                .collect();
            semantic(&Value::Object(picked))
        };
        let (new_src, old_src) = (sources(spec), sources(old_spec));
        if new_src != old_src {
            forbidden(
                errs,
                "spec.persistentvolumesource",
                &format!(
                    "spec.persistentvolumesource is immutable after creation\n  core.PersistentVolumeSource{{\n{}\n  }}\n",
                    diff(&old_src, &new_src)
                ),
            );
        }
        if field(spec, "volumeMode") != field(old_spec, "volumeMode") {
            invalid(
                errs,
                "volumeMode",
                go_value(field(spec, "volumeMode")),
                "field is immutable",
            );
        }
    }
}

/// storage.k8s.io/v1 StorageClass (create, or update when `old` is given).
pub(super) fn storage_class(obj: &Value, old: Option<&Value>, errs: &mut Errs) {
    let provisioner = s(obj, "provisioner");
    if provisioner.is_empty() {
        required(errs, "provisioner", "");
    } else {
        if provisioner.len() > 63 {
            super::cause::too_long(errs, "provisioner", 63);
        }
        for msg in qualified_name(&provisioner.to_lowercase()) {
            invalid(errs, "provisioner", go_quote(provisioner), &msg);
        }
    }
    if let Some(policy) = opt_s(obj, "reclaimPolicy")
        && !matches!(policy, "Delete" | "Retain")
    {
        not_supported(
            errs,
            "reclaimPolicy",
            go_quote(policy),
            &["Delete", "Retain"],
        );
    }
    if let Some(mode) = opt_s(obj, "volumeBindingMode")
        && !matches!(mode, "Immediate" | "WaitForFirstConsumer")
    {
        not_supported(
            errs,
            "volumeBindingMode",
            go_quote(mode),
            &["Immediate", "WaitForFirstConsumer"],
        );
    }
    for (i, option) in list(obj, "mountOptions").iter().enumerate() {
        if option.as_str().is_some_and(str::is_empty) {
            required(errs, &index("mountOptions", i), "");
        }
    }
    let Some(old) = old else {
        return;
    };
    if semantic(obj.get("parameters").unwrap_or(&Value::Null))
        != semantic(old.get("parameters").unwrap_or(&Value::Null))
    {
        forbidden(errs, "parameters", "updates to parameters are forbidden.");
    }
    if provisioner != s(old, "provisioner") {
        forbidden(errs, "provisioner", "updates to provisioner are forbidden.");
    }
    let policy = |v: &Value| opt_s(v, "reclaimPolicy").unwrap_or("Delete").to_owned();
    if policy(obj) != policy(old) {
        forbidden(
            errs,
            "reclaimPolicy",
            "updates to reclaimPolicy are forbidden.",
        );
    }
    if field(obj, "volumeBindingMode").is_some()
        && field(obj, "volumeBindingMode") != field(old, "volumeBindingMode")
    {
        invalid(
            errs,
            "volumeBindingMode",
            go_value(field(obj, "volumeBindingMode")),
            "field is immutable",
        );
    }
}
