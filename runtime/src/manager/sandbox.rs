//! Pod sandbox verbs: RunPodSandbox, StopPodSandbox, RemovePodSandbox,
//! PodSandboxStatus and ListPodSandbox, with containerd's semantics.

use std::collections::HashMap;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

use k8s_cri::v1 as cri;
use skiff_shims::{PodNamespace, ShimArgs};

use super::{DEFAULT_HANDLERS, Runtime, ShimHandle, WASM_HANDLER, now_ns};
use crate::error::RuntimeError;
use crate::ids::new_id;
use crate::network::{PodAttachment, PortMapping, Protocol};
use crate::pod_files;
use crate::records::{PodNamespaces, SandboxRecord, SandboxState, host_network, sandbox_name};

/// Size of a pod's `/dev/shm` (Docker's and containerd's default).
const SHM_SIZE: &str = "size=65536k";

impl Runtime {
    /// RunPodSandbox: pins the pod's namespaces (no pause process), writes
    /// its hostname/hosts/resolv.conf, attaches it to the pod network and
    /// starts its shim. Nothing is left behind when a step fails.
    pub async fn run_pod_sandbox(
        &self,
        config: cri::PodSandboxConfig,
        runtime_handler: &str,
    ) -> Result<String, RuntimeError> {
        check_handler(runtime_handler)?;
        let metadata = config
            .metadata
            .as_ref()
            .filter(|m| !m.name.is_empty() && !m.namespace.is_empty() && !m.uid.is_empty())
            .ok_or_else(|| {
                RuntimeError::InvalidArgument(
                    "pod sandbox config: metadata name, namespace and uid are required".into(),
                )
            })?;
        let name = sandbox_name(Some(metadata));
        let id = new_id();
        {
            let mut state = self.state();
            if let Some(existing) = state.sandbox_names.get(&name) {
                return Err(RuntimeError::AlreadyExists(format!(
                    "pod sandbox name {name:?} is reserved for {existing}"
                )));
            }
            state.sandbox_names.insert(name.clone(), id.clone());
        }
        let _guard = self.lock(&id).await;
        let mut undo = Undo::default();
        match self
            .create_sandbox(&id, config, runtime_handler, &mut undo)
            .await
        {
            Ok(()) => {
                tracing::info!(sandbox = %id, pod = %name, "pod sandbox ready");
                Ok(id)
            }
            Err(err) => {
                tracing::warn!(sandbox = %id, pod = %name, error = %err, "RunPodSandbox failed; cleaning up");
                self.undo(&id, undo).await;
                self.state().sandbox_names.remove(&name);
                Err(err)
            }
        }
    }

    async fn create_sandbox(
        &self,
        id: &str,
        config: cri::PodSandboxConfig,
        runtime_handler: &str,
        undo: &mut Undo,
    ) -> Result<(), RuntimeError> {
        let pod_dir = self.pod_dir(id);
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o711)
            .create(pod_dir.join("containers"))
            .map_err(RuntimeError::io("create directory", &pod_dir))?;
        undo.pod_dir = Some(pod_dir.clone());

        let host_net = host_network(&config);
        let options = namespace_options(&config);
        let host_ipc = options.ipc == cri::NamespaceMode::Node as i32;
        let pod_pid = options.pid == cri::NamespaceMode::Pod as i32;
        let hostname = if host_net {
            nix::unistd::gethostname()
                .map(|h| h.to_string_lossy().into_owned())
                .unwrap_or_default()
        } else {
            config.hostname.clone()
        };

        pod_files::write_hostname(&pod_dir.join("hostname"), &hostname)
            .map_err(RuntimeError::io("write", pod_dir.join("hostname")))?;
        pod_files::write_hosts(&pod_dir.join("hosts"), host_net, &hostname, None)
            .map_err(RuntimeError::io("write", pod_dir.join("hosts")))?;
        pod_files::write_resolv_conf(&pod_dir.join("resolv.conf"), config.dns_config.as_ref())
            .map_err(RuntimeError::io("write", pod_dir.join("resolv.conf")))?;
        if !host_ipc {
            mount_shm(&pod_dir.join("shm"))?;
            undo.shm = Some(pod_dir.join("shm"));
        }

