//! A small in-memory CRI RuntimeService: pods and containers as plain
//! records, every state change logged in `calls` for tests to check.

use std::collections::HashMap;
use std::path::Path;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{SystemTime, UNIX_EPOCH};

use k8s_cri::v1 as cri;
use k8s_cri::v1::runtime_service_server::RuntimeService;
use skiff_cri::streaming::StreamingUrls;
use tonic::{Request, Response, Status};

/// The image every fake image reference resolves to.
pub const IMAGE_ID: &str =
    "sha256:3f57d9401f8d42f986df300f0c69192fc41da28ccc8d797829467780db3dd741";
/// The repo tag of that image.
pub const IMAGE_TAG: &str = "docker.io/library/busybox:latest";

pub fn now_nanos() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as i64)
        .unwrap_or(0)
}

/// A pod as the fake keeps it.
#[derive(Debug, Clone)]
pub struct Pod {
    pub status: cri::PodSandboxStatus,
    pub config: cri::PodSandboxConfig,
}

/// A container as the fake keeps it.
#[derive(Debug, Clone)]
pub struct Ctr {
    pub status: cri::ContainerStatus,
    pub pod_id: String,
}

/// Everything the fake knows, and every call that changed something.
#[derive(Debug, Default)]
pub struct State {
    pub pods: Vec<Pod>,
    pub containers: Vec<Ctr>,
    pub calls: Vec<String>,
    pub pulled: Vec<String>,
    next: u32,
}

impl State {
    /// IDs share their first character, so a one-character prefix is
    /// ambiguous and two characters are not.
    fn new_id(&mut self) -> String {
        self.next += 1;
        format!("{:02x}", self.next).repeat(32)
    }

    pub fn pod_mut(&mut self, id: &str) -> Result<&mut Pod, Status> {
        self.pods
            .iter_mut()
            .find(|p| p.status.id == id)
            .ok_or_else(|| {
                Status::not_found(format!(
                    "an error occurred when try to find sandbox {id:?}: not found"
                ))
            })
    }

    pub fn container_mut(&mut self, id: &str) -> Result<&mut Ctr, Status> {
        self.containers
            .iter_mut()
            .find(|c| c.status.id == id)
            .ok_or_else(|| {
                Status::not_found(format!(
                    "an error occurred when try to find container {id:?}: not found"
                ))
            })
    }
}

/// The fake runtime; clones share state.
#[derive(Debug, Clone)]
pub struct FakeRuntime {
    pub state: Arc<Mutex<State>>,
    pub urls: StreamingUrls,
}

impl FakeRuntime {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

fn labels_match(labels: &HashMap<String, String>, selector: &HashMap<String, String>) -> bool {
    selector.iter().all(|(k, v)| labels.get(k) == Some(v))
}

fn pod_summary(pod: &Pod) -> cri::PodSandbox {
    let s = &pod.status;
    cri::PodSandbox {
        id: s.id.clone(),
        metadata: s.metadata.clone(),
        state: s.state,
        created_at: s.created_at,
        labels: s.labels.clone(),
        annotations: s.annotations.clone(),
        runtime_handler: s.runtime_handler.clone(),
    }
}

fn container_summary(c: &Ctr) -> cri::Container {
    let s = &c.status;
    cri::Container {
        id: s.id.clone(),
        pod_sandbox_id: c.pod_id.clone(),
        metadata: s.metadata.clone(),
        image: s.image.clone(),
        image_ref: s.image_ref.clone(),
        state: s.state,
        created_at: s.created_at,
        labels: s.labels.clone(),
        annotations: s.annotations.clone(),
        image_id: s.image_id.clone(),
    }
}

/// CPU use of a running container: a quarter of a core since it started.
fn container_stats(c: &Ctr) -> cri::ContainerStats {
    let now = now_nanos();
    let running = c.status.state == cri::ContainerState::ContainerRunning as i32;
    let (cpu, memory) = if running {
        (((now - c.status.started_at) / 4) as u64, 13_430_000)
    } else {
        (0, 0)
    };
    let value = |value| Some(cri::UInt64Value { value });
    cri::ContainerStats {
        attributes: Some(cri::ContainerAttributes {
            id: c.status.id.clone(),
            metadata: c.status.metadata.clone(),
            labels: c.status.labels.clone(),
            annotations: c.status.annotations.clone(),
        }),
        cpu: Some(cri::CpuUsage {
            timestamp: now,
            usage_core_nano_seconds: value(cpu),
            usage_nano_cores: None,
        }),
        memory: Some(cri::MemoryUsage {
            timestamp: now,
            working_set_bytes: value(memory),
            ..Default::default()
        }),
        writable_layer: Some(cri::FilesystemUsage {
            timestamp: now,
            fs_id: None,
            used_bytes: value(28_672),
            inodes_used: value(8),
        }),
        swap: None,
    }
}

pub type Reply<T> = Result<Response<T>, Status>;

#[tonic::async_trait]
impl RuntimeService for FakeRuntime {
    type GetContainerEventsStream = Pin<
        Box<dyn tokio_stream::Stream<Item = Result<cri::ContainerEventResponse, Status>> + Send>,
    >;

