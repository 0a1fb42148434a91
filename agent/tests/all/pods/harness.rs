//! A node for the pod sync tests: the apiserver of a whole `skiff server`
//! in this process (no scheduler, no controllers, no agent), a node
//! runtime opened in this process on a leased pod network (its own bridge
//! and /24, real shims), the busybox fixture imported, and the kubelet's
//! pod sync (`pods::run_with`) with the pods' cgroups under the lease's
//! bridge and their logs in the test's directory. Pods are bound to the
//! node by `spec.nodeName`.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{ConfigMap, ContainerStatus, Event, Node, Pod};
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use serde_json::{Value, json};
use skiff_agent::kubelet::pods::{PodOptions, run_with};
use skiff_agent::kubelet::{Kubelet, KubeletConfig};
use skiff_cri::CriService;
use skiff_cri::node::{NodeConfig, open_image_store, open_runtime};
use skiff_cri::streaming::{StreamingConfig, StreamingServer};
use skiff_cri::streaming_backend::RuntimeStreams;
use skiff_tests::{Fixture, NetworkLease};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::support::Cluster;

/// The busybox fixture once imported.
pub const BUSYBOX: &str = "docker.io/skiff-test/busybox:latest";
/// The node's name.
pub const NODE: &str = "pods-node";

/// The apiserver, a runtime and the kubelet's pod sync.
pub struct PodNode {
    /// Everything lives here.
    pub dir: tempfile::TempDir,
    /// The admin client (also the kubelet's: there is no authorization).
    pub client: kube::Client,
    /// The pod network.
    pub lease: Arc<NetworkLease>,
    /// The CRI service the kubelet calls.
    pub cri: CriService,
    runtime: skiff_runtime::Runtime,
    /// The apiserver; dropped (stopped) after everything else.
    _server: Cluster,
    streaming_stop: CancellationToken,
    kubelet_stop: CancellationToken,
    kubelet: Option<JoinHandle<()>>,
}

impl PodNode {
    /// Starts everything and the kubelet.
    pub async fn start() -> PodNode {
        Self::start_with(true).await
    }

    /// Starts everything and the kubelet; without `pod_cidr` the runtime
    /// has no pod CIDR (its network is not ready) until
    /// [`PodNode::give_pod_cidr`].
    pub async fn start_with(pod_cidr: bool) -> PodNode {
        let server = Cluster::start().await;
        let dir = tempfile::tempdir().unwrap();
        let client = server.admin().await;
        let lease = Arc::new(NetworkLease::take().unwrap());
        let node_config = NodeConfig {
            data_dir: dir.path().join("data"),
            cri_socket: dir.path().join("cri.sock"),
            registries: dir.path().join("registries.yaml"),
            gc: Default::default(),
            run_dir: dir.path().join("run"),
            bridge: lease.bridge(),
            pod_cidr: pod_cidr.then(|| lease.pod_cidr().parse().unwrap()),
            streaming_address: "127.0.0.1:0".parse().unwrap(),
            shim_binary: skiff_tests::skiff::skiff_binary().unwrap(),
        };
        let store = open_image_store(&node_config).await.unwrap();
        let images = dir.path().join("images");
        std::fs::create_dir_all(&images).unwrap();
        Fixture::Busybox
            .write_oci_archive(
                &images.join("busybox.tar"),
                skiff_tests::oci::Compression::None,
            )
            .unwrap();
        let report = store.import_dir(&images).await;
        assert!(report.failed.is_empty(), "{:?}", report.failed);
        let runtime = open_runtime(&node_config, store).await.unwrap();
        let streaming = StreamingServer::bind(
            StreamingConfig::default(),
            Arc::new(RuntimeStreams::new(runtime.clone())),
        )
        .await
        .unwrap();
        let cri = CriService::with_runtime(runtime.clone(), streaming.urls());
        let streaming_stop = CancellationToken::new();
        tokio::spawn(streaming.serve(streaming_stop.clone()));
        let nodes: Api<Node> = Api::all(client.clone());
        let node: Node = serde_json::from_value(json!({
            "metadata": {"name": NODE},
            "spec": {"podCIDR": lease.pod_cidr()},
        }))
        .unwrap();
        nodes.create(&PostParams::default(), &node).await.unwrap();
        let mut this = PodNode {
            dir,
            client,
            lease,
            cri,
            runtime,
            _server: server,
            streaming_stop,
            kubelet_stop: CancellationToken::new(),
            kubelet: None,
        };
        this.start_kubelet();
        this
    }

