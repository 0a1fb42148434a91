//! The node under test: `skiff runtime` (release build) on a private data
//! directory, socket and pod network, driven through its CRI socket as
//! kubelet drives it.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use k8s_cri::v1 as cri;
use skiff_benches::cleanup;
pub use skiff_benches::cri::remove_pod;
use skiff_tests::cri::Cri;
use skiff_tests::{NetworkLease, RuntimeOptions, SkiffRuntime, TestRegistries};

use super::{CGROUP_ROOT, CLEANUP_TIMEOUT};

/// The RuntimeClass handler Wasm pods use.
pub const HANDLER: &str = "wasmtime";

/// A running `skiff runtime` and its CRI client.
pub struct Node {
    /// The CRI client.
    pub cri: Cri,
    /// The runtime's process id.
    pub pid: u32,
    /// Name and version as CRI Version reports them.
    pub version: String,
    /// Where pods' log directories go.
    pub logs: PathBuf,
    runtime: SkiffRuntime,
    node_dir: PathBuf,
    lease: Arc<NetworkLease>,
}

/// Processes of this node's pods.
#[derive(Debug, Default)]
pub struct PodProcesses {
    /// The shims (one per pod).
    pub shims: Vec<u32>,
    /// The shims' children: the Wasm guests.
    pub guests: Vec<u32>,
}

impl Node {
    /// Starts the runtime with the registries' `registries.yaml` and a pod
    /// network of its own.
    pub async fn start(regs: &TestRegistries, work: &Path) -> anyhow::Result<Node> {
        let yaml = work.join("registries.yaml");
        regs.write_registries_yaml(&yaml)?;
        let lease = Arc::new(NetworkLease::take()?);
        let node_dir = work.join("skiff");
        let options = RuntimeOptions {
            registries: Some(yaml),
            network: Some(lease.clone()),
            ..Default::default()
        };
        let runtime = SkiffRuntime::start(&node_dir, &options)?;
        let cri = Cri::connect(&runtime.socket()).await?;
        let version = cri
            .runtime
            .clone()
            .version(cri::VersionRequest {
                version: "v1".into(),
            })
            .await
            .context("CRI Version")?
            .into_inner();
        Ok(Node {
            pid: runtime.pid(),
            version: format!(
                "{} {} (CRI {})",
                version.runtime_name, version.runtime_version, version.runtime_api_version
            ),
            logs: work.join("logs"),
            cri,
            runtime,
            node_dir,
            lease,
        })
    }

    /// PullImage.
    pub async fn pull(&self, image: &str) -> anyhow::Result<()> {
        self.cri
            .images
            .clone()
            .pull_image(cri::PullImageRequest {
                image: Some(cri::ImageSpec {
                    image: image.into(),
                    ..Default::default()
                }),
                ..Default::default()
            })
            .await
            .with_context(|| format!("PullImage {image}"))?;
        Ok(())
    }

    /// `<data-dir>/agent/wasm-cache`: the compile cache of every pod.
    pub fn cache_dir(&self) -> PathBuf {
        self.runtime.data_dir().join("agent/wasm-cache")
    }