    async fn version(&self, _r: Request<cri::VersionRequest>) -> Reply<cri::VersionResponse> {
        Ok(Response::new(cri::VersionResponse {
            version: "0.1.0".into(),
            runtime_name: "fake".into(),
            runtime_version: "1.0".into(),
            runtime_api_version: "v1".into(),
        }))
    }

    async fn run_pod_sandbox(
        &self,
        r: Request<cri::RunPodSandboxRequest>,
    ) -> Reply<cri::RunPodSandboxResponse> {
        let r = r.into_inner();
        let config = r
            .config
            .ok_or_else(|| Status::invalid_argument("config is required"))?;
        let metadata = config.metadata.clone().unwrap_or_default();
        let mut state = self.lock();
        let taken = state
            .pods
            .iter()
            .any(|p| p.status.metadata.as_ref() == Some(&metadata));
        if taken {
            return Err(Status::already_exists(format!(
                "pod {:?} is reserved",
                metadata.name
            )));
        }
        let id = state.new_id();
        state.calls.push(format!(
            "RunPodSandbox {} handler={:?}",
            metadata.name, r.runtime_handler
        ));
        let n = state.pods.len() + 2;
        state.pods.push(Pod {
            status: cri::PodSandboxStatus {
                id: id.clone(),
                metadata: Some(metadata),
                state: cri::PodSandboxState::SandboxReady as i32,
                created_at: now_nanos(),
                network: Some(cri::PodSandboxNetworkStatus {
                    ip: format!("10.42.0.{n}"),
                    additional_ips: vec![],
                }),
                linux: None,
                labels: config.labels.clone(),
                annotations: config.annotations.clone(),
                runtime_handler: r.runtime_handler,
            },
            config,
        });
        Ok(Response::new(cri::RunPodSandboxResponse {
            pod_sandbox_id: id,
        }))
    }

    async fn stop_pod_sandbox(
        &self,
        r: Request<cri::StopPodSandboxRequest>,
    ) -> Reply<cri::StopPodSandboxResponse> {
        let id = r.into_inner().pod_sandbox_id;
        let mut state = self.lock();
        state.pod_mut(&id)?.status.state = cri::PodSandboxState::SandboxNotready as i32;
        for c in state.containers.iter_mut().filter(|c| c.pod_id == id) {
            if c.status.state == cri::ContainerState::ContainerRunning as i32 {
                c.status.state = cri::ContainerState::ContainerExited as i32;
                c.status.finished_at = now_nanos();
                c.status.exit_code = 137;
            }
        }
        state.calls.push(format!("StopPodSandbox {id}"));
        Ok(Response::new(cri::StopPodSandboxResponse {}))
    }