    /// Hands the lease's pod CIDR to the runtime (UpdateRuntimeConfig, as
    /// the kubelet does once the node has one).
    pub async fn give_pod_cidr(&self) {
        use k8s_cri::v1::runtime_service_server::RuntimeService;
        let request = k8s_cri::v1::UpdateRuntimeConfigRequest {
            runtime_config: Some(k8s_cri::v1::RuntimeConfig {
                network_config: Some(k8s_cri::v1::NetworkConfig {
                    pod_cidr: self.lease.pod_cidr(),
                }),
            }),
        };
        RuntimeService::update_runtime_config(&self.cri, tonic::Request::new(request))
            .await
            .unwrap();
    }

    /// Where pod logs go.
    pub fn logs_dir(&self) -> PathBuf {
        self.dir.path().join("logs")
    }

    /// Starts the kubelet's pod sync.
    pub fn start_kubelet(&mut self) {
        let kubelet = Kubelet {
            client: self.client.clone(),
            cri: self.cri.clone(),
            config: Arc::new(KubeletConfig {
                node_name: NODE.into(),
                node_ip: "127.0.0.1".parse().unwrap(),
                kubelet_port: 10250,
                root_dir: self.dir.path().join("kubelet"),
                cluster_dns: vec!["10.43.0.10".parse().unwrap()],
                cluster_domain: "cluster.local".into(),
                node_labels: Default::default(),
                node_taints: Vec::new(),
                skiff_version: "test".into(),
            }),
        };
        let options = PodOptions {
            cgroup_root: format!("/{}", self.lease.bridge()),
            pod_logs_dir: self.logs_dir(),
        };
        self.kubelet_stop = CancellationToken::new();
        self.kubelet = Some(tokio::spawn(run_with(
            kubelet,
            options,
            self.kubelet_stop.clone(),
        )));
    }

    /// Stops the kubelet's pod sync (containers keep running).
    pub async fn stop_kubelet(&mut self) {
        self.kubelet_stop.cancel();
        if let Some(task) = self.kubelet.take() {
            tokio::time::timeout(Duration::from_secs(30), task)
                .await
                .expect("the pod sync stops within 30 s")
                .unwrap();
        }
    }

    /// The pods API of `default`.
    pub fn pods(&self) -> Api<Pod> {
        Api::namespaced(self.client.clone(), "default")
    }

    /// Creates `pod` (JSON) bound to the node, without a service account
    /// token unless it asks for one.
    pub async fn create_pod(&self, mut pod: Value) -> Pod {
        pod["spec"]["nodeName"] = json!(NODE);
        if pod["spec"].get("automountServiceAccountToken").is_none() {
            pod["spec"]["automountServiceAccountToken"] = json!(false);
        }
        let pod: Pod = serde_json::from_value(pod).unwrap();
        self.pods()
            .create(&PostParams::default(), &pod)
            .await
            .unwrap()
    }

    /// Creates a ConfigMap in `default`.
    pub async fn create_config_map(&self, name: &str, data: Value) -> ConfigMap {
        let cm: ConfigMap =
            serde_json::from_value(json!({"metadata": {"name": name}, "data": data})).unwrap();
        Api::<ConfigMap>::namespaced(self.client.clone(), "default")
            .create(&PostParams::default(), &cm)
            .await
            .unwrap()
    }

