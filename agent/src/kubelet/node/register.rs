//! Registration: the Node object kubelet creates at first start, and on a
//! restart (the Node exists) the labels brought up to date, as k3s keeps
//! its node labels. Taints are only set at creation, as kubelet's
//! `--register-with-taints`; afterwards they belong to the cluster.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Node, NodeSpec, NodeStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, Patch, PatchParams, PostParams};

use super::NodeError;
use super::machine::MachineInfo;
use crate::kubelet::KubeletConfig;

/// The annotation kubelet sets so the attach/detach controller manages
/// the node's volumes.
pub const ATTACH_DETACH_ANNOTATION: &str = "volumes.kubernetes.io/controller-managed-attach-detach";

/// The instance type a Skiff node reports (k3s reports `k3s`).
pub const INSTANCE_TYPE: &str = "skiff";

/// The labels the node carries: kubelet's defaults, then the configured
/// ones (which win, as `--node-labels` does).
pub fn labels(config: &KubeletConfig, machine: &MachineInfo) -> BTreeMap<String, String> {
    let mut labels = BTreeMap::new();
    let arch = machine.architecture.to_owned();
    for (key, value) in [
        ("kubernetes.io/hostname", config.node_name.clone()),
        ("kubernetes.io/os", "linux".to_owned()),
        ("kubernetes.io/arch", arch.clone()),
        ("beta.kubernetes.io/os", "linux".to_owned()),
        ("beta.kubernetes.io/arch", arch),
        ("node.kubernetes.io/instance-type", INSTANCE_TYPE.to_owned()),
    ] {
        labels.insert(key.to_owned(), value);
    }
    labels.extend(config.node_labels.clone());
    labels
}

/// The Node kubelet creates.
pub fn new_node(
    config: &KubeletConfig,
    labels: BTreeMap<String, String>,
    status: NodeStatus,
) -> Node {
    Node {
        metadata: ObjectMeta {
            name: Some(config.node_name.clone()),
            labels: Some(labels),
            annotations: Some(BTreeMap::from([(
                ATTACH_DETACH_ANNOTATION.to_owned(),
                "true".to_owned(),
            )])),
            ..ObjectMeta::default()
        },
        spec: Some(NodeSpec {
            taints: (!config.node_taints.is_empty()).then(|| config.node_taints.clone()),
            ..NodeSpec::default()
        }),
        status: Some(status),
    }
}

/// What a restarted kubelet changes on its existing Node: labels that are
/// missing or different, and the attach/detach annotation. `None` when
/// nothing needs changing.
pub fn update_patch(
    existing: &Node,
    labels: &BTreeMap<String, String>,
) -> Option<serde_json::Value> {
    let current = existing.metadata.labels.clone().unwrap_or_default();
    let changed: BTreeMap<&String, &String> = labels
        .iter()
        .filter(|(key, value)| current.get(*key) != Some(value))
        .collect();
    let annotated = existing
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(ATTACH_DETACH_ANNOTATION))
        .is_some_and(|v| v == "true");
    if changed.is_empty() && annotated {
        return None;
    }
    let mut metadata = serde_json::Map::new();
    if !changed.is_empty() {
        metadata.insert("labels".into(), serde_json::json!(changed));
    }
    if !annotated {
        metadata.insert(
            "annotations".into(),
            serde_json::json!({ ATTACH_DETACH_ANNOTATION: "true" }),
        );
    }
    Some(serde_json::json!({ "metadata": metadata }))
}

/// How registration went.
#[derive(Debug, Clone)]
pub enum Registered {
    /// The Node was created (as the apiserver stored it).
    Created(Node),
    /// It existed (a restart); its labels are up to date.
    Existing(Node),
}