    async fn remove_pod_sandbox(
        &self,
        r: Request<cri::RemovePodSandboxRequest>,
    ) -> Reply<cri::RemovePodSandboxResponse> {
        let id = r.into_inner().pod_sandbox_id;
        let mut state = self.lock();
        state.pods.retain(|p| p.status.id != id);
        state.containers.retain(|c| c.pod_id != id);
        state.calls.push(format!("RemovePodSandbox {id}"));
        Ok(Response::new(cri::RemovePodSandboxResponse {}))
    }

    async fn pod_sandbox_status(
        &self,
        r: Request<cri::PodSandboxStatusRequest>,
    ) -> Reply<cri::PodSandboxStatusResponse> {
        let r = r.into_inner();
        let mut state = self.lock();
        let pod = state.pod_mut(&r.pod_sandbox_id)?;
        let mut info = HashMap::new();
        if r.verbose {
            info.insert(
                "info".to_owned(),
                format!(
                    r#"{{"pid": 42, "runtimeHandler": "", "config": {{"hostname": "{}"}}}}"#,
                    pod.config.hostname
                ),
            );
        }
        Ok(Response::new(cri::PodSandboxStatusResponse {
            status: Some(pod.status.clone()),
            info,
            containers_statuses: vec![],
            timestamp: 0,
        }))
    }

    async fn list_pod_sandbox(
        &self,
        r: Request<cri::ListPodSandboxRequest>,
    ) -> Reply<cri::ListPodSandboxResponse> {
        let filter = r.into_inner().filter.unwrap_or_default();
        let state = self.lock();
        let items = state
            .pods
            .iter()
            .filter(|p| filter.id.is_empty() || p.status.id == filter.id)
            .filter(|p| {
                filter
                    .state
                    .as_ref()
                    .is_none_or(|s| s.state == p.status.state)
            })
            .filter(|p| labels_match(&p.status.labels, &filter.label_selector))
            .map(pod_summary)
            .collect();
        Ok(Response::new(cri::ListPodSandboxResponse { items }))
    }

    async fn create_container(
        &self,
        r: Request<cri::CreateContainerRequest>,
    ) -> Reply<cri::CreateContainerResponse> {
        let r = r.into_inner();
        let config = r.config.unwrap_or_default();
        let mut state = self.lock();
        let pod = state.pod_mut(&r.pod_sandbox_id)?;
        if pod.status.state != cri::PodSandboxState::SandboxReady as i32 {
            return Err(Status::failed_precondition(format!(
                "sandbox {} is not ready",
                r.pod_sandbox_id
            )));
        }
        let log_dir = pod.config.log_directory.clone();
        let pod_metadata = pod.status.metadata.clone().unwrap_or_default();
        let mut labels = config.labels.clone();
        labels.insert("io.kubernetes.pod.name".into(), pod_metadata.name);
        labels.insert("io.kubernetes.pod.namespace".into(), pod_metadata.namespace);
        let id = state.new_id();
        let image = config.image.clone().unwrap_or_default();
        state.calls.push(format!(
            "CreateContainer {} in {} image={} user_specified={} sandbox_uid={}",
            config.metadata.as_ref().map_or("", |m| m.name.as_str()),
            r.pod_sandbox_id,
            image.image,
            image.user_specified_image,
            r.sandbox_config
                .and_then(|c| c.metadata)
                .map(|m| m.uid)
                .unwrap_or_default(),
        ));
        let log_path = if config.log_path.is_empty() {
            String::new()
        } else {
            Path::new(&log_dir)
                .join(&config.log_path)
                .display()
                .to_string()
        };
        state.containers.push(Ctr {
            status: cri::ContainerStatus {
                id: id.clone(),
                metadata: config.metadata,
                state: cri::ContainerState::ContainerCreated as i32,
                created_at: now_nanos(),
                image: Some(image),
                image_ref: IMAGE_ID.into(),
                labels,
                annotations: config.annotations,
                log_path,
                ..Default::default()
            },
            pod_id: r.pod_sandbox_id,
        });
        Ok(Response::new(cri::CreateContainerResponse {
            container_id: id,
        }))
    }

