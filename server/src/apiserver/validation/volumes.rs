//! Pod volumes (`ValidateVolumes`) and the sources users write most.

use std::collections::BTreeSet;

use serde_json::Value;

use super::cause::{
    Errs, child, duplicate, field, forbidden, go_quote, index, int, invalid, list, required, s,
};
use super::names::dns1123_label;

/// Volume source fields of a pod volume, in upstream's checking order.
const POD_SOURCES: &[&str] = &[
    "emptyDir",
    "hostPath",
    "gitRepo",
    "gcePersistentDisk",
    "awsElasticBlockStore",
    "secret",
    "nfs",
    "iscsi",
    "glusterfs",
    "flocker",
    "persistentVolumeClaim",
    "rbd",
    "cinder",
    "cephfs",
    "quobyte",
    "downwardAPI",
    "fc",
    "flexVolume",
    "configMap",
    "azureFile",
    "vsphereVolume",
    "photonPersistentDisk",
    "portworxVolume",
    "azureDisk",
    "storageos",
    "projected",
    "scaleIO",
    "csi",
    "ephemeral",
    "image",
];

/// The kinds of volume sources a volume uses, so that volume devices can
/// require a claim.
#[derive(Debug, Default)]
pub(super) struct Volumes {
    /// Names of the valid volumes.
    pub names: BTreeSet<String>,
    /// Names of the valid volumes backed by a claim (PVC or ephemeral).
    pub claims: BTreeSet<String>,
}

/// `ValidateVolumes`: names unique DNS labels, exactly one source each.
pub(super) fn volumes(spec: &Value, path: &str, errs: &mut Errs) -> Volumes {
    let mut found = Volumes::default();
    let vols_path = child(path, "volumes");
    for (i, vol) in list(spec, "volumes").iter().enumerate() {
        let p = index(&vols_path, i);
        let mut el = Errs::new();
        source(vol, &p, POD_SOURCES, &mut el);
        let name = s(vol, "name");
        let name_path = child(&p, "name");
        if name.is_empty() {
            required(&mut el, &name_path, "");
        } else {
            for msg in dns1123_label(name) {
                invalid(&mut el, &name_path, go_quote(name), &msg);
            }
        }
        if found.names.contains(name) {
            duplicate(&mut el, &name_path, go_quote(name));
        }
        if el.is_empty() {
            found.names.insert(name.to_owned());
            if field(vol, "persistentVolumeClaim").is_some() || field(vol, "ephemeral").is_some() {
                found.claims.insert(name.to_owned());
            }
        } else {
            errs.extend(el);
        }
    }
    found
}

/// Exactly one of `sources` set, and the common required fields of each.
pub(super) fn source(vol: &Value, path: &str, sources: &[&str], errs: &mut Errs) -> usize {
    let mut count = 0;
    for name in sources {
        let Some(src) = field(vol, name) else {
            continue;
        };
        let p = child(path, name);
        if count > 0 {
            forbidden(errs, &p, "may not specify more than 1 volume type");
            continue;
        }
        count += 1;
        source_fields(name, src, &p, errs);
    }
    if count == 0 {
        required(errs, path, "must specify a volume type");
    }
    count
}

fn source_fields(name: &str, src: &Value, p: &str, errs: &mut Errs) {
    let need = |errs: &mut Errs, f: &str| {
        if s(src, f).is_empty() {
            required(errs, &child(p, f), "");
        }
    };
    match name {
        "hostPath" | "local" => {
            if s(src, "path").is_empty() {
                required(errs, &child(p, "path"), "");
            } else if s(src, "path").split('/').any(|part| part == "..") {
                invalid(
                    errs,
                    &child(p, "path"),
                    go_quote(s(src, "path")),
                    "must not contain '..'",
                );
            }
        }
        "secret" => {
            need(errs, "secretName");
            file_mode(src, "defaultMode", p, errs);
            key_to_paths(src, p, errs);
        }
        "configMap" => {
            need(errs, "name");
            file_mode(src, "defaultMode", p, errs);
            key_to_paths(src, p, errs);
        }
        "persistentVolumeClaim" => need(errs, "claimName"),
        "nfs" => {
            need(errs, "server");
            need(errs, "path");
            if !s(src, "path").starts_with('/') {
                invalid(
                    errs,
                    &child(p, "path"),
                    go_quote(s(src, "path")),
                    "must be an absolute path",
                );
            }
        }
        "csi" if s(src, "driver").is_empty() => {
            required(errs, &child(p, "driver"), "");
        }
        "gitRepo" => need(errs, "repository"),
        "ephemeral" if field(src, "volumeClaimTemplate").is_none() => {
            required(errs, &child(p, "volumeClaimTemplate"), "");
        }
        "emptyDir" => {
            let limit = src
                .get("sizeLimit")
                .and_then(super::quantity::Quantity::from_value);
            if limit.is_some_and(|q| q.is_negative()) {
                forbidden(
                    errs,
                    &child(p, "sizeLimit"),
                    "SizeLimit field must be a valid resource quantity",
                );
            }
        }
        _ => {}
    }
}

fn file_mode(src: &Value, name: &str, p: &str, errs: &mut Errs) {
    if let Some(mode) = int(src, name).filter(|m| !(0..=0o777).contains(m)) {
        invalid(
            errs,
            &child(p, name),
            mode.to_string(),
            "must be a number between 0 and 0777 (octal), both inclusive",
        );
    }
}

fn key_to_paths(src: &Value, p: &str, errs: &mut Errs) {
    let items = child(p, "items");
    for (i, item) in list(src, "items").iter().enumerate() {
        let ip = index(&items, i);
        if s(item, "key").is_empty() {
            required(errs, &child(&ip, "key"), "");
        }
        let path = s(item, "path");
        if path.is_empty() {
            required(errs, &child(&ip, "path"), "");
        }
        local_non_reserved_path(path, &child(&ip, "path"), errs);
        file_mode(item, "mode", &ip, errs);
    }
}

/// `validateLocalDescendingPath`: relative, without `..` elements.
pub(super) fn local_descending_path(path: &str, field_path: &str, errs: &mut Errs) {
    if path.starts_with('/') {
        invalid(errs, field_path, go_quote(path), "must be a relative path");
    }
    if path.split('/').any(|part| part == "..") {
        invalid(errs, field_path, go_quote(path), "must not contain '..'");
    }
}

fn local_non_reserved_path(path: &str, field_path: &str, errs: &mut Errs) {
    local_descending_path(path, field_path, errs);
    if path.starts_with("..") && !path.starts_with("../") {
        invalid(errs, field_path, go_quote(path), "must not start with '..'");
    }
}
