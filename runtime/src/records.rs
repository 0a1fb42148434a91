//! What the runtime remembers about each sandbox and container, and how a
//! record reads as the CRI messages kubelet and crictl see.

use std::collections::HashMap;
use std::path::PathBuf;

use k8s_cri::v1 as cri;
use serde::{Deserialize, Serialize};

use crate::store::Record;

/// A sandbox's lifecycle state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum SandboxState {
    /// Namespaces pinned, network attached, shim running.
    Ready,
    /// Stopped (or its shim is gone): containers can't be created in it.
    NotReady,
}

/// Paths of a pod's pinned namespaces (`None`: the host's).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PodNamespaces {
    /// Network namespace pin.
    pub net: Option<PathBuf>,
    /// IPC namespace pin.
    pub ipc: Option<PathBuf>,
    /// UTS namespace pin.
    pub uts: Option<PathBuf>,
    /// Pod-level PID namespace pin.
    pub pid: Option<PathBuf>,
}

/// A pod sandbox.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SandboxRecord {
    /// 64 hex digits.
    pub id: String,
    /// The config it was created with.
    pub config: cri::PodSandboxConfig,
    /// The RuntimeClass handler asked for ("", "runc" or "wasmtime").
    pub runtime_handler: String,
    /// Ready or not.
    pub state: SandboxState,
    /// Creation time, nanoseconds since the epoch.
    pub created_at: i64,
    /// The pod's IP on the pod network (`None` with host network or before setup).
    pub ip: Option<String>,
    /// The pod directory under the run dir.
    pub pod_dir: PathBuf,
    /// Pinned namespaces.
    pub namespaces: PodNamespaces,
    /// The cgroupfs parent of the pod's containers.
    pub cgroup_parent: String,
}

impl Record for SandboxRecord {
    fn id(&self) -> &str {
        &self.id
    }
}

/// The unique name a sandbox reserves: `name_namespace_uid_attempt`, as
/// containerd reserves it.
pub fn sandbox_name(metadata: Option<&cri::PodSandboxMetadata>) -> String {
    let m = metadata.cloned().unwrap_or_default();
    format!("{}_{}_{}_{}", m.name, m.namespace, m.uid, m.attempt)
}

impl SandboxRecord {
    /// The reserved name.
    pub fn name(&self) -> String {
        sandbox_name(self.config.metadata.as_ref())
    }

    /// Whether the pod uses the host's network.
    pub fn host_network(&self) -> bool {
        host_network(&self.config)
    }

    fn cri_state(&self) -> i32 {
        match self.state {
            SandboxState::Ready => cri::PodSandboxState::SandboxReady as i32,
            SandboxState::NotReady => cri::PodSandboxState::SandboxNotready as i32,
        }
    }

    /// As ListPodSandbox shows it.
    pub fn to_cri(&self) -> cri::PodSandbox {
        cri::PodSandbox {
            id: self.id.clone(),
            metadata: self.config.metadata.clone(),
            state: self.cri_state(),
            created_at: self.created_at,
            labels: self.config.labels.clone(),
            annotations: self.config.annotations.clone(),
            runtime_handler: self.runtime_handler.clone(),
        }
    }

    /// As PodSandboxStatus shows it.
    pub fn status(&self) -> cri::PodSandboxStatus {
        let options = self
            .config
            .linux
            .as_ref()
            .and_then(|l| l.security_context.as_ref())
            .and_then(|s| s.namespace_options.clone());
        cri::PodSandboxStatus {
            id: self.id.clone(),
            metadata: self.config.metadata.clone(),
            state: self.cri_state(),
            created_at: self.created_at,
            network: Some(cri::PodSandboxNetworkStatus {
                ip: self.ip.clone().unwrap_or_default(),
                additional_ips: Vec::new(),
            }),
            linux: Some(cri::LinuxPodSandboxStatus {
                namespaces: Some(cri::Namespace { options }),
            }),
            labels: self.config.labels.clone(),
            annotations: self.config.annotations.clone(),
            runtime_handler: self.runtime_handler.clone(),
        }
    }

    /// Whether it passes a ListPodSandbox filter (ID may be a prefix).
    pub fn matches(&self, filter: &cri::PodSandboxFilter) -> bool {
        (filter.id.is_empty() || self.id.starts_with(&filter.id))
            && filter
                .state
                .as_ref()
                .is_none_or(|s| s.state == self.cri_state())
            && labels_match(&self.config.labels, &filter.label_selector)
    }
}

/// Whether `config` asks for the host network namespace.
pub fn host_network(config: &cri::PodSandboxConfig) -> bool {
    config
        .linux
        .as_ref()
        .and_then(|l| l.security_context.as_ref())
        .and_then(|s| s.namespace_options.as_ref())
        .is_some_and(|n| n.network == cri::NamespaceMode::Node as i32)
}