    async fn start_container(
        &self,
        r: Request<cri::StartContainerRequest>,
    ) -> Reply<cri::StartContainerResponse> {
        let id = r.into_inner().container_id;
        let mut state = self.lock();
        let c = state.container_mut(&id)?;
        c.status.state = cri::ContainerState::ContainerRunning as i32;
        c.status.started_at = now_nanos();
        state.calls.push(format!("StartContainer {id}"));
        Ok(Response::new(cri::StartContainerResponse {}))
    }

    async fn stop_container(
        &self,
        r: Request<cri::StopContainerRequest>,
    ) -> Reply<cri::StopContainerResponse> {
        let r = r.into_inner();
        let mut state = self.lock();
        let c = state.container_mut(&r.container_id)?;
        if c.status.state == cri::ContainerState::ContainerRunning as i32 {
            c.status.state = cri::ContainerState::ContainerExited as i32;
            c.status.finished_at = now_nanos();
            c.status.reason = "Completed".into();
        }
        state.calls.push(format!(
            "StopContainer {} timeout={}",
            r.container_id, r.timeout
        ));
        Ok(Response::new(cri::StopContainerResponse {}))
    }

    async fn remove_container(
        &self,
        r: Request<cri::RemoveContainerRequest>,
    ) -> Reply<cri::RemoveContainerResponse> {
        let id = r.into_inner().container_id;
        let mut state = self.lock();
        state.containers.retain(|c| c.status.id != id);
        state.calls.push(format!("RemoveContainer {id}"));
        Ok(Response::new(cri::RemoveContainerResponse {}))
    }

    async fn list_containers(
        &self,
        r: Request<cri::ListContainersRequest>,
    ) -> Reply<cri::ListContainersResponse> {
        let filter = r.into_inner().filter.unwrap_or_default();
        let state = self.lock();
        let containers = state
            .containers
            .iter()
            .filter(|c| filter.id.is_empty() || c.status.id == filter.id)
            .filter(|c| filter.pod_sandbox_id.is_empty() || c.pod_id == filter.pod_sandbox_id)
            .filter(|c| {
                filter
                    .state
                    .as_ref()
                    .is_none_or(|s| s.state == c.status.state)
            })
            .filter(|c| labels_match(&c.status.labels, &filter.label_selector))
            .map(container_summary)
            .collect();
        Ok(Response::new(cri::ListContainersResponse { containers }))
    }