        let mut namespaces = Vec::new();
        if !host_net {
            namespaces.extend([PodNamespace::Net, PodNamespace::Uts]);
        }
        if !host_ipc {
            namespaces.push(PodNamespace::Ipc);
        }
        if pod_pid {
            namespaces.push(PodNamespace::Pid);
        }
        let cgroup_parent = cgroup_parent(&config, id);
        let mut args = ShimArgs::new(&pod_dir, id);
        args.namespaces = namespaces.clone();
        args.hostname = (!host_net).then(|| hostname.clone());
        args.cgroup_parent = Some(PathBuf::from(&cgroup_parent));
        let client = skiff_shims::spawn_shim(&self.inner.config.shim_binary, &args).await?;
        undo.shim = true;
        let pin = |ns: PodNamespace| {
            namespaces
                .contains(&ns)
                .then(|| pod_dir.join("ns").join(ns.name()))
        };
        let pins = PodNamespaces {
            net: pin(PodNamespace::Net),
            ipc: pin(PodNamespace::Ipc),
            uts: pin(PodNamespace::Uts),
            pid: pin(PodNamespace::Pid),
        };

        let mut record = SandboxRecord {
            id: id.to_string(),
            config,
            runtime_handler: runtime_handler.to_string(),
            state: SandboxState::Ready,
            created_at: now_ns(),
            ip: None,
            pod_dir: pod_dir.clone(),
            namespaces: pins,
            cgroup_parent,
        };
        if let Some(netns) = &record.namespaces.net {
            let attachment = attachment(&record, netns);
            let network = self.inner.config.network.clone();
            undo.network = Some(attachment.clone());
            let addresses = tokio::task::spawn_blocking(move || network.setup(&attachment))
                .await
                .map_err(|e| RuntimeError::Internal(e.to_string()))??;
            record.ip = Some(addresses.ip.to_string());
            pod_files::write_hosts(
                &pod_dir.join("hosts"),
                false,
                &hostname,
                record.ip.as_deref(),
            )
            .map_err(RuntimeError::io("write", pod_dir.join("hosts")))?;
        }
        self.save_sandbox(record)?;
        self.watch_shim(id, client);
        Ok(())
    }

    /// StopPodSandbox: kills the pod's containers, detaches it from the
    /// network and marks it not ready. Idempotent: a sandbox already removed
    /// has nothing left to reclaim (CRI), so that is success too.
    pub async fn stop_pod_sandbox(&self, id: &str) -> Result<(), RuntimeError> {
        let id = match self.resolve_sandbox(id) {
            Ok(id) => id,
            Err(RuntimeError::NotFound { .. }) => return Ok(()),
            Err(err) => return Err(err),
        };
        for container in self.containers_of(&id) {
            self.stop_container(&container.id, 0).await?;
        }
        let _guard = self.lock(&id).await;
        let mut record = self.sandbox(&id)?;
        if let Some(netns) = &record.namespaces.net {
            let attachment = attachment(&record, netns);
            let network = self.inner.config.network.clone();
            tokio::task::spawn_blocking(move || network.teardown(&attachment))
                .await
                .map_err(|e| RuntimeError::Internal(e.to_string()))??;
        }
        if record.state != SandboxState::NotReady {
            record.state = SandboxState::NotReady;
            self.save_sandbox(record)?;
            tracing::info!(sandbox = %id, "pod sandbox stopped");
        }
        Ok(())
    }

    /// RemovePodSandbox: stops and removes its containers, stops its shim,
    /// unpins its namespaces and deletes its files. Idempotent.
    pub async fn remove_pod_sandbox(&self, id: &str) -> Result<(), RuntimeError> {
        let id = match self.resolve_sandbox(id) {
            Ok(id) => id,
            Err(RuntimeError::NotFound { .. }) => return Ok(()),
            Err(err) => return Err(err),
        };
        self.stop_pod_sandbox(&id).await?;
        for container in self.containers_of(&id) {
            self.remove_container(&container.id).await?;
        }
        let _guard = self.lock(&id).await;
        let record = self.sandbox(&id)?;
        let undo = Undo {
            pod_dir: Some(record.pod_dir.clone()),
            shm: Some(record.pod_dir.join("shm")),
            shim: true,
            network: None,
        };
        self.undo(&id, undo).await;
        self.inner.sandbox_store.delete(&id)?;
        {
            let mut state = self.state();
            state.sandboxes.remove(&id);
            state.sandbox_names.remove(&record.name());
        }
        if record.cgroup_parent.ends_with(&id) {
            let _ = crate::cgroups::remove(&record.cgroup_parent);
        }
        drop(_guard);
        self.forget_lock(&id);
        tracing::info!(sandbox = %id, "pod sandbox removed");
        Ok(())
    }

    /// PodSandboxStatus, with its containers' statuses and, when `verbose`,
    /// the `info` map containerd fills.
    pub fn pod_sandbox_status(
        &self,
        id: &str,
        verbose: bool,
    ) -> Result<cri::PodSandboxStatusResponse, RuntimeError> {
        let id = self.resolve_sandbox(id)?;
        let record = self.sandbox(&id)?;
        let mut info = HashMap::new();
        if verbose {
            let shim_pid = std::fs::read_to_string(record.pod_dir.join("shim.pid")).ok();
            let detail = serde_json::json!({
                "runtimeHandler": record.runtime_handler,
                "netNamespacePath": record.namespaces.net,
                "namespaces": record.namespaces,
                "cgroupParent": record.cgroup_parent,
                "podDir": record.pod_dir,
                "shimPid": shim_pid.and_then(|p| p.trim().parse::<u32>().ok()),
                "config": record.config,
            });
            info.insert("info".to_string(), detail.to_string());
        }
        Ok(cri::PodSandboxStatusResponse {
            status: Some(record.status()),
            info,
            containers_statuses: self.containers_of(&id).iter().map(|c| c.status()).collect(),
            timestamp: now_ns(),
        })
    }

    /// ListPodSandbox.
    pub fn list_pod_sandboxes(
        &self,
        filter: Option<&cri::PodSandboxFilter>,
    ) -> Vec<cri::PodSandbox> {
        let state = self.state();
        state
            .sandboxes
            .values()
            .filter(|s| filter.is_none_or(|f| s.matches(f)))
            .map(SandboxRecord::to_cri)
            .collect()
    }

    /// Starts pumping events of a pod's shim.
    pub(super) fn watch_shim(&self, sandbox_id: &str, client: skiff_shims::ShimClient) {
        let stop = self.inner.shutdown.child_token();
        self.inner
            .shims
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(
                sandbox_id.to_string(),
                ShimHandle {
                    client: client.clone(),
                    stop: stop.clone(),
                },
            );
        tokio::spawn(
            self.clone()
                .pump_events(sandbox_id.to_string(), client, stop),
        );
    }

    /// Tears down what a failed or removed sandbox left, best effort.
    async fn undo(&self, id: &str, undo: Undo) {
        if let Some(attachment) = undo.network {
            let network = self.inner.config.network.clone();
            let result = tokio::task::spawn_blocking(move || network.teardown(&attachment)).await;
            if let Ok(Err(err)) = result {
                tracing::warn!(sandbox = %id, error = %err, "network teardown failed");
            }
        }
        if undo.shim {
            let handle = self
                .inner
                .shims
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(id);
            if let Some(handle) = &handle {
                handle.stop.cancel();
            }
            let client = handle
                .map(|h| h.client)
                .unwrap_or_else(|| skiff_shims::ShimClient::new(self.pod_dir(id)));
            if let Err(err) = client.shutdown().await
                && !err.is_unreachable()
            {
                tracing::warn!(sandbox = %id, error = %err, "shim shutdown failed");
            }
            // A shim that died leaves the pod's PID 1 behind (and a hung one
            // itself): nothing of the pod may outlive its removal.
            let killed = kill_processes_of(&self.pod_dir(id));
            if killed > 0 {
                tracing::warn!(sandbox = %id, processes = killed, "killed leftover pod processes");
            }
        }
        if let Some(pod_dir) = &undo.pod_dir
            && let Err(err) = skiff_shims::unpin_namespaces(pod_dir)
        {
            tracing::warn!(sandbox = %id, error = %err, "unpinning namespaces failed");
        }
        if let Some(shm) = &undo.shm {
            let _ = nix::mount::umount2(shm, nix::mount::MntFlags::MNT_DETACH);
        }
        if let Some(pod_dir) = &undo.pod_dir
            && let Err(err) = std::fs::remove_dir_all(pod_dir)
            && err.kind() != std::io::ErrorKind::NotFound
        {
            tracing::warn!(sandbox = %id, dir = %pod_dir.display(), error = %err, "removing pod directory failed");
        }
    }
}