    /// Waits until `check` holds for pod `name`; returns it.
    pub async fn wait_pod(&self, name: &str, what: &str, check: impl Fn(&Pod) -> bool) -> Pod {
        let deadline = Instant::now() + Duration::from_secs(90);
        let mut last = None;
        loop {
            if let Ok(pod) = self.pods().get(name).await {
                if check(&pod) {
                    return pod;
                }
                last = Some(pod);
            }
            if Instant::now() > deadline {
                let status = last.and_then(|p| p.status);
                let events = self.events(name).await;
                panic!(
                    "timed out waiting for {name} to be {what}: {status:#?}\nevents: {events:#?}"
                );
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Waits until pod `name` is gone from the API.
    pub async fn wait_gone(&self, name: &str) {
        let deadline = Instant::now() + Duration::from_secs(90);
        while self.pods().get_opt(name).await.unwrap().is_some() {
            assert!(Instant::now() < deadline, "{name} was not deleted");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// (reason, message) of the events about pod `name`.
    pub async fn events(&self, name: &str) -> Vec<(String, String)> {
        let api: Api<Event> = Api::namespaced(self.client.clone(), "default");
        let list = api.list(&ListParams::default()).await.unwrap();
        list.items
            .into_iter()
            .filter(|e| e.involved_object.name.as_deref() == Some(name))
            .map(|e| (e.reason.unwrap_or_default(), e.message.unwrap_or_default()))
            .collect()
    }

    /// Waits for an event about pod `name` with `reason` whose message
    /// contains `text`.
    pub async fn wait_event(&self, name: &str, reason: &str, text: &str) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let events = self.events(name).await;
            if events.iter().any(|(r, m)| r == reason && m.contains(text)) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "no {reason} event with {text:?} for {name}: {events:#?}"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Deletes every pod (grace 1 s) and waits until the kubelet removed them
    /// from the API and the runtime.
    pub async fn delete_all_pods(&self) {
        let pods = self.pods().list(&ListParams::default()).await.unwrap();
        for pod in &pods.items {
            let name = pod.metadata.name.clone().unwrap();
            let _ = self
                .pods()
                .delete(&name, &DeleteParams::default().grace_period(1))
                .await;
        }
        for pod in &pods.items {
            self.wait_gone(pod.metadata.name.as_deref().unwrap()).await;
            let uid = pod.metadata.uid.clone().unwrap();
            let deadline = Instant::now() + Duration::from_secs(30);
            while self.sandboxes_of(&uid).await > 0 {
                assert!(Instant::now() < deadline, "the sandbox of {uid} stays");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }

    /// The runtime handler of pod `uid`'s sandbox.
    pub async fn sandbox_handler(&self, uid: &str) -> String {
        use k8s_cri::v1::runtime_service_server::RuntimeService;
        let request = tonic::Request::new(k8s_cri::v1::ListPodSandboxRequest {
            filter: Some(k8s_cri::v1::PodSandboxFilter {
                label_selector: [("io.kubernetes.pod.uid".to_string(), uid.to_string())].into(),
                ..Default::default()
            }),
        });
        RuntimeService::list_pod_sandbox(&self.cri, request)
            .await
            .unwrap()
            .into_inner()
            .items
            .first()
            .map(|s| s.runtime_handler.clone())
            .unwrap_or_default()
    }

    /// The sandboxes the runtime has for pod `uid`.
    pub async fn sandboxes_of(&self, uid: &str) -> usize {
        use k8s_cri::v1::runtime_service_server::RuntimeService;
        let request = tonic::Request::new(k8s_cri::v1::ListPodSandboxRequest {
            filter: Some(k8s_cri::v1::PodSandboxFilter {
                label_selector: [("io.kubernetes.pod.uid".to_string(), uid.to_string())].into(),
                ..Default::default()
            }),
        });
        RuntimeService::list_pod_sandbox(&self.cri, request)
            .await
            .unwrap()
            .into_inner()
            .items
            .len()
    }
}

impl Drop for PodNode {
    fn drop(&mut self) {
        self.kubelet_stop.cancel();
        self.streaming_stop.cancel();
        self.runtime.close();
        // What a failed test left: its processes, tmpfs volumes and
        // (empty) cgroup directories.
        kill_cgroup_processes(&self.lease.bridge());
        unmount_below(self.dir.path());
        remove_cgroup_dirs(&self.lease.bridge());
    }
}

fn kill_cgroup_processes(bridge: &str) {
    let mut pids = Vec::new();
    collect_procs(
        &std::path::Path::new("/sys/fs/cgroup/pids").join(bridge),
        &mut pids,
    );
    if pids.is_empty() {
        return;
    }
    let _ = std::process::Command::new("kill")
        .arg("-9")
        .args(&pids)
        .status();
    std::thread::sleep(Duration::from_millis(200));
}

fn collect_procs(dir: &std::path::Path, pids: &mut Vec<String>) {
    if let Ok(text) = std::fs::read_to_string(dir.join("cgroup.procs")) {
        pids.extend(text.lines().map(str::to_owned));
    }
    if let Ok(entries) = std::fs::read_dir(dir) {
        for entry in entries.flatten() {
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                collect_procs(&entry.path(), pids);
            }
        }
    }
}

fn unmount_below(dir: &std::path::Path) {
    let Ok(mountinfo) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return;
    };
    let prefix = dir.display().to_string();
    let mut points: Vec<&str> = mountinfo
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .filter(|p| p.starts_with(&prefix))
        .collect();
    points.sort_by_key(|p| std::cmp::Reverse(p.len()));
    for point in points {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(point)
            .stderr(std::process::Stdio::null())
            .status();
    }
}

fn remove_cgroup_dirs(bridge: &str) {
    let Ok(controllers) = std::fs::read_dir("/sys/fs/cgroup") else {
        return;
    };
    for controller in controllers.flatten() {
        let root = controller.path().join(bridge);
        if root.is_dir() {
            remove_dirs_below(&root);
        }
    }
}

fn remove_dirs_below(dir: &std::path::Path) {
    if let Ok(entries) = std::fs::read_dir(dir) {
        for entry in entries.flatten() {
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                remove_dirs_below(&entry.path());
            }
        }
    }
    let _ = std::fs::remove_dir(dir);
}

/// The status of container `name` (init or regular).
pub fn container(pod: &Pod, name: &str) -> ContainerStatus {
    let status = pod.status.clone().unwrap_or_default();
    status
        .container_statuses
        .into_iter()
        .flatten()
        .chain(status.init_container_statuses.into_iter().flatten())
        .find(|c| c.name == name)
        .unwrap_or_else(|| panic!("no status of container {name}"))
}

/// The restart count of container `name` (0 before it has a status).
pub fn restart_count(pod: &Pod, name: &str) -> i32 {
    let status = pod.status.clone().unwrap_or_default();
    status
        .container_statuses
        .into_iter()
        .flatten()
        .chain(status.init_container_statuses.into_iter().flatten())
        .find(|c| c.name == name)
        .map_or(0, |c| c.restart_count)
}

/// The waiting message of container `name`, if it waits.
pub fn waiting_message(pod: &Pod, name: &str) -> Option<String> {
    let status = pod.status.as_ref()?;
    status
        .container_statuses
        .iter()
        .flatten()
        .find(|c| c.name == name)?
        .state
        .as_ref()?
        .waiting
        .as_ref()?
        .message
        .clone()
}

/// Whether condition `type_` of the pod is True.
pub fn condition(pod: &Pod, type_: &str) -> bool {
    pod.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|c| c.iter().any(|c| c.type_ == type_ && c.status == "True"))
}

/// The pod's phase.
pub fn phase(pod: &Pod) -> String {
    pod.status
        .as_ref()
        .and_then(|s| s.phase.clone())
        .unwrap_or_default()
}

/// The waiting reason of container `name`, if it waits.
pub fn waiting_reason(pod: &Pod, name: &str) -> Option<String> {
    let status = pod.status.as_ref()?;
    status
        .container_statuses
        .iter()
        .flatten()
        .chain(status.init_container_statuses.iter().flatten())
        .find(|c| c.name == name)?
        .state
        .as_ref()?
        .waiting
        .as_ref()?
        .reason
        .clone()
}

/// `GET /` on `address` over HTTP/1.0; the body.
pub async fn http_body(address: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Ok(mut stream) = tokio::net::TcpStream::connect(address).await {
            stream
                .write_all(b"GET / HTTP/1.0\r\nHost: x\r\n\r\n")
                .await
                .unwrap();
            let mut text = String::new();
            stream.read_to_string(&mut text).await.unwrap();
            return text.split("\r\n\r\n").nth(1).unwrap_or_default().to_owned();
        }
        assert!(Instant::now() < deadline, "nothing answers on {address}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
