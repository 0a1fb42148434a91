//! Container verbs: CreateContainer, StartContainer, StopContainer,
//! RemoveContainer, ContainerStatus, ListContainers,
//! UpdateContainerResources and ReopenContainerLog.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use k8s_cri::v1 as cri;
use skiff_shims::client::CreateOptions;

use super::{Runtime, now_ns};
use crate::error::RuntimeError;
use crate::ids::new_id;
use crate::records::{
    ContainerEngine, ContainerRecord, ContainerState, SandboxState, container_name,
};
use crate::spec::{self, HostLimits, SandboxContext, SpecInput};
use crate::wasm::{self, WasmBundle};

/// How long a container may take to die after SIGKILL before StopContainer gives up.
const KILL_GRACE: Duration = Duration::from_secs(30);

impl Runtime {
    /// CreateContainer: mounts the image's rootfs, writes the OCI bundle and
    /// has the pod's shim create (not start) the container.
    pub async fn create_container(
        &self,
        sandbox_id: &str,
        config: cri::ContainerConfig,
    ) -> Result<String, RuntimeError> {
        let sandbox_id = self.resolve_sandbox(sandbox_id)?;
        let sandbox = self.sandbox(&sandbox_id)?;
        if sandbox.state != SandboxState::Ready {
            return Err(RuntimeError::FailedPrecondition(format!(
                "pod sandbox {sandbox_id} is not ready: containers cannot be created in a stopped sandbox"
            )));
        }
        let metadata = config
            .metadata
            .as_ref()
            .filter(|m| !m.name.is_empty())
            .ok_or_else(|| {
                RuntimeError::InvalidArgument("container config: metadata.name is required".into())
            })?;
        let image_name = config
            .image
            .as_ref()
            .map(|i| i.image.clone())
            .unwrap_or_default();
        if image_name.is_empty() {
            return Err(RuntimeError::InvalidArgument(
                "container config: image.image is required".into(),
            ));
        }
        let image = self
            .inner
            .images
            .get(&image_name)
            .ok_or_else(|| RuntimeError::NotFound {
                what: "image",
                id: image_name.clone(),
            })?;
        let name = container_name(Some(metadata), sandbox.config.metadata.as_ref());
        let id = new_id();
        {
            let mut state = self.state();
            if let Some(existing) = state.container_names.get(&name) {
                return Err(RuntimeError::AlreadyExists(format!(
                    "container name {name:?} is reserved for {existing}"
                )));
            }
            state.container_names.insert(name.clone(), id.clone());
        }
        let _guard = self.lock(&id).await;
        let bundle = self.bundle_dir(&sandbox_id, &id);
        let log_path = (!sandbox.config.log_directory.is_empty() && !config.log_path.is_empty())
            .then(|| Path::new(&sandbox.config.log_directory).join(&config.log_path));
        let record = ContainerRecord {
            id: id.clone(),
            sandbox_id: sandbox_id.clone(),
            config,
            image_name: image_name.clone(),
            image_id: image.id.to_string(),
            image_ref: image
                .names
                .iter()
                .find(|n| n.contains('@'))
                .cloned()
                .unwrap_or_default(),
            state: ContainerState::Created,
            created_at: now_ns(),
            started_at: 0,
            finished_at: 0,
            exit_code: 0,
            reason: String::new(),
            message: String::new(),
            log_path,
            pid: None,
            cgroup_path: String::new(),
            bundle: bundle.clone(),
            engine: ContainerEngine::Oci,
        };
        match self.create_in_shim(&sandbox, record).await {
            Ok(record) => {
                tracing::info!(container = %id, sandbox = %sandbox_id, name = %name, image = %image_name, "container created");
                self.emit(&record, cri::ContainerEventType::ContainerCreatedEvent);
                Ok(id)
            }
            Err(err) => {
                tracing::warn!(container = %id, error = %err, "CreateContainer failed; cleaning up");
                self.discard_container_files(&id, &bundle).await;
                self.state().container_names.remove(&name);
                Err(err)
            }
        }
    }

