//! The node's status as kubelet's status setters build it: capacity and
//! allocatable, the four conditions, addresses, the kubelet endpoint,
//! system info, images and runtime handlers. Pure functions over what the
//! machine and the runtime said, so they are tested without either.

use std::collections::BTreeMap;

use k8s_cri::v1 as cri;
use k8s_openapi::api::core::v1::{
    ContainerImage, DaemonEndpoint, NodeAddress, NodeCondition, NodeDaemonEndpoints,
    NodeRuntimeHandler, NodeRuntimeHandlerFeatures, NodeStatus, NodeSystemInfo,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;

use super::machine::MachineInfo;
use super::quantity::{binary_si, decimal_si, same_value};
use crate::kubelet::KubeletConfig;

/// Pods a node accepts (kubelet's `--max-pods` default).
pub const MAX_PODS: u64 = 110;
/// Images listed in the node's status at most (`--node-status-max-images`).
pub const MAX_IMAGES: usize = 50;
/// Names listed per image at most (`MaxNamesPerImageInNodeStatus`).
pub const MAX_NAMES_PER_IMAGE: usize = 5;
/// Memory kept back by the default hard eviction threshold
/// (`memory.available<100Mi`).
pub const EVICTION_MEMORY_BYTES: u64 = 100 * 1024 * 1024;
/// Share of the kubelet's filesystem kept back by the default hard eviction
/// threshold (`nodefs.available<10%`), a float32 in kubelet.
pub const EVICTION_NODEFS_FRACTION: f32 = 0.1;

/// The Kubernetes release Skiff speaks: the kubelet's version, and the
/// apiserver's `/version` and OpenAPI documents use it too.
pub const KUBERNETES_RELEASE: &str = "v1.32.0";

/// `v1.32.0+skiff-<version>`: the kubelet's and kube-proxy's version, as
/// the apiserver's gitVersion (k3s reports `v1.32.0+k3s1`).
pub fn kubelet_version(skiff_version: &str) -> String {
    format!("{KUBERNETES_RELEASE}+skiff-{skiff_version}")
}

/// What the runtime said this time.
#[derive(Debug, Clone, Default)]
pub struct RuntimeReport {
    /// `<runtime name>://<runtime version>` from CRI Version.
    pub version: String,
    /// Why the runtime cannot run pods, in kubelet's words (empty: ready).
    pub problems: Vec<String>,
    /// The handlers CRI Status lists.
    pub handlers: Vec<cri::RuntimeHandler>,
    /// Images from CRI ListImages.
    pub images: Vec<cri::Image>,
}

/// kubelet's runtime and network checks over a CRI Status answer (`Err`:
/// the call failed).
pub fn runtime_problems(status: Result<&cri::StatusResponse, String>) -> Vec<String> {
    let status = match status {
        Ok(status) => status,
        Err(err) => {
            return vec![format!(
                "container runtime status check may not have completed yet: {err}"
            )];
        }
    };
    let conditions = status
        .status
        .as_ref()
        .map(|s| s.conditions.as_slice())
        .unwrap_or_default();
    let find = |kind: &str| conditions.iter().find(|c| c.r#type == kind);
    let mut problems = Vec::new();
    match find("RuntimeReady") {
        Some(c) if c.status => {}
        Some(c) => problems.push(format!(
            "container runtime not ready: {}",
            condition_text(c)
        )),
        None => {
            problems.push("container runtime not ready: RuntimeReady condition is missing".into())
        }
    }
    match find("NetworkReady") {
        Some(c) if c.status => {}
        Some(c) => problems.push(format!(
            "container runtime network not ready: {}",
            condition_text(c)
        )),
        None => problems
            .push("container runtime network not ready: NetworkReady condition is missing".into()),
    }
    problems
}

/// kubelet's `RuntimeCondition.String()`.
fn condition_text(c: &cri::RuntimeCondition) -> String {
    format!(
        "{}={} reason:{} message:{}",
        c.r#type, c.status, c.reason, c.message
    )
}

/// The node's status: `previous` (what the apiserver has) with every field
/// the kubelet owns set anew. Conditions keep their transition time while
/// their status stays the same; each carries `now` as its heartbeat.
pub fn build(
    config: &KubeletConfig,
    machine: &MachineInfo,
    runtime: &RuntimeReport,
    previous: Option<&NodeStatus>,
    now: Timestamp,
) -> NodeStatus {
    let mut status = previous.cloned().unwrap_or_default();
    let (capacity, allocatable) = resources(machine);
    status.capacity = Some(capacity);
    status.allocatable = Some(allocatable);
    status.addresses = Some(vec![
        NodeAddress {
            type_: "InternalIP".into(),
            address: config.node_ip.to_string(),
        },
        NodeAddress {
            type_: "Hostname".into(),
            address: config.node_name.clone(),
        },
    ]);
    status.daemon_endpoints = Some(NodeDaemonEndpoints {
        kubelet_endpoint: Some(DaemonEndpoint {
            port: i32::from(config.kubelet_port),
        }),
    });
    let version = kubelet_version(&config.skiff_version);
    status.node_info = Some(NodeSystemInfo {
        architecture: machine.architecture.to_owned(),
        boot_id: machine.boot_id.clone(),
        container_runtime_version: runtime.version.clone(),
        kernel_version: machine.kernel_version.clone(),
        kube_proxy_version: version.clone(),
        kubelet_version: version,
        machine_id: machine.machine_id.clone(),
        operating_system: "linux".into(),
        os_image: machine.os_image.clone(),
        swap: None,
        system_uuid: machine.system_uuid.clone(),
    });
    status.images = Some(images(&runtime.images));
    status.runtime_handlers = Some(
        runtime
            .handlers
            .iter()
            .map(|h| {
                let features = h.features.unwrap_or_default();
                NodeRuntimeHandler {
                    name: Some(h.name.clone()),
                    features: Some(NodeRuntimeHandlerFeatures {
                        recursive_read_only_mounts: Some(features.recursive_read_only_mounts),
                        user_namespaces: Some(features.user_namespaces),
                    }),
                }
            })
            .collect(),
    );
    let old = previous
        .and_then(|s| s.conditions.as_deref())
        .unwrap_or_default();
    let mut conditions: Vec<NodeCondition> = old
        .iter()
        .filter(|c| !OWNED_CONDITIONS.contains(&c.type_.as_str()))
        .cloned()
        .collect();
    let ready = if runtime.problems.is_empty() {
        (
            "True",
            "KubeletReady",
            "kubelet is posting ready status".to_owned(),
        )
    } else {
        ("False", "KubeletNotReady", aggregate(&runtime.problems))
    };
    let ours = [
        (
            "MemoryPressure",
            "False",
            "KubeletHasSufficientMemory",
            "kubelet has sufficient memory available".to_owned(),
        ),
        (
            "DiskPressure",
            "False",
            "KubeletHasNoDiskPressure",
            "kubelet has no disk pressure".to_owned(),
        ),
        (
            "PIDPressure",
            "False",
            "KubeletHasSufficientPID",
            "kubelet has sufficient PID available".to_owned(),
        ),
        ("Ready", ready.0, ready.1, ready.2),
    ];
    for (kind, state, reason, message) in ours {
        let transition = old
            .iter()
            .find(|c| c.type_ == kind && c.status == state)
            .and_then(|c| c.last_transition_time.clone())
            .unwrap_or(Time(now));
        conditions.push(NodeCondition {
            type_: kind.into(),
            status: state.into(),
            reason: Some(reason.into()),
            message: Some(message),
            last_heartbeat_time: Some(Time(now)),
            last_transition_time: Some(transition),
        });
    }
    status.conditions = Some(conditions);
    status
}

/// The conditions the kubelet sets, in the order it lists them.
pub const OWNED_CONDITIONS: [&str; 4] = ["MemoryPressure", "DiskPressure", "PIDPressure", "Ready"];

/// `errors.NewAggregate(errs).Error()`: one message alone, several in brackets.
fn aggregate(problems: &[String]) -> String {
    match problems {
        [one] => one.clone(),
        many => format!("[{}]", many.join(", ")),
    }
}

/// Capacity and allocatable: allocatable keeps back kubelet's default
/// hard-eviction thresholds (no system or kube reservations by default).
fn resources(machine: &MachineInfo) -> (BTreeMap<String, Quantity>, BTreeMap<String, Quantity>) {
    let mut capacity = BTreeMap::new();
    capacity.insert("cpu".to_owned(), decimal_si(machine.cpus));
    capacity.insert("memory".to_owned(), binary_si(machine.memory_bytes));
    capacity.insert("pods".to_owned(), decimal_si(MAX_PODS));
    capacity.insert(
        "ephemeral-storage".to_owned(),
        binary_si(machine.ephemeral_storage_bytes),
    );
    for (size, bytes) in &machine.hugepages {
        capacity.insert(format!("hugepages-{size}"), binary_si(*bytes));
    }
    let mut allocatable = capacity.clone();
    let hugepage_bytes: u64 = machine.hugepages.iter().map(|(_, b)| b).sum();
    allocatable.insert(
        "memory".to_owned(),
        binary_si(
            machine
                .memory_bytes
                .saturating_sub(EVICTION_MEMORY_BYTES)
                .saturating_sub(hugepage_bytes),
        ),
    );
    let storage = machine.ephemeral_storage_bytes;
    let kept = (storage as f64 * f64::from(EVICTION_NODEFS_FRACTION)) as u64;
    allocatable.insert(
        "ephemeral-storage".to_owned(),
        binary_si(storage.saturating_sub(kept)),
    );
    (capacity, allocatable)
}

/// The node's image list: largest first, at most [`MAX_IMAGES`], each
/// named by its digests then its tags (at most [`MAX_NAMES_PER_IMAGE`]).
pub fn images(list: &[cri::Image]) -> Vec<ContainerImage> {
    let mut sorted: Vec<&cri::Image> = list.iter().collect();
    sorted.sort_by(|a, b| b.size.cmp(&a.size).then_with(|| a.id.cmp(&b.id)));
    sorted
        .into_iter()
        .take(MAX_IMAGES)
        .map(|image| {
            let names: Vec<String> = image
                .repo_digests
                .iter()
                .chain(&image.repo_tags)
                .take(MAX_NAMES_PER_IMAGE)
                .cloned()
                .collect();
            ContainerImage {
                names: Some(names),
                size_bytes: Some(i64::try_from(image.size).unwrap_or(i64::MAX)),
            }
        })
        .collect()
}

/// Whether `new` differs from `old` in anything but heartbeat times and
/// the spelling of quantities (kubelet's `nodeStatusHasChanged`).
pub fn changed(old: Option<&NodeStatus>, new: &NodeStatus) -> bool {
    let Some(old) = old else {
        return true;
    };
    let normalize = |status: &NodeStatus| {
        let mut status = status.clone();
        for condition in status.conditions.iter_mut().flatten() {
            condition.last_heartbeat_time = None;
        }
        status.capacity = None;
        status.allocatable = None;
        status
    };
    normalize(old) != normalize(new)
        || !same_resources(old.capacity.as_ref(), new.capacity.as_ref())
        || !same_resources(old.allocatable.as_ref(), new.allocatable.as_ref())
}

fn same_resources(
    a: Option<&BTreeMap<String, Quantity>>,
    b: Option<&BTreeMap<String, Quantity>>,
) -> bool {
    match (a, b) {
        (Some(a), Some(b)) => {
            a.len() == b.len()
                && a.iter()
                    .all(|(k, v)| b.get(k).is_some_and(|other| same_value(v, other)))
        }
        (a, b) => a.is_none() && b.is_none(),
    }
}

/// The status of condition `kind`, if set.
pub fn condition_status<'a>(status: Option<&'a NodeStatus>, kind: &str) -> Option<&'a str> {
    status?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == kind)
        .map(|c| c.status.as_str())
}