/// A container's lifecycle state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ContainerState {
    /// Created, not started.
    Created,
    /// Its process runs.
    Running,
    /// Its process ended.
    Exited,
    /// Its shim is gone and its fate unknown.
    Unknown,
}

impl ContainerState {
    /// The CRI enum value.
    pub fn to_cri(self) -> i32 {
        (match self {
            Self::Created => cri::ContainerState::ContainerCreated,
            Self::Running => cri::ContainerState::ContainerRunning,
            Self::Exited => cri::ContainerState::ContainerExited,
            Self::Unknown => cri::ContainerState::ContainerUnknown,
        }) as i32
    }
}

/// Which engine of the pod's shim runs a container.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ContainerEngine {
    /// An OCI container through libcontainer.
    #[default]
    Oci,
    /// A Wasm module or component through wasmtime.
    Wasm,
}

impl ContainerEngine {
    /// The name ContainerStatus' verbose info shows (`oci`, `wasm`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Oci => "oci",
            Self::Wasm => "wasm",
        }
    }
}

/// A container.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ContainerRecord {
    /// 64 hex digits.
    pub id: String,
    /// Its sandbox.
    pub sandbox_id: String,
    /// The config it was created with.
    pub config: cri::ContainerConfig,
    /// The image as the caller named it.
    pub image_name: String,
    /// The image ID (`sha256:…`).
    pub image_id: String,
    /// A repo digest of the image, if it has one (kubelet shows it as imageID).
    pub image_ref: String,
    /// Lifecycle state.
    pub state: ContainerState,
    /// Nanoseconds since the epoch.
    pub created_at: i64,
    /// Nanoseconds since the epoch, 0 until started.
    pub started_at: i64,
    /// Nanoseconds since the epoch, 0 until exited.
    pub finished_at: i64,
    /// Exit code once exited.
    pub exit_code: i32,
    /// Why it is in its state (`Completed`, `Error`, `OOMKilled`, ...).
    pub reason: String,
    /// Details for humans.
    pub message: String,
    /// The CRI log file (absolute), if any.
    pub log_path: Option<PathBuf>,
    /// The main process, while running.
    pub pid: Option<u32>,
    /// The cgroup path (cgroupfs).
    pub cgroup_path: String,
    /// The OCI bundle directory.
    pub bundle: PathBuf,
    /// The engine that runs it (records from before Wasm read as OCI).
    #[serde(default)]
    pub engine: ContainerEngine,
}

impl Record for ContainerRecord {
    fn id(&self) -> &str {
        &self.id
    }
}

/// The unique name a container reserves, as containerd reserves it:
/// `name_sandboxname_sandboxnamespace_sandboxuid_attempt`.
pub fn container_name(
    metadata: Option<&cri::ContainerMetadata>,
    sandbox: Option<&cri::PodSandboxMetadata>,
) -> String {
    let m = metadata.cloned().unwrap_or_default();
    let s = sandbox.cloned().unwrap_or_default();
    format!(
        "{}_{}_{}_{}_{}",
        m.name, s.name, s.namespace, s.uid, m.attempt
    )
}

impl ContainerRecord {
    fn image_spec(&self) -> cri::ImageSpec {
        cri::ImageSpec {
            image: self.image_name.clone(),
            annotations: self
                .config
                .image
                .as_ref()
                .map(|i| i.annotations.clone())
                .unwrap_or_default(),
            ..Default::default()
        }
    }

    /// As ListContainers shows it.
    pub fn to_cri(&self) -> cri::Container {
        cri::Container {
            id: self.id.clone(),
            pod_sandbox_id: self.sandbox_id.clone(),
            metadata: self.config.metadata.clone(),
            image: Some(self.image_spec()),
            image_ref: self.image_ref_or_id().to_string(),
            state: self.state.to_cri(),
            created_at: self.created_at,
            labels: self.config.labels.clone(),
            annotations: self.config.annotations.clone(),
            ..Default::default()
        }
    }

    fn image_ref_or_id(&self) -> &str {
        if self.image_ref.is_empty() {
            &self.image_id
        } else {
            &self.image_ref
        }
    }

    /// As ContainerStatus shows it.
    pub fn status(&self) -> cri::ContainerStatus {
        cri::ContainerStatus {
            id: self.id.clone(),
            metadata: self.config.metadata.clone(),
            state: self.state.to_cri(),
            created_at: self.created_at,
            started_at: self.started_at,
            finished_at: self.finished_at,
            exit_code: self.exit_code,
            image: Some(self.image_spec()),
            image_ref: self.image_ref_or_id().to_string(),
            image_id: self.image_id.clone(),
            reason: self.reason.clone(),
            message: self.message.clone(),
            labels: self.config.labels.clone(),
            annotations: self.config.annotations.clone(),
            mounts: self.config.mounts.clone(),
            log_path: self
                .log_path
                .as_ref()
                .map(|p| p.display().to_string())
                .unwrap_or_default(),
            resources: self
                .config
                .linux
                .as_ref()
                .and_then(|l| l.resources.clone())
                .map(|linux| cri::ContainerResources {
                    linux: Some(linux),
                    ..Default::default()
                }),
            ..Default::default()
        }
    }