    async fn create_in_shim(
        &self,
        sandbox: &crate::records::SandboxRecord,
        mut record: ContainerRecord,
    ) -> Result<ContainerRecord, RuntimeError> {
        let images = &self.inner.images;
        let rootfs_dir = record.bundle.join("rootfs");
        std::fs::create_dir_all(&rootfs_dir)
            .map_err(RuntimeError::io("create directory", &rootfs_dir))?;
        let rootfs = images.prepare_rootfs(&record.id, &record.image_id).await?;
        images.mount_rootfs(&rootfs, &rootfs_dir)?;
        let image_id: skiff_images::digest::Digest = record
            .image_id
            .parse()
            .map_err(|e| RuntimeError::Internal(format!("image ID {}: {e}", record.image_id)))?;
        let image_config = images.image_config(&image_id)?;
        let layers = images
            .get(&record.image_id)
            .map(|image| image.layers)
            .unwrap_or_default();
        let argv = spec::merged_command(&record.config, &image_config);
        let wasm_entry = wasm::detect(&record.image_name, &image_config, &layers, &argv)?;

        let pod_dir = &sandbox.pod_dir;
        let ctx = SandboxContext {
            sandbox_id: sandbox.id.clone(),
            hostname: std::fs::read_to_string(pod_dir.join("hostname"))
                .map(|h| h.trim().to_string())
                .unwrap_or_default(),
            netns: sandbox.namespaces.net.clone(),
            ipcns: sandbox.namespaces.ipc.clone(),
            utsns: sandbox.namespaces.uts.clone(),
            pidns: sandbox.namespaces.pid.clone(),
            hostname_file: Some(pod_dir.join("hostname")),
            hosts_file: Some(pod_dir.join("hosts")),
            resolv_conf: Some(pod_dir.join("resolv.conf")),
            shm: sandbox.namespaces.ipc.as_ref().map(|_| pod_dir.join("shm")),
            cgroup_parent: sandbox.cgroup_parent.clone(),
        };
        let target_pidns = self.target_pid_namespace(&record.config)?;
        let limits = HostLimits::current();
        let seccomp_root = self.inner.config.seccomp_profile_root.clone();
        let mut spec = spec::container_spec(&SpecInput {
            container_id: &record.id,
            config: &record.config,
            sandbox: &sandbox.config,
            ctx: &ctx,
            image: &image_config,
            image_name: &record.image_name,
            rootfs: &rootfs_dir,
            target_pidns: target_pidns.as_deref(),
            seccomp_profile_root: &seccomp_root,
            limits: &limits,
            args: wasm_entry.as_ref().map(|w| w.args.as_slice()),
        })?;
        if let Some(entry) = &wasm_entry {
            let cache_dir = self.inner.config.wasm_cache_dir();
            wasm::ensure_cache_dir(&cache_dir)?;
            let bundle = WasmBundle {
                image_id: &record.image_id,
                cache_dir: &cache_dir,
                port: wasm::http_port(&record.config, &sandbox.config),
            };
            wasm::annotate(&mut spec, entry, &bundle);
            record.engine = ContainerEngine::Wasm;
            tracing::info!(
                container = %record.id,
                image = %record.image_name,
                module = %entry.module,
                reason = ?entry.reason,
                "container runs as Wasm"
            );
        }
        record.cgroup_path = spec
            .linux()
            .as_ref()
            .and_then(|l| l.cgroups_path().clone())
            .map(|p| p.display().to_string())
            .unwrap_or_default();
        let config_json = record.bundle.join("config.json");
        let bytes = serde_json::to_vec(&spec)
            .map_err(|e| RuntimeError::Internal(format!("OCI spec: {e}")))?;
        std::fs::write(&config_json, bytes).map_err(RuntimeError::io("write", &config_json))?;

        if let Some(parent) = record.log_path.as_ref().and_then(|p| p.parent()) {
            std::fs::create_dir_all(parent)
                .map_err(RuntimeError::io("create log directory", parent))?;
        }
        let options = CreateOptions {
            log_path: record.log_path.clone(),
            stdin: record.config.stdin,
            stdin_once: record.config.stdin_once,
            tty: record.config.tty,
        };
        let pid = self
            .shim(&sandbox.id)?
            .create(&record.id, &record.bundle, &options)
            .await?;
        record.pid = Some(pid as u32);
        self.save_container(record.clone())?;
        Ok(record)
    }