/// The node events kubelet records when a condition appears or changes:
/// (`Normal`, `NodeReady`), (`Normal`, `NodeHasSufficientMemory`), ...
pub fn transitions(old: Option<&NodeStatus>, new: &NodeStatus) -> Vec<&'static str> {
    let mut events = Vec::new();
    for (kind, when_true, when_false) in [
        (
            "MemoryPressure",
            "NodeHasInsufficientMemory",
            "NodeHasSufficientMemory",
        ),
        (
            "DiskPressure",
            "NodeHasDiskPressure",
            "NodeHasNoDiskPressure",
        ),
        (
            "PIDPressure",
            "NodeHasInsufficientPID",
            "NodeHasSufficientPID",
        ),
        ("Ready", "NodeReady", "NodeNotReady"),
    ] {
        let now = condition_status(Some(new), kind);
        if now.is_some() && condition_status(old, kind) != now {
            events.push(if now == Some("True") {
                when_true
            } else {
                when_false
            });
        }
    }
    events
}

#[cfg(test)]
mod tests {
    use std::net::{IpAddr, Ipv4Addr};
    use std::path::PathBuf;

    use super::*;

    fn config() -> KubeletConfig {
        KubeletConfig {
            node_name: "node-a".into(),
            node_ip: IpAddr::V4(Ipv4Addr::new(192, 168, 122, 10)),
            kubelet_port: 10250,
            root_dir: PathBuf::from("/var/lib/skiff/agent/kubelet"),
            cluster_dns: vec![],
            cluster_domain: "cluster.local".into(),
            node_labels: BTreeMap::new(),
            node_taints: vec![],
            skiff_version: "0.1.0".into(),
        }
    }