    /// Whether it passes a ListContainers filter (IDs may be prefixes).
    pub fn matches(&self, filter: &cri::ContainerFilter) -> bool {
        (filter.id.is_empty() || self.id.starts_with(&filter.id))
            && (filter.pod_sandbox_id.is_empty()
                || self.sandbox_id.starts_with(&filter.pod_sandbox_id))
            && filter
                .state
                .as_ref()
                .is_none_or(|s| s.state == self.state.to_cri())
            && labels_match(&self.config.labels, &filter.label_selector)
    }

    /// Marks the container exited as its shim reported.
    pub fn set_exited(&mut self, exit_code: i32, finished_at: i64, oom_killed: bool) {
        self.state = ContainerState::Exited;
        self.exit_code = exit_code;
        self.finished_at = finished_at;
        self.pid = None;
        self.reason = if oom_killed {
            "OOMKilled".into()
        } else if exit_code == 0 {
            "Completed".into()
        } else {
            "Error".into()
        };
    }
}

/// Every selector label must be present with the same value.
pub fn labels_match(labels: &HashMap<String, String>, selector: &HashMap<String, String>) -> bool {
    selector.iter().all(|(k, v)| labels.get(k) == Some(v))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn container(state: ContainerState, labels: &[(&str, &str)]) -> ContainerRecord {
        ContainerRecord {
            id: "abcdef".into(),
            sandbox_id: "123456".into(),
            config: cri::ContainerConfig {
                metadata: Some(cri::ContainerMetadata {
                    name: "web".into(),
                    attempt: 1,
                }),
                labels: labels
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
                ..Default::default()
            },
            image_name: "busybox".into(),
            image_id: "sha256:aa".into(),
            image_ref: String::new(),
            state,
            created_at: 1,
            started_at: 0,
            finished_at: 0,
            exit_code: 0,
            reason: String::new(),
            message: String::new(),
            log_path: None,
            pid: None,
            cgroup_path: String::new(),
            bundle: PathBuf::new(),
            engine: ContainerEngine::Oci,
        }
    }

    #[test]
    fn filters_match_prefixes_state_and_labels() {
        let c = container(
            ContainerState::Running,
            &[("app", "web"), ("tier", "front")],
        );
        let running = Some(cri::ContainerStateValue {
            state: cri::ContainerState::ContainerRunning as i32,
        });
        let filter =
            |id: &str, sandbox: &str, state, labels: &[(&str, &str)]| cri::ContainerFilter {
                id: id.into(),
                pod_sandbox_id: sandbox.into(),
                state,
                label_selector: labels
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
            };
        assert!(c.matches(&filter("", "", None, &[])));
        assert!(c.matches(&filter("abc", "123", running, &[("app", "web")])));
        assert!(!c.matches(&filter("abd", "", None, &[])));
        assert!(!c.matches(&filter("", "9", None, &[])));
        assert!(!c.matches(&filter("", "", None, &[("app", "db")])));
        let exited = Some(cri::ContainerStateValue {
            state: cri::ContainerState::ContainerExited as i32,
        });
        assert!(!c.matches(&filter("", "", exited, &[])));
    }

    #[test]
    fn the_engine_is_recorded_and_old_records_read_as_oci() {
        let mut c = container(ContainerState::Created, &[]);
        c.engine = ContainerEngine::Wasm;
        let mut json = serde_json::to_value(&c).unwrap();
        assert_eq!(json["engine"], "wasm");
        json.as_object_mut().unwrap().remove("engine");
        let old: ContainerRecord = serde_json::from_value(json).unwrap();
        assert_eq!(old.engine, ContainerEngine::Oci);
        assert_eq!(old.engine.as_str(), "oci");
    }

    #[test]
    fn exit_reasons_follow_containerd() {
        let mut c = container(ContainerState::Running, &[]);
        c.set_exited(0, 5, false);
        assert_eq!(
            (c.reason.as_str(), c.state),
            ("Completed", ContainerState::Exited)
        );
        c.set_exited(2, 5, false);
        assert_eq!(c.reason, "Error");
        c.set_exited(137, 5, true);
        assert_eq!(c.reason, "OOMKilled");
        assert_eq!(c.status().exit_code, 137);
    }

    #[test]
    fn names_are_reserved_as_containerd_does() {
        let pod = cri::PodSandboxMetadata {
            name: "nginx".into(),
            uid: "u1".into(),
            namespace: "default".into(),
            attempt: 0,
        };
        assert_eq!(sandbox_name(Some(&pod)), "nginx_default_u1_0");
        let ctr = cri::ContainerMetadata {
            name: "web".into(),
            attempt: 2,
        };
        assert_eq!(
            container_name(Some(&ctr), Some(&pod)),
            "web_nginx_default_u1_2"
        );
    }
}