    /// For PID namespace mode TARGET: the target container's PID namespace.
    fn target_pid_namespace(
        &self,
        config: &cri::ContainerConfig,
    ) -> Result<Option<PathBuf>, RuntimeError> {
        let options = config
            .linux
            .as_ref()
            .and_then(|l| l.security_context.as_ref())
            .and_then(|s| s.namespace_options.as_ref());
        let Some(options) = options.filter(|o| o.pid == cri::NamespaceMode::Target as i32) else {
            return Ok(None);
        };
        let target = self.resolve_container(&options.target_id)?;
        let record = self.container(&target)?;
        match (record.state, record.pid) {
            (ContainerState::Running | ContainerState::Created, Some(pid)) => {
                Ok(Some(PathBuf::from(format!("/proc/{pid}/ns/pid"))))
            }
            _ => Err(RuntimeError::FailedPrecondition(format!(
                "target container {target} of the PID namespace is not running"
            ))),
        }
    }

    /// StartContainer.
    pub async fn start_container(&self, id: &str) -> Result<(), RuntimeError> {
        let id = self.resolve_container(id)?;
        let _guard = self.lock(&id).await;
        let record = self.container(&id)?;
        if record.state != ContainerState::Created {
            return Err(RuntimeError::FailedPrecondition(format!(
                "container {id} is {:?}, not created: it cannot be started",
                record.state
            )));
        }
        match self.shim(&record.sandbox_id)?.start(&id).await {
            Ok((pid, started_at)) => {
                // The exit may already be recorded (a process that ends at
                // once): then it stays Exited and its events were sent.
                let mut first = false;
                let _order = self.event_order();
                let record = self.update_container_unsynced(&id, |r| {
                    r.pid = Some(pid as u32);
                    r.started_at = started_at;
                    if r.state == ContainerState::Created {
                        r.state = ContainerState::Running;
                        first = true;
                    }
                })?;
                tracing::info!(container = %id, pid, "container started");
                if first {
                    self.emit(&record, cri::ContainerEventType::ContainerStartedEvent);
                }
                Ok(())
            }
            Err(err) => {
                let message = err.to_string();
                let record = self.update_container(&id, |r| {
                    r.state = ContainerState::Exited;
                    r.exit_code = 128;
                    r.reason = "StartError".into();
                    r.message = message.clone();
                    r.finished_at = now_ns();
                    r.pid = None;
                })?;
                self.emit(&record, cri::ContainerEventType::ContainerStoppedEvent);
                Err(err.into())
            }
        }
    }

    /// StopContainer: the image's stop signal (default SIGTERM), then
    /// SIGKILL after `timeout` seconds (0: SIGKILL at once). Returns once the
    /// container exited. A container that is not running is left alone.
    pub async fn stop_container(&self, id: &str, timeout: i64) -> Result<(), RuntimeError> {
        let id = self.resolve_container(id)?;
        let _guard = self.lock(&id).await;
        let record = self.container(&id)?;
        if !matches!(
            record.state,
            ContainerState::Running | ContainerState::Created
        ) {
            return Ok(());
        }
        let shim = match self.shim(&record.sandbox_id) {
            Ok(shim) => shim,
            Err(_) => return Ok(()),
        };
        if timeout > 0 {
            let signal = self.stop_signal(&record);
            tracing::info!(container = %id, signal, timeout, "stopping container");
            shim.signal(&id, signal).await?;
            if self
                .wait_exited(&id, Duration::from_secs(timeout as u64))
                .await
            {
                return Ok(());
            }
        }
        tracing::info!(container = %id, "killing container");
        shim.signal(&id, libc::SIGKILL).await?;
        if self.wait_exited(&id, KILL_GRACE).await {
            return Ok(());
        }
        Err(RuntimeError::DeadlineExceeded(format!(
            "container {id} did not exit within {KILL_GRACE:?} of SIGKILL"
        )))
    }