/// What to tear down if sandbox creation fails midway (or on removal).
#[derive(Debug, Default)]
struct Undo {
    pod_dir: Option<PathBuf>,
    shm: Option<PathBuf>,
    shim: bool,
    network: Option<PodAttachment>,
}

fn check_handler(handler: &str) -> Result<(), RuntimeError> {
    if DEFAULT_HANDLERS.contains(&handler) || handler == WASM_HANDLER {
        return Ok(());
    }
    Err(RuntimeError::InvalidArgument(format!(
        "no runtime for {handler:?} is configured"
    )))
}

fn namespace_options(config: &cri::PodSandboxConfig) -> cri::NamespaceOption {
    config
        .linux
        .as_ref()
        .and_then(|l| l.security_context.as_ref())
        .and_then(|s| s.namespace_options.clone())
        .unwrap_or_default()
}

/// The pod's cgroup parent: the CRI config's, or `/skiff/<sandbox-id>` when
/// the caller (crictl without a config) gives none.
fn cgroup_parent(config: &cri::PodSandboxConfig, id: &str) -> String {
    let parent = config
        .linux
        .as_ref()
        .map(|l| l.cgroup_parent.as_str())
        .unwrap_or_default();
    if parent.is_empty() {
        format!("/skiff/{id}")
    } else {
        crate::cgroups::parent_path(parent)
    }
}