    fn machine() -> MachineInfo {
        MachineInfo {
            cpus: 4,
            memory_bytes: 16_374_860 * 1024,
            hugepages: vec![("2Mi".into(), 0)],
            ephemeral_storage_bytes: 100 * 1024 * 1024 * 1024,
            os_image: "Debian GNU/Linux 12 (bookworm)".into(),
            kernel_version: "6.1.0-26-amd64".into(),
            machine_id: "m".into(),
            system_uuid: "u".into(),
            boot_id: "b".into(),
            architecture: "amd64",
        }
    }

    fn ready_runtime() -> RuntimeReport {
        RuntimeReport {
            version: "skiff://0.1.0".into(),
            ..RuntimeReport::default()
        }
    }

    fn at(seconds: i64) -> Timestamp {
        Timestamp::from_second(1_700_000_000 + seconds).unwrap()
    }

    fn condition<'a>(status: &'a NodeStatus, kind: &str) -> &'a NodeCondition {
        status
            .conditions
            .as_ref()
            .unwrap()
            .iter()
            .find(|c| c.type_ == kind)
            .unwrap()
    }

    #[test]
    fn a_ready_node_reports_what_kubelet_reports() {
        let status = build(&config(), &machine(), &ready_runtime(), None, at(0));
        let capacity = status.capacity.as_ref().unwrap();
        let allocatable = status.allocatable.as_ref().unwrap();
        let text = |m: &BTreeMap<String, Quantity>, k: &str| m[k].0.clone();
        assert_eq!(text(capacity, "cpu"), "4");
        assert_eq!(text(capacity, "memory"), "16374860Ki");
        assert_eq!(text(capacity, "pods"), "110");
        assert_eq!(text(capacity, "ephemeral-storage"), "100Gi");
        assert_eq!(text(capacity, "hugepages-2Mi"), "0");
        assert_eq!(text(allocatable, "memory"), "16272460Ki");
        // 10% of 100Gi as float32 0.1 computes it, as kubelet does.
        assert_eq!(text(allocatable, "ephemeral-storage"), "96636764000");
        let types: Vec<&str> = status
            .conditions
            .as_ref()
            .unwrap()
            .iter()
            .map(|c| c.type_.as_str())
            .collect();
        assert_eq!(types, OWNED_CONDITIONS);
        let ready = condition(&status, "Ready");
        assert_eq!(
            (
                ready.status.as_str(),
                ready.reason.as_deref(),
                ready.message.as_deref()
            ),
            (
                "True",
                Some("KubeletReady"),
                Some("kubelet is posting ready status")
            )
        );
        let memory = condition(&status, "MemoryPressure");
        assert_eq!(memory.reason.as_deref(), Some("KubeletHasSufficientMemory"));
        let info = status.node_info.as_ref().unwrap();
        assert_eq!(info.kubelet_version, "v1.32.0+skiff-0.1.0");
        assert_eq!(info.container_runtime_version, "skiff://0.1.0");
        let addresses = status.addresses.as_ref().unwrap();
        assert_eq!(addresses[0].type_, "InternalIP");
        assert_eq!(addresses[0].address, "192.168.122.10");
        assert_eq!(addresses[1].address, "node-a");
    }

    #[test]
    fn runtime_problems_turn_ready_false_with_kubelets_message() {
        let status = cri::StatusResponse {
            status: Some(cri::RuntimeStatus {
                conditions: vec![
                    cri::RuntimeCondition {
                        r#type: "RuntimeReady".into(),
                        status: true,
                        ..Default::default()
                    },
                    cri::RuntimeCondition {
                        r#type: "NetworkReady".into(),
                        status: false,
                        reason: "NoPodCIDR".into(),
                        message: "no pod CIDR yet".into(),
                    },
                ],
            }),
            ..Default::default()
        };
        let problems = runtime_problems(Ok(&status));
        assert_eq!(
            problems,
            [
                "container runtime network not ready: NetworkReady=false reason:NoPodCIDR message:no pod CIDR yet"
            ]
        );
        let runtime = RuntimeReport {
            problems,
            ..ready_runtime()
        };
        let built = build(&config(), &machine(), &runtime, None, at(0));
        let ready = condition(&built, "Ready");
        assert_eq!(ready.status, "False");
        assert_eq!(ready.reason.as_deref(), Some("KubeletNotReady"));
        assert!(
            ready
                .message
                .as_deref()
                .unwrap()
                .starts_with("container runtime network")
        );
        let two = runtime_problems(Err("unavailable".into()));
        assert_eq!(two.len(), 1);
        assert_eq!(aggregate(&["a".into(), "b".into()]), "[a, b]");
    }

    #[test]
    fn heartbeats_alone_are_no_change_but_transitions_are() {
        let first = build(&config(), &machine(), &ready_runtime(), None, at(0));
        let again = build(
            &config(),
            &machine(),
            &ready_runtime(),
            Some(&first),
            at(10),
        );
        assert!(!changed(Some(&first), &again));
        assert_eq!(
            condition(&again, "Ready").last_transition_time,
            Some(Time(at(0)))
        );
        assert_eq!(
            condition(&again, "Ready").last_heartbeat_time,
            Some(Time(at(10)))
        );
        let not_ready = RuntimeReport {
            problems: vec!["container runtime not ready: x".into()],
            ..ready_runtime()
        };
        let down = build(&config(), &machine(), &not_ready, Some(&again), at(20));
        assert!(changed(Some(&again), &down));
        assert_eq!(
            condition(&down, "Ready").last_transition_time,
            Some(Time(at(20)))
        );
        assert_eq!(transitions(Some(&again), &down), ["NodeNotReady"]);
        assert_eq!(
            transitions(None, &first),
            [
                "NodeHasSufficientMemory",
                "NodeHasNoDiskPressure",
                "NodeHasSufficientPID",
                "NodeReady"
            ]
        );
    }

    #[test]
    fn quantities_spelled_differently_are_no_change() {
        let first = build(&config(), &machine(), &ready_runtime(), None, at(0));
        let mut stored = first.clone();
        stored
            .capacity
            .as_mut()
            .unwrap()
            .insert("cpu".into(), Quantity("4000m".into()));
        assert!(!changed(Some(&stored), &first));
        stored
            .capacity
            .as_mut()
            .unwrap()
            .insert("cpu".into(), Quantity("8".into()));
        assert!(changed(Some(&stored), &first));
    }

    #[test]
    fn conditions_of_others_are_kept() {
        let mut stored = build(&config(), &machine(), &ready_runtime(), None, at(0));
        stored.conditions.as_mut().unwrap().insert(
            0,
            NodeCondition {
                type_: "NetworkUnavailable".into(),
                status: "False".into(),
                ..Default::default()
            },
        );
        let next = build(
            &config(),
            &machine(),
            &ready_runtime(),
            Some(&stored),
            at(10),
        );
        assert_eq!(
            next.conditions.as_ref().unwrap()[0].type_,
            "NetworkUnavailable"
        );
        assert!(!changed(Some(&stored), &next));
    }

    #[test]
    fn images_are_largest_first_capped_and_named_digest_first() {
        let image = |id: &str, size: u64, tags: usize| cri::Image {
            id: id.into(),
            repo_tags: (0..tags).map(|i| format!("{id}:{i}")).collect(),
            repo_digests: vec![format!("{id}@sha256:x")],
            size,
            ..Default::default()
        };
        let mut list: Vec<cri::Image> = (0..60).map(|i| image(&format!("i{i}"), i, 1)).collect();
        list.push(image("big", 1000, 9));
        let out = images(&list);
        assert_eq!(out.len(), MAX_IMAGES);
        assert_eq!(out[0].size_bytes, Some(1000));
        let names = out[0].names.as_ref().unwrap();
        assert_eq!(names.len(), MAX_NAMES_PER_IMAGE);
        assert_eq!(names[0], "big@sha256:x");
        assert_eq!(out[1].size_bytes, Some(59));
    }
}