    /// Compiled files in the cache.
    pub fn cached_files(&self) -> Vec<PathBuf> {
        std::fs::read_dir(self.cache_dir())
            .map(|entries| {
                entries
                    .filter_map(|e| e.ok())
                    .map(|e| e.path())
                    .filter(|p| p.extension().is_some_and(|x| x == "cwasm"))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Empties the compile cache; returns how many files it removed.
    pub fn clear_cache(&self) -> anyhow::Result<usize> {
        let Ok(entries) = std::fs::read_dir(self.cache_dir()) else {
            return Ok(0);
        };
        let mut removed = 0;
        for entry in entries {
            let path = entry?.path();
            std::fs::remove_file(&path).with_context(|| format!("removing {}", path.display()))?;
            removed += 1;
        }
        Ok(removed)
    }

    /// The runtime's last `lines` log lines, for error messages.
    pub fn log_tail(&self, lines: usize) -> String {
        let text = self.runtime.log_text();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    /// The last `lines` lines of pod `pod_id`'s shim log.
    pub fn shim_log_tail(&self, pod_id: &str, lines: usize) -> String {
        let path = self
            .runtime
            .run_dir()
            .join("pods")
            .join(pod_id)
            .join("shim.log");
        let text = std::fs::read_to_string(path).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    /// The shims of this node's pods and their children (the guests): shims
    /// are `skiff shim` processes naming the node's directory; a forked
    /// guest keeps its shim's command line, and is told apart by its parent.
    pub fn pod_processes(&self) -> PodProcesses {
        let node = self.node_dir.display().to_string();
        let all = cleanup::processes();
        let ours: Vec<&cleanup::Process> = all
            .iter()
            .filter(|p| p.argv.get(1).is_some_and(|a| a == "shim"))
            .filter(|p| p.command_line().contains(&node))
            .collect();
        let shims: Vec<u32> = ours
            .iter()
            .filter(|p| !ours.iter().any(|parent| parent.pid == p.ppid))
            .map(|p| p.pid)
            .collect();
        // Whatever a guest did to its command line, it is a shim's child.
        let guests = all
            .iter()
            .filter(|p| shims.contains(&p.ppid))
            .map(|p| p.pid)
            .collect();
        PodProcesses { shims, guests }
    }

    /// Removes every pod through CRI; returns how many there were.
    pub async fn remove_all_pods(&self) -> anyhow::Result<usize> {
        let pods = tokio::time::timeout(
            CLEANUP_TIMEOUT,
            self.cri
                .runtime
                .clone()
                .list_pod_sandbox(cri::ListPodSandboxRequest::default()),
        )
        .await
        .context("ListPodSandbox timed out")?
        .context("ListPodSandbox")?
        .into_inner()
        .items;
        for pod in &pods {
            remove_pod(&self.cri, &pod.id).await?;
        }
        Ok(pods.len())
    }

    /// Removes every pod, then stops the runtime and cleans its node.
    pub async fn shutdown(self) {
        if let Err(err) = self.remove_all_pods().await {
            println!("cleanup: removing pods: {err:#}");
        }
        if let Err(err) = self.runtime.stop() {
            println!("cleanup: skiff runtime: {err}");
        }
        skiff_tests::clean_node(&self.node_dir);
        drop(self.lease);
    }
}

/// A pod named `name` (its own PID namespace, cgroups under the
/// benchmark's cgroup root), logs under `logs/<name>`.
pub fn pod_config(logs: &Path, name: &str) -> cri::PodSandboxConfig {
    cri::PodSandboxConfig {
        metadata: Some(cri::PodSandboxMetadata {
            name: name.into(),
            uid: format!("uid-wasm-{name}"),
            namespace: "bench".into(),
            attempt: 0,
        }),
        hostname: name.into(),
        log_directory: logs.join(name).display().to_string(),
        labels: HashMap::from([("app".into(), name.into())]),
        linux: Some(cri::LinuxPodSandboxConfig {
            cgroup_parent: format!("/{CGROUP_ROOT}/{name}"),
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

/// A container `name` of `image`, with the image's own entrypoint, logging
/// to `<name>.log` in its pod's log directory.
pub fn container_config(name: &str, image: &str) -> cri::ContainerConfig {
    cri::ContainerConfig {
        metadata: Some(cri::ContainerMetadata {
            name: name.into(),
            attempt: 0,
        }),
        image: Some(cri::ImageSpec {
            image: image.into(),
            ..Default::default()
        }),
        log_path: format!("{name}.log"),
        linux: Some(cri::LinuxContainerConfig::default()),
        ..Default::default()
    }
}

/// The log file of container `name` in a pod of `config`.
pub fn log_file(config: &cri::PodSandboxConfig, name: &str) -> PathBuf {
    Path::new(&config.log_directory).join(format!("{name}.log"))
}

/// RunPodSandbox with the `wasmtime` handler; returns the pod's ID.
pub async fn run_pod(cri: &Cri, config: &cri::PodSandboxConfig) -> anyhow::Result<String> {
    std::fs::create_dir_all(&config.log_directory)?;
    let name = config.metadata.as_ref().map_or("", |m| m.name.as_str());
    Ok(cri
        .runtime
        .clone()
        .run_pod_sandbox(cri::RunPodSandboxRequest {
            config: Some(config.clone()),
            runtime_handler: HANDLER.into(),
        })
        .await
        .with_context(|| format!("RunPodSandbox {name}"))?
        .into_inner()
        .pod_sandbox_id)
}

/// ContainerStatus.
pub async fn container_status(cri: &Cri, id: &str) -> anyhow::Result<cri::ContainerStatus> {
    cri.runtime
        .clone()
        .container_status(cri::ContainerStatusRequest {
            container_id: id.into(),
            verbose: false,
        })
        .await
        .with_context(|| format!("ContainerStatus {id}"))?
        .into_inner()
        .status
        .with_context(|| format!("ContainerStatus {id}: no status"))
}

/// Waits until container `id` has exited; returns its status.
pub async fn wait_exited(
    cri: &Cri,
    id: &str,
    timeout: Duration,
) -> anyhow::Result<cri::ContainerStatus> {
    let deadline = Instant::now() + timeout;
    loop {
        let status = container_status(cri, id).await?;
        if status.state == cri::ContainerState::ContainerExited as i32 {
            return Ok(status);
        }
        if Instant::now() > deadline {
            bail!("container {id} not exited after {timeout:?}: {status:?}");
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}