    async fn container_status(
        &self,
        r: Request<cri::ContainerStatusRequest>,
    ) -> Reply<cri::ContainerStatusResponse> {
        let r = r.into_inner();
        let mut state = self.lock();
        let c = state.container_mut(&r.container_id)?;
        let mut info = HashMap::new();
        if r.verbose {
            info.insert(
                "info".to_owned(),
                format!(r#"{{"sandboxID": "{}", "pid": 7}}"#, c.pod_id),
            );
        }
        Ok(Response::new(cri::ContainerStatusResponse {
            status: Some(c.status.clone()),
            info,
        }))
    }

    async fn update_container_resources(
        &self,
        r: Request<cri::UpdateContainerResourcesRequest>,
    ) -> Reply<cri::UpdateContainerResourcesResponse> {
        let r = r.into_inner();
        let mut state = self.lock();
        state.container_mut(&r.container_id)?;
        let linux = r.linux.unwrap_or_default();
        state.calls.push(format!(
            "UpdateContainerResources {} memory={} shares={} quota={} cpus={:?}",
            r.container_id,
            linux.memory_limit_in_bytes,
            linux.cpu_shares,
            linux.cpu_quota,
            linux.cpuset_cpus
        ));
        Ok(Response::new(cri::UpdateContainerResourcesResponse {}))
    }

    async fn reopen_container_log(
        &self,
        r: Request<cri::ReopenContainerLogRequest>,
    ) -> Reply<cri::ReopenContainerLogResponse> {
        let id = r.into_inner().container_id;
        self.lock().calls.push(format!("ReopenContainerLog {id}"));
        Ok(Response::new(cri::ReopenContainerLogResponse {}))
    }

    async fn exec_sync(&self, r: Request<cri::ExecSyncRequest>) -> Reply<cri::ExecSyncResponse> {
        let r = r.into_inner();
        let mut state = self.lock();
        state.container_mut(&r.container_id)?;
        state
            .calls
            .push(format!("ExecSync {:?} timeout={}", r.cmd, r.timeout));
        let exit_code = match r.cmd.as_slice() {
            [first, code] if first == "exit" => code.parse().unwrap_or(1),
            _ => 0,
        };
        Ok(Response::new(cri::ExecSyncResponse {
            stdout: format!("ran {}", r.cmd.join(" ")).into_bytes(),
            stderr: b"a warning".to_vec(),
            exit_code,
        }))
    }

    async fn exec(&self, r: Request<cri::ExecRequest>) -> Reply<cri::ExecResponse> {
        let r = r.into_inner();
        self.lock().container_mut(&r.container_id)?;
        let url = self.urls.exec_url(&r).map_err(Status::from)?;
        Ok(Response::new(cri::ExecResponse { url }))
    }

    async fn attach(&self, r: Request<cri::AttachRequest>) -> Reply<cri::AttachResponse> {
        let r = r.into_inner();
        self.lock().container_mut(&r.container_id)?;
        let url = self.urls.attach_url(&r).map_err(Status::from)?;
        Ok(Response::new(cri::AttachResponse { url }))
    }

    async fn port_forward(
        &self,
        r: Request<cri::PortForwardRequest>,
    ) -> Reply<cri::PortForwardResponse> {
        let r = r.into_inner();
        self.lock().pod_mut(&r.pod_sandbox_id)?;
        let url = self.urls.port_forward_url(&r).map_err(Status::from)?;
        Ok(Response::new(cri::PortForwardResponse { url }))
    }

    async fn container_stats(
        &self,
        r: Request<cri::ContainerStatsRequest>,
    ) -> Reply<cri::ContainerStatsResponse> {
        let id = r.into_inner().container_id;
        let mut state = self.lock();
        let c = state.container_mut(&id)?;
        Ok(Response::new(cri::ContainerStatsResponse {
            stats: Some(container_stats(c)),
        }))
    }

    async fn list_container_stats(
        &self,
        r: Request<cri::ListContainerStatsRequest>,
    ) -> Reply<cri::ListContainerStatsResponse> {
        let filter = r.into_inner().filter.unwrap_or_default();
        let state = self.lock();
        let stats = state
            .containers
            .iter()
            .filter(|c| filter.id.is_empty() || c.status.id == filter.id)
            .filter(|c| filter.pod_sandbox_id.is_empty() || c.pod_id == filter.pod_sandbox_id)
            .filter(|c| labels_match(&c.status.labels, &filter.label_selector))
            .map(container_stats)
            .collect();
        Ok(Response::new(cri::ListContainerStatsResponse { stats }))
    }

    async fn pod_sandbox_stats(
        &self,
        _r: Request<cri::PodSandboxStatsRequest>,
    ) -> Reply<cri::PodSandboxStatsResponse> {
        Err(Status::unimplemented("PodSandboxStats: not in the fake"))
    }

    async fn list_pod_sandbox_stats(
        &self,
        r: Request<cri::ListPodSandboxStatsRequest>,
    ) -> Reply<cri::ListPodSandboxStatsResponse> {
        let filter = r.into_inner().filter.unwrap_or_default();
        let state = self.lock();
        let stats = state
            .pods
            .iter()
            .filter(|p| filter.id.is_empty() || p.status.id == filter.id)
            .filter(|p| labels_match(&p.status.labels, &filter.label_selector))
            .map(|p| {
                let containers: Vec<_> = state
                    .containers
                    .iter()
                    .filter(|c| c.pod_id == p.status.id)
                    .map(container_stats)
                    .collect();
                let cpu: u64 = containers
                    .iter()
                    .filter_map(|c| c.cpu.as_ref()?.usage_core_nano_seconds.as_ref())
                    .map(|v| v.value)
                    .sum();
                let memory: u64 = containers
                    .iter()
                    .filter_map(|c| c.memory.as_ref()?.working_set_bytes.as_ref())
                    .map(|v| v.value)
                    .sum();
                let timestamp = containers
                    .first()
                    .and_then(|c| c.cpu.as_ref())
                    .map_or_else(now_nanos, |cpu| cpu.timestamp);
                cri::PodSandboxStats {
                    attributes: Some(cri::PodSandboxAttributes {
                        id: p.status.id.clone(),
                        metadata: p.status.metadata.clone(),
                        labels: p.status.labels.clone(),
                        annotations: p.status.annotations.clone(),
                    }),
                    linux: Some(cri::LinuxPodSandboxStats {
                        cpu: Some(cri::CpuUsage {
                            timestamp,
                            usage_core_nano_seconds: Some(cri::UInt64Value { value: cpu }),
                            usage_nano_cores: None,
                        }),
                        memory: Some(cri::MemoryUsage {
                            timestamp: now_nanos(),
                            working_set_bytes: Some(cri::UInt64Value { value: memory }),
                            ..Default::default()
                        }),
                        network: None,
                        process: None,
                        containers,
                    }),
                    windows: None,
                }
            })
            .collect();
        Ok(Response::new(cri::ListPodSandboxStatsResponse { stats }))
    }

    async fn update_runtime_config(
        &self,
        _r: Request<cri::UpdateRuntimeConfigRequest>,
    ) -> Reply<cri::UpdateRuntimeConfigResponse> {
        Err(Status::unimplemented(
            "UpdateRuntimeConfig: not in the fake",
        ))
    }

    async fn status(&self, r: Request<cri::StatusRequest>) -> Reply<cri::StatusResponse> {
        let verbose = r.into_inner().verbose;
        let condition = |kind: &str| cri::RuntimeCondition {
            r#type: kind.into(),
            status: true,
            reason: String::new(),
            message: String::new(),
        };
        let mut info = HashMap::new();
        if verbose {
            info.insert(
                "config".into(),
                r#"{"podCIDR": "10.42.0.0/24", "dataDir": "/var/lib/skiff"}"#.into(),
            );
            info.insert("golang".into(), "\"skiff\"".into());
        }
        Ok(Response::new(cri::StatusResponse {
            status: Some(cri::RuntimeStatus {
                conditions: vec![condition("RuntimeReady"), condition("NetworkReady")],
            }),
            info,
            runtime_handlers: ["", "runc", "wasmtime"]
                .into_iter()
                .map(|name| cri::RuntimeHandler {
                    name: name.into(),
                    features: Some(cri::RuntimeHandlerFeatures {
                        recursive_read_only_mounts: name.is_empty(),
                        user_namespaces: false,
                    }),
                })
                .collect(),
            features: None,
        }))
    }

    async fn checkpoint_container(
        &self,
        _r: Request<cri::CheckpointContainerRequest>,
    ) -> Reply<cri::CheckpointContainerResponse> {
        Err(Status::unimplemented(
            "CheckpointContainer: not in the fake",
        ))
    }

    async fn get_container_events(
        &self,
        _r: Request<cri::GetEventsRequest>,
    ) -> Reply<Self::GetContainerEventsStream> {
        Err(Status::unimplemented("GetContainerEvents: not in the fake"))
    }

    async fn list_metric_descriptors(
        &self,
        _r: Request<cri::ListMetricDescriptorsRequest>,
    ) -> Reply<cri::ListMetricDescriptorsResponse> {
        Err(Status::unimplemented(
            "ListMetricDescriptors: not in the fake",
        ))
    }

    async fn list_pod_sandbox_metrics(
        &self,
        _r: Request<cri::ListPodSandboxMetricsRequest>,
    ) -> Reply<cri::ListPodSandboxMetricsResponse> {
        Err(Status::unimplemented(
            "ListPodSandboxMetrics: not in the fake",
        ))
    }

    async fn runtime_config(
        &self,
        _r: Request<cri::RuntimeConfigRequest>,
    ) -> Reply<cri::RuntimeConfigResponse> {
        Err(Status::unimplemented("RuntimeConfig: not in the fake"))
    }
}