    /// The signal that asks the container to stop: the image's `StopSignal`.
    fn stop_signal(&self, record: &ContainerRecord) -> i32 {
        let configured = record
            .image_id
            .parse()
            .ok()
            .and_then(|id| self.inner.images.image_config(&id).ok())
            .and_then(|c| c.config().as_ref().and_then(|c| c.stop_signal().clone()));
        configured
            .as_deref()
            .and_then(parse_signal)
            .unwrap_or(libc::SIGTERM)
    }

    /// Waits until container `id` is recorded as exited, at most `timeout`;
    /// also asks the shim directly in case an event was missed.
    async fn wait_exited(&self, id: &str, timeout: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let notified = self.inner.exits.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            match self.container(id) {
                Ok(r)
                    if r.state == ContainerState::Running || r.state == ContainerState::Created => {
                }
                _ => return true,
            }
            let poll = tokio::time::Instant::now() + Duration::from_millis(500);
            tokio::select! {
                () = &mut notified => {}
                () = tokio::time::sleep_until(poll.min(deadline)) => {
                    self.refresh_from_shim(id).await;
                }
            }
            if tokio::time::Instant::now() >= deadline {
                return !matches!(
                    self.container(id).map(|r| r.state),
                    Ok(ContainerState::Running | ContainerState::Created)
                );
            }
        }
    }

    /// Waits until container `id` exits; returns its exit code (255 when it
    /// was removed meanwhile).
    pub async fn wait_container(&self, id: &str) -> Result<i32, RuntimeError> {
        let id = self.resolve_container(id)?;
        while !self.wait_exited(&id, Duration::from_secs(3600)).await {}
        Ok(self.container(&id).map(|r| r.exit_code).unwrap_or(255))
    }

    /// RemoveContainer: kills it if needed and deletes everything it had.
    /// Idempotent: an unknown container is already removed.
    pub async fn remove_container(&self, id: &str) -> Result<(), RuntimeError> {
        let id = match self.resolve_container(id) {
            Ok(id) => id,
            Err(RuntimeError::NotFound { .. }) => return Ok(()),
            Err(err) => return Err(err),
        };
        self.stop_container(&id, 0).await?;
        let _guard = self.lock(&id).await;
        let record = self.container(&id)?;
        if let Ok(shim) = self.shim(&record.sandbox_id)
            && let Err(err) = shim.delete(&id).await
            && !matches!(err.kind(), skiff_shims::protocol::ErrorKind::NotFound)
            && !err.is_unreachable()
        {
            return Err(err.into());
        }
        if self.shim(&record.sandbox_id).is_err() && !record.cgroup_path.is_empty() {
            // No shim to stop and delete it: whatever still runs in its
            // cgroup goes, then the cgroup (once its processes are reaped).
            let _ = crate::cgroups::kill_all(&record.cgroup_path);
            let mut last = None;
            for _ in 0..50 {
                match crate::cgroups::remove(&record.cgroup_path) {
                    Ok(()) => {
                        last = None;
                        break;
                    }
                    Err(err) => last = Some(err),
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            if let Some(err) = last {
                tracing::warn!(container = %id, error = %err, "cannot remove the cgroup of a container whose shim is gone");
            }
        }
        self.discard_container_files(&id, &record.bundle).await;
        self.inner.container_store.delete(&id)?;
        let name = container_name(
            record.config.metadata.as_ref(),
            self.sandbox(&record.sandbox_id)
                .ok()
                .and_then(|s| s.config.metadata)
                .as_ref(),
        );
        {
            let mut state = self.state();
            state.containers.remove(&id);
            if state.container_names.get(&name) == Some(&id) {
                state.container_names.remove(&name);
            }
        }
        self.inner.cgroups.forget(&record.cgroup_path);
        drop(_guard);
        self.forget_lock(&id);
        tracing::info!(container = %id, "container removed");
        self.emit(&record, cri::ContainerEventType::ContainerDeletedEvent);
        Ok(())
    }

    /// Unmounts and removes a container's rootfs and bundle, best effort.
    async fn discard_container_files(&self, id: &str, bundle: &Path) {
        let images = &self.inner.images;
        let rootfs = bundle.join("rootfs");
        if let Err(err) = images.unmount_rootfs(&rootfs) {
            tracing::warn!(container = %id, error = %err, "unmounting rootfs failed");
        }
        match images.remove_rootfs(id).await {
            Ok(())
            | Err(skiff_images::ImageError::Snapshot(
                skiff_images::snapshots::SnapshotError::NotFound(_),
            )) => {}
            Err(err) => {
                tracing::warn!(container = %id, error = %err, "removing the container layer failed")
            }
        }
        if let Err(err) = std::fs::remove_dir_all(bundle)
            && err.kind() != std::io::ErrorKind::NotFound
        {
            tracing::warn!(container = %id, error = %err, "removing the bundle failed");
        }
    }

    /// ContainerStatus, with containerd's verbose `info` when asked.
    pub fn container_status(
        &self,
        id: &str,
        verbose: bool,
    ) -> Result<cri::ContainerStatusResponse, RuntimeError> {
        let id = self.resolve_container(id)?;
        let record = self.container(&id)?;
        let mut info = HashMap::new();
        if verbose {
            let spec: Option<serde_json::Value> = std::fs::read(record.bundle.join("config.json"))
                .ok()
                .and_then(|b| serde_json::from_slice(&b).ok());
            let detail = serde_json::json!({
                "sandboxID": record.sandbox_id,
                "pid": record.pid,
                "removing": false,
                "snapshotKey": record.id,
                "snapshotter": "overlayfs",
                "runtimeType": "io.skiff.shim.v1",
                "engine": record.engine.as_str(),
                "config": record.config,
                "runtimeSpec": spec,
            });
            info.insert("info".to_string(), detail.to_string());
        }
        Ok(cri::ContainerStatusResponse {
            status: Some(record.status()),
            info,
        })
    }

    /// ListContainers.
    pub fn list_containers(&self, filter: Option<&cri::ContainerFilter>) -> Vec<cri::Container> {
        let state = self.state();
        state
            .containers
            .values()
            .filter(|c| filter.is_none_or(|f| c.matches(f)))
            .map(ContainerRecord::to_cri)
            .collect()
    }

    /// UpdateContainerResources: applies new limits to the running
    /// container's cgroup and records them.
    pub async fn update_container_resources(
        &self,
        id: &str,
        resources: Option<cri::LinuxContainerResources>,
    ) -> Result<(), RuntimeError> {
        let id = self.resolve_container(id)?;
        let _guard = self.lock(&id).await;
        let record = self.container(&id)?;
        if matches!(
            record.state,
            ContainerState::Running | ContainerState::Created
        ) {
            let oci = spec::update_resources(resources.as_ref(), &HostLimits::current(), &id)?;
            self.shim(&record.sandbox_id)?.update(&id, &oci).await?;
        }
        self.update_container(&id, |r| {
            r.config
                .linux
                .get_or_insert_with(Default::default)
                .resources = resources;
        })?;
        Ok(())
    }

    /// ReopenContainerLog: the shim reopens the log file (after rotation).
    pub async fn reopen_container_log(&self, id: &str) -> Result<(), RuntimeError> {
        let id = self.resolve_container(id)?;
        let record = self.container(&id)?;
        if record.state != ContainerState::Running {
            return Err(RuntimeError::FailedPrecondition(format!(
                "container {id} is not running"
            )));
        }
        Ok(self.shim(&record.sandbox_id)?.reopen_log(&id).await?)
    }
}

/// A signal by name (`SIGQUIT`, `QUIT`) or number.
fn parse_signal(name: &str) -> Option<i32> {
    if let Ok(n) = name.parse::<i32>() {
        return Some(n);
    }
    let upper = name.to_ascii_uppercase();
    let full = if upper.starts_with("SIG") {
        upper
    } else {
        format!("SIG{upper}")
    };
    full.parse::<nix::sys::signal::Signal>()
        .ok()
        .map(|s| s as i32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stop_signals_parse_by_name_or_number() {
        assert_eq!(parse_signal("SIGQUIT"), Some(libc::SIGQUIT));
        assert_eq!(parse_signal("int"), Some(libc::SIGINT));
        assert_eq!(parse_signal("9"), Some(9));
        assert_eq!(parse_signal("NOPE"), None);
    }
}