/// Creates the Node, or brings an existing one up to date.
pub async fn register(
    api: &Api<Node>,
    config: &KubeletConfig,
    labels: BTreeMap<String, String>,
    status: NodeStatus,
) -> Result<Registered, NodeError> {
    let name = config.node_name.as_str();
    let node = new_node(config, labels.clone(), status);
    match api.create(&PostParams::default(), &node).await {
        Ok(created) => {
            tracing::info!(node = name, "node registered");
            return Ok(Registered::Created(created));
        }
        Err(kube::Error::Api(status)) if status.is_already_exists() => {}
        Err(source) => {
            return Err(NodeError::Api {
                what: format!("registering node {name}"),
                source,
            });
        }
    }
    let existing = api.get(name).await.map_err(|source| NodeError::Api {
        what: format!("reading the existing node {name}"),
        source,
    })?;
    let Some(patch) = update_patch(&existing, &labels) else {
        tracing::info!(node = name, "node already registered");
        return Ok(Registered::Existing(existing));
    };
    let updated = api
        .patch(name, &PatchParams::default(), &Patch::Merge(patch))
        .await
        .map_err(|source| NodeError::Api {
            what: format!("updating the labels of node {name}"),
            source,
        })?;
    tracing::info!(node = name, "node already registered; labels updated");
    Ok(Registered::Existing(updated))
}

#[cfg(test)]
mod tests {
    use std::net::{IpAddr, Ipv4Addr};
    use std::path::PathBuf;

    use k8s_openapi::api::core::v1::Taint;

    use super::*;

    fn config() -> KubeletConfig {
        KubeletConfig {
            node_name: "edge-1".into(),
            node_ip: IpAddr::V4(Ipv4Addr::LOCALHOST),
            kubelet_port: 10250,
            root_dir: PathBuf::from("/tmp"),
            cluster_dns: vec![],
            cluster_domain: "cluster.local".into(),
            node_labels: BTreeMap::from([
                (
                    "node-role.kubernetes.io/control-plane".into(),
                    "true".into(),
                ),
                ("zone".into(), "a".into()),
            ]),
            node_taints: vec![Taint {
                key: "dedicated".into(),
                value: Some("edge".into()),
                effect: "NoSchedule".into(),
                time_added: None,
            }],
            skiff_version: "0.1.0".into(),
        }
    }

    fn machine() -> MachineInfo {
        MachineInfo {
            cpus: 1,
            memory_bytes: 1,
            hugepages: vec![],
            ephemeral_storage_bytes: 1,
            os_image: String::new(),
            kernel_version: String::new(),
            machine_id: String::new(),
            system_uuid: String::new(),
            boot_id: String::new(),
            architecture: "arm64",
        }
    }

    #[test]
    fn a_new_node_has_kubelets_labels_the_configured_ones_and_taints() {
        let labels = labels(&config(), &machine());
        let node = new_node(&config(), labels, NodeStatus::default());
        let labels = node.metadata.labels.as_ref().unwrap();
        for (key, value) in [
            ("kubernetes.io/hostname", "edge-1"),
            ("kubernetes.io/os", "linux"),
            ("kubernetes.io/arch", "arm64"),
            ("beta.kubernetes.io/os", "linux"),
            ("beta.kubernetes.io/arch", "arm64"),
            ("node.kubernetes.io/instance-type", "skiff"),
            ("node-role.kubernetes.io/control-plane", "true"),
            ("zone", "a"),
        ] {
            assert_eq!(labels.get(key).map(String::as_str), Some(value), "{key}");
        }
        let taints = node.spec.unwrap().taints.unwrap();
        assert_eq!(taints[0].key, "dedicated");
    }

    #[test]
    fn a_restart_patches_only_what_differs() {
        let labels = labels(&config(), &machine());
        let node = new_node(&config(), labels.clone(), NodeStatus::default());
        assert!(update_patch(&node, &labels).is_none());
        let mut edited = node.clone();
        let stored = edited.metadata.labels.as_mut().unwrap();
        stored.insert("zone".into(), "b".into());
        stored.insert("added-by-admin".into(), "x".into());
        edited.metadata.annotations = None;
        let patch = update_patch(&edited, &labels).unwrap();
        assert_eq!(
            patch,
            serde_json::json!({"metadata": {
                "labels": {"zone": "a"},
                "annotations": {ATTACH_DETACH_ANNOTATION: "true"},
            }})
        );
    }
}
