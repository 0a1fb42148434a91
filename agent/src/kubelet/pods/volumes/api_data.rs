//! The files of configMap, secret and downwardAPI volumes (and of the same
//! sources in projected volumes), built from the objects as kubelet
//! builds them: every key, or the `items` asked for, with their modes.

use std::collections::BTreeMap;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::{ConfigMap, DownwardAPIVolumeFile, KeyToPath, Pod, Secret};

use super::atomic_writer::{FileProjection, Payload};
use crate::kubelet::pods::fieldpath::{self, PodAddresses};
use crate::kubelet::pods::resources::NodeCapacity;

/// The default file mode of these volumes (0644).
pub const DEFAULT_MODE: i32 = 0o644;

fn mode(mode: Option<i32>, default: i32) -> u32 {
    u32::try_from(mode.unwrap_or(default)).unwrap_or(0o644) & 0o7777
}

/// Files from `data` (key → bytes): all keys, or `items`.
fn project(
    data: &BTreeMap<String, Vec<u8>>,
    items: Option<&[KeyToPath]>,
    default_mode: i32,
    optional: bool,
    missing: impl Fn(&str) -> String,
) -> Result<Payload, String> {
    let mut payload = Payload::new();
    match items.filter(|i| !i.is_empty()) {
        None => {
            for (key, value) in data {
                payload.insert(
                    key.clone(),
                    FileProjection {
                        data: value.clone(),
                        mode: mode(None, default_mode),
                    },
                );
            }
        }
        Some(items) => {
            for item in items {
                let Some(value) = data.get(&item.key) else {
                    if optional {
                        continue;
                    }
                    return Err(missing(&item.key));
                };
                payload.insert(
                    item.path.clone(),
                    FileProjection {
                        data: value.clone(),
                        mode: mode(item.mode, default_mode),
                    },
                );
            }
        }
    }
    Ok(payload)
}

/// The files of configMap `name` (`None`: it does not exist).
pub fn config_map(
    object: Option<&ConfigMap>,
    name: &str,
    items: Option<&[KeyToPath]>,
    default_mode: i32,
    optional: bool,
) -> Result<Payload, String> {
    keyed_files(
        object.map(|o| (o.data.as_ref(), o.binary_data.as_ref())),
        || format!("configmap {name:?} not found"),
        (items, default_mode, optional),
        |key| format!("configmap references non-existent config key: {key}"),
    )
}

/// The files of secret `name` (`None`: it does not exist).
pub fn secret(
    object: Option<&Secret>,
    name: &str,
    items: Option<&[KeyToPath]>,
    default_mode: i32,
    optional: bool,
) -> Result<Payload, String> {
    keyed_files(
        object.map(|o| (o.string_data.as_ref(), o.data.as_ref())),
        || format!("secret {name:?} not found"),
        (items, default_mode, optional),
        |key| format!("references non-existent secret key: {key}"),
    )
}

/// An object's text keys and binary keys.
type KeyedData<'a> = (
    Option<&'a BTreeMap<String, String>>,
    Option<&'a BTreeMap<String, ByteString>>,
);

/// The files of an object's text and binary keys (binary wins), or the
/// `not_found` error (nothing when `optional`) when there is no object.
fn keyed_files(
    maps: Option<KeyedData<'_>>,
    not_found: impl FnOnce() -> String,
    (items, default_mode, optional): (Option<&[KeyToPath]>, i32, bool),
    missing_key: impl Fn(&str) -> String,
) -> Result<Payload, String> {
    let Some((text, binary)) = maps else {
        return if optional {
            Ok(Payload::new())
        } else {
            Err(not_found())
        };
    };
    let mut data: BTreeMap<String, Vec<u8>> = text
        .into_iter()
        .flatten()
        .map(|(k, v)| (k.clone(), v.clone().into_bytes()))
        .collect();
    data.extend(
        binary
            .into_iter()
            .flatten()
            .map(|(k, v)| (k.clone(), v.0.clone())),
    );
    project(&data, items, default_mode, optional, missing_key)
}

