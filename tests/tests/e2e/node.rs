//! A test node: registries, a network lease, a running `skiff runtime`, a
//! CRI client, and config builders for pods and containers.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use k8s_cri::v1 as cri;
use skiff_tests::cri::Cri;
use skiff_tests::{Fixture, NetworkLease, RuntimeOptions, SkiffRuntime, TestRegistries};

/// Everything a runtime test needs; cleans up leftovers on drop.
pub struct Node {
    pub regs: TestRegistries,
    pub dir: tempfile::TempDir,
    pub lease: Arc<NetworkLease>,
    pub options: RuntimeOptions,
    pub runtime: Option<SkiffRuntime>,
    pub cri: Cri,
}

impl Node {
    pub async fn start() -> Node {
        let regs = TestRegistries::start().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let yaml = dir.path().join("registries.yaml");
        regs.write_registries_yaml(&yaml).unwrap();
        let lease = Arc::new(NetworkLease::take().unwrap());
        let options = RuntimeOptions {
            registries: Some(yaml),
            network: Some(lease.clone()),
            ..Default::default()
        };
        let runtime = SkiffRuntime::start(&dir.path().join("node"), &options).unwrap();
        let cri = Cri::connect(&runtime.socket()).await.unwrap();
        let node = Node {
            regs,
            dir,
            lease,
            options,
            runtime: Some(runtime),
            cri,
        };
        node.pull(Fixture::Busybox).await;
        node
    }

    pub fn node_dir(&self) -> PathBuf {
        self.dir.path().join("node")
    }

    /// The busybox image reference on the open registry.
    pub fn busybox(&self) -> String {
        Fixture::Busybox.reference(&self.regs.open)
    }

    pub async fn pull(&self, fixture: Fixture) {
        let image = cri::ImageSpec {
            image: fixture.reference(&self.regs.open),
            ..Default::default()
        };
        self.cri
            .images
            .clone()
            .pull_image(cri::PullImageRequest {
                image: Some(image),
                ..Default::default()
            })
            .await
            .unwrap();
    }

    /// Kills the runtime with SIGKILL and starts it again.
    pub async fn restart_after_kill(&mut self) {
        self.runtime.take().unwrap().kill();
        let runtime = SkiffRuntime::start(&self.node_dir(), &self.options).unwrap();
        self.cri = Cri::connect(&runtime.socket()).await.unwrap();
        self.runtime = Some(runtime);
    }

    pub fn logs_dir(&self) -> PathBuf {
        self.dir.path().join("logs")
    }