fn attachment(record: &SandboxRecord, netns: &Path) -> PodAttachment {
    let metadata = record.config.metadata.clone().unwrap_or_default();
    PodAttachment {
        sandbox_id: record.id.clone(),
        netns: netns.to_path_buf(),
        name: metadata.name,
        namespace: metadata.namespace,
        port_mappings: record
            .config
            .port_mappings
            .iter()
            .map(|p| PortMapping {
                protocol: match cri::Protocol::try_from(p.protocol) {
                    Ok(cri::Protocol::Udp) => Protocol::Udp,
                    Ok(cri::Protocol::Sctp) => Protocol::Sctp,
                    _ => Protocol::Tcp,
                },
                container_port: p.container_port as u16,
                host_port: p.host_port as u16,
                host_ip: p.host_ip.parse().ok(),
            })
            .collect(),
    }
}

/// Kills the processes started for the pod at `pod_dir` (its shim and the
/// pod's PID 1 name the pod directory on their command line).
fn kill_processes_of(pod_dir: &Path) -> usize {
    let needle = pod_dir.display().to_string();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return 0;
    };
    let mut killed = 0;
    for entry in entries.filter_map(|e| e.ok()) {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        if cmdline.contains(" shim ")
            && cmdline.contains(&needle)
            && pid != std::process::id() as i32
        {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
            killed += 1;
        }
    }
    killed
}

fn mount_shm(path: &Path) -> Result<(), RuntimeError> {
    use nix::mount::{MsFlags, mount};
    std::fs::create_dir_all(path).map_err(RuntimeError::io("create directory", path))?;
    mount(
        Some("shm"),
        path,
        Some("tmpfs"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
        Some(format!("mode=1777,{SHM_SIZE}").as_str()),
    )
    .map_err(|e| RuntimeError::io("mount /dev/shm tmpfs on", path)(e.into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handlers_are_checked_as_containerd_does() {
        assert!(check_handler("").is_ok());
        assert!(check_handler("runc").is_ok());
        assert!(check_handler("wasmtime").is_ok());
        let err = check_handler("kata").unwrap_err();
        assert_eq!(err.to_string(), "no runtime for \"kata\" is configured");
        assert!(matches!(
            check_handler("wasmer"),
            Err(RuntimeError::InvalidArgument(_))
        ));
    }

    #[test]
    fn cgroup_parent_defaults_per_sandbox() {
        let config = cri::PodSandboxConfig::default();
        assert_eq!(cgroup_parent(&config, "abc"), "/skiff/abc");
        let config = cri::PodSandboxConfig {
            linux: Some(cri::LinuxPodSandboxConfig {
                cgroup_parent: "kubepods/pod1".into(),
                ..Default::default()
            }),
            ..Default::default()
        };
        assert_eq!(cgroup_parent(&config, "abc"), "/kubepods/pod1");
    }
}