/// The files of a downwardAPI volume (or projection).
pub fn downward_api(
    pod: &Pod,
    items: &[DownwardAPIVolumeFile],
    default_mode: i32,
    node: &NodeCapacity,
) -> Result<Payload, String> {
    let mut payload = Payload::new();
    for item in items {
        let value = if let Some(field) = &item.field_ref {
            fieldpath::pod_field(pod, &field.field_path, &PodAddresses::default(), false)
                .map_err(|e| e.to_string())?
        } else if let Some(resource) = &item.resource_field_ref {
            let divisor = resource.divisor.as_ref().map(|d| d.0.as_str());
            let container = resource.container_name.as_deref().unwrap_or_default();
            fieldpath::resource_field(pod, container, &resource.resource, divisor, node)
                .map_err(|e| e.to_string())?
        } else {
            continue;
        };
        payload.insert(
            item.path.clone(),
            FileProjection {
                data: value.into_bytes(),
                mode: mode(item.mode, default_mode),
            },
        );
    }
    Ok(payload)
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::ByteString;
    use k8s_openapi::api::core::v1::ObjectFieldSelector;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    fn cm() -> ConfigMap {
        ConfigMap {
            data: Some(BTreeMap::from([
                ("a.conf".into(), "x=1".into()),
                ("b".into(), "2".into()),
            ])),
            binary_data: Some(BTreeMap::from([("bin".into(), ByteString(vec![0, 1]))])),
            ..Default::default()
        }
    }

    fn item(key: &str, path: &str, mode: Option<i32>) -> KeyToPath {
        KeyToPath {
            key: key.into(),
            path: path.into(),
            mode,
        }
    }

    #[test]
    fn every_key_becomes_a_file() {
        let p = config_map(Some(&cm()), "cfg", None, DEFAULT_MODE, false).unwrap();
        assert_eq!(p.len(), 3);
        assert_eq!(p["a.conf"].data, b"x=1");
        assert_eq!(p["bin"].data, [0, 1]);
        assert_eq!(p["b"].mode, 0o644);
    }

    #[test]
    fn items_choose_keys_paths_and_modes() {
        let items = [item("b", "dir/b.txt", Some(0o400))];
        let p = config_map(Some(&cm()), "cfg", Some(&items), 0o600, false).unwrap();
        assert_eq!(p.len(), 1);
        assert_eq!(p["dir/b.txt"].mode, 0o400);
        let missing = [item("nope", "n", None)];
        assert_eq!(
            config_map(Some(&cm()), "cfg", Some(&missing), 0o644, false).unwrap_err(),
            "configmap references non-existent config key: nope"
        );
        assert!(
            config_map(Some(&cm()), "cfg", Some(&missing), 0o644, true)
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn missing_objects_fail_unless_optional() {
        assert_eq!(
            config_map(None, "cfg", None, 0o644, false).unwrap_err(),
            "configmap \"cfg\" not found"
        );
        assert!(
            config_map(None, "cfg", None, 0o644, true)
                .unwrap()
                .is_empty()
        );
        assert_eq!(
            secret(None, "s", None, 0o644, false).unwrap_err(),
            "secret \"s\" not found"
        );
        let s = Secret {
            data: Some(BTreeMap::from([(
                "pw".into(),
                ByteString(b"hunter2".to_vec()),
            )])),
            ..Default::default()
        };
        assert_eq!(
            secret(Some(&s), "s", None, 0o600, false).unwrap()["pw"].data,
            b"hunter2"
        );
    }

    #[test]
    fn downward_api_files_hold_pod_fields() {
        let pod = Pod {
            metadata: ObjectMeta {
                name: Some("web".into()),
                labels: Some(BTreeMap::from([("app".into(), "web".into())])),
                ..Default::default()
            },
            ..Default::default()
        };
        let file = |path: &str, field: &str| DownwardAPIVolumeFile {
            path: path.into(),
            field_ref: Some(ObjectFieldSelector {
                field_path: field.into(),
                api_version: None,
            }),
            ..Default::default()
        };
        let node = NodeCapacity {
            cpu_millis: 1000,
            memory_bytes: 1 << 30,
        };
        let p = downward_api(
            &pod,
            &[
                file("name", "metadata.name"),
                file("labels", "metadata.labels"),
            ],
            DEFAULT_MODE,
            &node,
        )
        .unwrap();
        assert_eq!(p["name"].data, b"web");
        assert_eq!(p["labels"].data, b"app=\"web\"");
        assert!(downward_api(&pod, &[file("n", "spec.nodeName")], DEFAULT_MODE, &node).is_err());
    }
}