    /// A pod config with a unique name, our cgroup parent and a log dir.
    pub fn pod(&self, name: &str) -> cri::PodSandboxConfig {
        cri::PodSandboxConfig {
            metadata: Some(cri::PodSandboxMetadata {
                name: name.into(),
                uid: format!("uid-{name}"),
                namespace: "default".into(),
                attempt: 0,
            }),
            hostname: name.into(),
            log_directory: self.logs_dir().join(name).display().to_string(),
            labels: HashMap::from([("app".into(), name.into())]),
            linux: Some(cri::LinuxPodSandboxConfig {
                cgroup_parent: format!("/{}/{name}", self.lease.bridge()),
                security_context: Some(cri::LinuxSandboxSecurityContext {
                    namespace_options: Some(cri::NamespaceOption {
                        pid: cri::NamespaceMode::Container as i32,
                        ..Default::default()
                    }),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    /// A busybox container running `script` with `sh -c`.
    pub fn container(&self, name: &str, script: &str) -> cri::ContainerConfig {
        cri::ContainerConfig {
            metadata: Some(cri::ContainerMetadata {
                name: name.into(),
                attempt: 0,
            }),
            image: Some(cri::ImageSpec {
                image: self.busybox(),
                ..Default::default()
            }),
            command: vec!["sh".into(), "-c".into(), script.into()],
            log_path: format!("{name}.log"),
            labels: HashMap::from([("container".into(), name.into())]),
            linux: Some(cri::LinuxContainerConfig::default()),
            ..Default::default()
        }
    }

    /// Pushes `image` to the open registry as `name` and pulls it through
    /// CRI; returns its reference.
    pub async fn push_and_pull(&self, image: &skiff_tests::oci::Image, name: &str) -> String {
        self.regs.open.push(image, name).unwrap();
        let reference = self.regs.open.reference(name);
        self.cri
            .images
            .clone()
            .pull_image(cri::PullImageRequest {
                image: Some(cri::ImageSpec {
                    image: reference.clone(),
                    ..Default::default()
                }),
                ..Default::default()
            })
            .await
            .unwrap();
        reference
    }

    pub async fn run_pod(&self, config: cri::PodSandboxConfig) -> String {
        self.run_pod_with(config, "").await
    }

    /// RunPodSandbox with a runtime handler (a RuntimeClass's).
    pub async fn run_pod_with(&self, config: cri::PodSandboxConfig, handler: &str) -> String {
        self.cri
            .runtime
            .clone()
            .run_pod_sandbox(cri::RunPodSandboxRequest {
                config: Some(config),
                runtime_handler: handler.into(),
            })
            .await
            .unwrap()
            .into_inner()
            .pod_sandbox_id
    }

    /// Creates and starts a container; returns its ID.
    pub async fn run_container(
        &self,
        pod_id: &str,
        pod: &cri::PodSandboxConfig,
        config: cri::ContainerConfig,
    ) -> String {
        let mut rt = self.cri.runtime.clone();
        let id = rt
            .create_container(cri::CreateContainerRequest {
                pod_sandbox_id: pod_id.into(),
                config: Some(config),
                sandbox_config: Some(pod.clone()),
            })
            .await
            .unwrap()
            .into_inner()
            .container_id;
        rt.start_container(cri::StartContainerRequest {
            container_id: id.clone(),
        })
        .await
        .unwrap();
        id
    }

    pub async fn status(&self, container_id: &str) -> cri::ContainerStatus {
        self.cri
            .runtime
            .clone()
            .container_status(cri::ContainerStatusRequest {
                container_id: container_id.into(),
                verbose: false,
            })
            .await
            .unwrap()
            .into_inner()
            .status
            .unwrap()
    }

    pub async fn pod_ip(&self, pod_id: &str) -> String {
        let status = self
            .cri
            .runtime
            .clone()
            .pod_sandbox_status(cri::PodSandboxStatusRequest {
                pod_sandbox_id: pod_id.into(),
                verbose: false,
            })
            .await
            .unwrap()
            .into_inner()
            .status
            .unwrap();
        status.network.unwrap().ip
    }

    pub async fn exec(&self, container_id: &str, cmd: &[&str]) -> cri::ExecSyncResponse {
        self.cri
            .runtime
            .clone()
            .exec_sync(cri::ExecSyncRequest {
                container_id: container_id.into(),
                cmd: cmd.iter().map(|s| s.to_string()).collect(),
                timeout: 10,
            })
            .await
            .unwrap()
            .into_inner()
    }

    /// Waits (up to 20 s) until `check` holds for the container's status.
    pub async fn wait_for(
        &self,
        container_id: &str,
        check: impl Fn(&cri::ContainerStatus) -> bool,
    ) -> cri::ContainerStatus {
        for _ in 0..400 {
            let status = self.status(container_id).await;
            if check(&status) {
                return status;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        panic!(
            "container {container_id} never reached the expected state: {:?}",
            self.status(container_id).await
        );
    }

    pub async fn remove_pod(&self, pod_id: &str) {
        let mut rt = self.cri.runtime.clone();
        rt.stop_pod_sandbox(cri::StopPodSandboxRequest {
            pod_sandbox_id: pod_id.into(),
        })
        .await
        .unwrap();
        rt.remove_pod_sandbox(cri::RemovePodSandboxRequest {
            pod_sandbox_id: pod_id.into(),
        })
        .await
        .unwrap();
    }

    /// Asserts nothing of the node's pods is left: no mounts, veths, IPs,
    /// shim processes or pod cgroups.
    pub fn assert_no_leaks(&self) {
        let node = self.node_dir().display().to_string();
        let mounts: Vec<String> = std::fs::read_to_string("/proc/self/mountinfo")
            .unwrap()
            .lines()
            .filter_map(|l| l.split(' ').nth(4).map(str::to_string))
            .filter(|m| m.starts_with(&node))
            .collect();
        assert!(mounts.is_empty(), "mounts left: {mounts:?}");
        let pods = self.node_dir().join("run/pods");
        let left: Vec<_> = std::fs::read_dir(&pods)
            .map(|d| d.filter_map(|e| e.ok()).map(|e| e.file_name()).collect())
            .unwrap_or_default();
        assert!(left.is_empty(), "pod directories left: {left:?}");
        let links = std::process::Command::new("ip")
            .args(["-o", "link", "show", "master", &self.lease.bridge()])
            .output()
            .unwrap();
        assert!(
            links.stdout.is_empty(),
            "veths left: {}",
            String::from_utf8_lossy(&links.stdout)
        );
        let ipam = self
            .node_dir()
            .join("data/agent/runtime/ipam")
            .join(self.lease.bridge());
        let ips: Vec<_> = std::fs::read_dir(&ipam)
            .map(|d| {
                d.filter_map(|e| e.ok())
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .filter(|n| n.starts_with("10."))
                    .collect()
            })
            .unwrap_or_default();
        assert!(ips.is_empty(), "IPs still allocated: {ips:?}");
        let shims = shim_processes(&self.node_dir());
        assert!(shims.is_empty(), "shim processes left: {shims:?}");
        // Pod parents (`/<bridge>/<pod>`) are the caller's, as kubelet's are;
        // container cgroups below them must be gone.
        let cgroup = Path::new("/sys/fs/cgroup/memory").join(self.lease.bridge());
        let containers: Vec<_> = walk_dirs(&cgroup)
            .into_iter()
            .filter(|c| {
                c.strip_prefix(&cgroup)
                    .map(|r| r.components().count() > 1)
                    .unwrap_or(false)
            })
            .collect();
        assert!(
            containers.is_empty(),
            "container cgroups left: {containers:?}\n--- runtime log ---\n{}",
            self.runtime
                .as_ref()
                .map(|r| r.log_text())
                .unwrap_or_default()
        );
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.kill();
        }
        skiff_tests::clean_node(&self.node_dir());
        // The pod cgroup parents this test made (kubelet's job in a cluster).
        if let Ok(controllers) = std::fs::read_dir("/sys/fs/cgroup") {
            for controller in controllers.filter_map(|e| e.ok()) {
                let root = controller.path().join(self.lease.bridge());
                let mut dirs = walk_dirs(&root);
                dirs.sort_by_key(|d| std::cmp::Reverse(d.as_os_str().len()));
                for dir in dirs {
                    let _ = std::fs::remove_dir(dir);
                }
                let _ = std::fs::remove_dir(root);
            }
        }
    }
}

/// PIDs of shim processes serving pods under `node_dir`.
pub fn shim_processes(node_dir: &Path) -> Vec<i32> {
    let node = node_dir.display().to_string();
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let pid: i32 = e.file_name().to_string_lossy().parse().ok()?;
            let cmdline = std::fs::read(e.path().join("cmdline")).ok()?;
            let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
            (cmdline.contains(" shim ") && cmdline.contains(&node)).then_some(pid)
        })
        .collect()
}

fn walk_dirs(root: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.filter_map(|e| e.ok()) {
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                out.push(entry.path());
                stack.push(entry.path());
            }
        }
    }
    out
}
