//! One sync of a live pod, kubelet's `SyncPod`: volumes, then a ready
//! sandbox (a new one when it died), then init containers one at a time
//! to completion, then sidecars and containers; restarts as the restart
//! policy says, after CrashLoopBackOff back-off; restarts of containers
//! whose liveness or startup probe failed or whose spec changed; then the
//! status. A pod that reached Succeeded or Failed has its containers and
//! sandbox stopped and is left alone until it is deleted.

use std::collections::HashSet;
use std::time::{Instant, SystemTime};

use k8s_cri::v1 as cri;
use k8s_openapi::api::core::v1::{Container, Pod};
use k8s_openapi::jiff::Timestamp;

use super::containers::container_hash;
use super::cri::go_error;
use super::events::{container_ref, pod_label, pod_ref, reason};
use super::probes::{ProbeKind, ProbeTarget};
use super::pull::go_duration;
use super::sandbox::{log_directory, runtime_handler, sandbox_config};
use super::snapshot::{ContainerInfo, PodSnapshot};
use super::status::{StatusInput, Waiting, is_sidecar, pod_status, should_restart};
use super::volumes::VolumeContext;
use super::worker::{Next, PodWorker, RESYNC};

/// How soon a failed step is tried again.
const RETRY: std::time::Duration = std::time::Duration::from_secs(2);
/// How soon a failed sandbox creation is tried again (kubelet's pod
/// worker back-off period).
const SANDBOX_RETRY: std::time::Duration = std::time::Duration::from_secs(10);
/// How soon a pod waiting for the pod network looks again.
const NETWORK_RETRY: std::time::Duration = std::time::Duration::from_secs(1);

/// A ready sandbox to run containers in.
#[derive(Debug, Clone)]
pub struct Sandbox {
    /// Its ID.
    pub id: String,
    /// The config it was (or would be) created with.
    pub config: cri::PodSandboxConfig,
    /// The RuntimeClass handler.
    pub handler: String,
    /// The pod's IP.
    pub ip: String,
}

/// The restart policy of the pod.
pub fn restart_policy(pod: &Pod) -> String {
    pod.spec
        .as_ref()
        .and_then(|s| s.restart_policy.clone())
        .unwrap_or_else(|| "Always".into())
}

/// Whether the pod reached Succeeded or Failed.
pub fn is_terminal_phase(phase: Option<&str>) -> bool {
    matches!(phase, Some("Succeeded" | "Failed"))
}

impl PodWorker {
    /// The back-off key of container `name`, as kubelet's
    /// `name_namespace_uid_container_hash`.
    pub fn backoff_key(&self, container: &Container) -> String {
        let meta = &self.pod.metadata;
        format!(
            "{}_{}_{}_{}_{}",
            meta.name.as_deref().unwrap_or_default(),
            meta.namespace.as_deref().unwrap_or_default(),
            meta.uid.as_deref().unwrap_or_default(),
            container.name,
            container_hash(container)
        )
    }

    /// Reads the runtime's view and remembers restart counts.
    pub async fn snapshot(&mut self) -> Option<PodSnapshot> {
        match PodSnapshot::read(&self.ctx.cri, &self.uid()).await {
            Ok(snapshot) => {
                for c in &snapshot.containers {
                    let count = self.restart_counts.entry(c.name.clone()).or_insert(0);
                    *count = (*count).max(c.restart_count);
                }
                Some(snapshot)
            }
            Err(status) => {
                tracing::warn!(pod = %self.key(), error = %status, "reading the pod from the runtime");
                None
            }
        }
    }

    /// One sync of a pod that is not being deleted.
    pub async fn sync(&mut self) -> Next {
        let Some(snapshot) = self.snapshot().await else {
            return Next::after(RETRY);
        };
        let done = is_terminal_phase(self.status.last().and_then(|s| s.phase.as_deref()));
        if done {
            self.stop_finished(&snapshot).await;
            self.write_status(false).await;
            return Next::after(RESYNC * 6);
        }
        let mut next = Next::after(RESYNC);
        let ctx = self.ctx.clone();
        let volumes = VolumeContext {
            client: ctx.client(),
            node: &ctx.capacity,
        };
        if let Err(err) = self.volumes.setup(volumes, &self.pod).await {
            self.ctx
                .events
                .warning(&pod_ref(&self.pod), reason::FAILED_MOUNT, err.to_string());
        }
        if !self.volumes.ready() {
            // Containers start only once every volume is set up.
            if let Some(err) = self.volumes.last_error().filter(|e| e.token_api_missing) {
                let message = err.to_string();
                for c in all_containers(&self.pod) {
                    self.waiting.insert(
                        c.name.clone(),
                        Waiting::new("CreateContainerConfigError", message.clone()),
                    );
                }
            }
            self.write_status(false).await;
            return Next::after(RETRY * 5);
        }
        if let Some(at) = self.volumes.next_refresh() {
            next = next.min(Next::At(at));
        }
        let sandbox = match self.ensure_sandbox(&snapshot).await {
            Ok(Some(sandbox)) => sandbox,
            Ok(None) => {
                self.write_status(false).await;
                return next;
            }
            Err(retry) => {
                self.write_status(false).await;
                return retry;
            }
        };
        let snapshot = if snapshot.sandbox().map(|s| &s.id) == Some(&sandbox.id) {
            snapshot
        } else {
            match self.snapshot().await {
                Some(s) => s,
                None => return Next::after(RETRY),
            }
        };
        next = next.min(self.sync_containers(&snapshot, &sandbox).await);
        let phase = self.write_status(false).await;
        if is_terminal_phase(phase.as_deref())
            && let Some(snapshot) = self.snapshot().await
        {
            self.stop_finished(&snapshot).await;
            self.write_status(false).await;
        }
        next
    }

    /// The ready sandbox, made when there is none. `Ok(None)`: the pod
    /// must not get a new one (restartPolicy Never after its sandbox
    /// died); `Err`: retry then.
    async fn ensure_sandbox(&mut self, snapshot: &PodSnapshot) -> Result<Option<Sandbox>, Next> {
        let ctx = self.ctx.clone();
        let handler = match runtime_handler(ctx.client(), &self.pod).await {
            Ok(handler) => handler,
            Err(message) => {
                ctx.events.warning(
                    &pod_ref(&self.pod),
                    reason::FAILED_CREATE_POD_SANDBOX,
                    format!("Failed to create pod sandbox: {message}"),
                );
                return Err(Next::after(SANDBOX_RETRY));
            }
        };
        let settings = ctx.sandbox_settings();
        if let Some(latest) = snapshot.sandbox()
            && latest.ready
        {
            let host_network = self
                .pod
                .spec
                .as_ref()
                .and_then(|s| s.host_network)
                .unwrap_or(false);
            return Ok(Some(Sandbox {
                id: latest.id.clone(),
                config: sandbox_config(&self.pod, latest.attempt, &settings),
                handler,
                ip: if host_network {
                    ctx.kubelet.config.node_ip.to_string()
                } else {
                    latest.ip.clone().unwrap_or_default()
                },
            }));
        }
        let attempt = match snapshot.sandbox() {
            None => 0,
            Some(dead) => {
                if restart_policy(&self.pod) == "Never" && !snapshot.containers.is_empty() {
                    return Ok(None);
                }
                ctx.events.normal(
                    &pod_ref(&self.pod),
                    reason::SANDBOX_CHANGED,
                    "Pod sandbox changed, it will be killed and re-created.",
                );
                if let Err(status) = ctx.cri.stop_pod_sandbox(&dead.id).await {
                    tracing::warn!(pod = %self.key(), error = %status, "stopping the dead sandbox");
                }
                dead.attempt + 1
            }
        };
        let host_network = self
            .pod
            .spec
            .as_ref()
            .and_then(|s| s.host_network)
            .unwrap_or(false);
        // As kubelet: a pod on the pod network waits for it (the node's pod
        // CIDR reaches the runtime after the kubelet starts).
        if !host_network && let Some(problem) = ctx.cri.network_not_ready().await {
            ctx.events.warning(
                &pod_ref(&self.pod),
                reason::NETWORK_NOT_READY,
                format!("network is not ready: {problem}"),
            );
            return Err(Next::after(NETWORK_RETRY));
        }
        let config = sandbox_config(&self.pod, attempt, &settings);
        let logs = log_directory(&ctx.options.pod_logs_dir, &self.pod);
        if let Err(err) = std::fs::create_dir_all(&logs) {
            tracing::warn!(dir = %logs.display(), error = %err, "creating the pod log directory");
        }
        match ctx
            .cri
            .run_pod_sandbox(config.clone(), handler.clone())
            .await
        {
            Ok(id) => {
                let ip = ctx
                    .cri
                    .pod_sandbox_status(&id)
                    .await
                    .ok()
                    .and_then(|s| s.network)
                    .map(|n| n.ip)
                    .unwrap_or_default();
                for old in &snapshot.sandboxes {
                    if let Err(status) = ctx.cri.remove_pod_sandbox(&old.id).await {
                        tracing::warn!(sandbox = %old.id, error = %status, "removing an old sandbox");
                    }
                }
                tracing::info!(pod = %self.key(), sandbox = %id, attempt, "pod sandbox created");
                Ok(Some(Sandbox {
                    id,
                    config,
                    handler,
                    ip,
                }))
            }
            Err(status) => {
                ctx.events.warning(
                    &pod_ref(&self.pod),
                    reason::FAILED_CREATE_POD_SANDBOX,
                    format!("Failed to create pod sandbox: {}", go_error(&status)),
                );
                Err(Next::after(SANDBOX_RETRY))
            }
        }
    }

    /// Init containers in order, then sidecars and containers.
    async fn sync_containers(&mut self, snapshot: &PodSnapshot, sandbox: &Sandbox) -> Next {
        let spec = self.pod.spec.clone().unwrap_or_default();
        let policy = restart_policy(&self.pod);
        let mut next = Next::after(RESYNC);
        let in_sandbox = |name: &str| snapshot.in_sandbox(name, &sandbox.id).cloned();
        for c in spec.init_containers.iter().flatten() {
            let current = in_sandbox(&c.name);
            if is_sidecar(c) {
                match &current {
                    Some(info) if info.running() => {
                        if !self.keep_running(c, info, sandbox).await {
                            return next;
                        }
                        let started = self
                            .probes
                            .health()
                            .get(info.id())
                            .is_some_and(|h| h.started);
                        if !started {
                            return next;
                        }
                    }
                    _ => {
                        next = next.min(self.restart_or_start(c, current.as_ref(), sandbox).await);
                        return next;
                    }
                }
                continue;
            }
            match &current {
                Some(info) if info.exited() && info.exit_code() == 0 => {
                    self.waiting.remove(&c.name);
                }
                Some(info) if info.running() => return next,
                Some(info) if info.exited() => {
                    if policy == "Never" {
                        return next;
                    }
                    return next.min(self.restart_or_start(c, Some(info), sandbox).await);
                }
                _ => return next.min(self.restart_or_start(c, current.as_ref(), sandbox).await),
            }
        }
        let sidecars = spec
            .init_containers
            .iter()
            .flatten()
            .filter(|c| is_sidecar(c));
        let regular: Vec<Container> = sidecars
            .cloned()
            .chain(spec.containers.iter().cloned())
            .collect();
        for c in &regular {
            let current = in_sandbox(&c.name);
            match &current {
                Some(info) if info.running() => {
                    if self.keep_running(c, info, sandbox).await {
                        continue;
                    }
                    next = next.min(self.start(c, sandbox).await);
                }
                Some(info) if info.exited() => {
                    let policy = if is_sidecar(c) {
                        "Always"
                    } else {
                        policy.as_str()
                    };
                    if should_restart(policy, info.exit_code()) {
                        next = next.min(self.restart_or_start(c, Some(info), sandbox).await);
                    } else {
                        self.waiting.remove(&c.name);
                    }
                }
                _ => {
                    // Never restarted after its sandbox died: what ran
                    // before stays as it ended.
                    let ran_before = snapshot
                        .current(&c.name)
                        .is_some_and(|i| i.exited() && !should_restart(&policy, i.exit_code()));
                    if !ran_before {
                        next = next.min(self.restart_or_start(c, current.as_ref(), sandbox).await);
                    }
                }
            }
        }
        next
    }

    /// A running container stays unless its spec changed or a liveness or
    /// startup probe failed, in which case it is stopped (and false is
    /// returned so the caller starts it again). Keeps its probes running.
    async fn keep_running(
        &mut self,
        c: &Container,
        info: &ContainerInfo,
        sandbox: &Sandbox,
    ) -> bool {
        let message = if !info.hash.is_empty() && info.hash != container_hash(c) {
            Some(format!(
                "Container {} definition changed, will be restarted",
                c.name
            ))
        } else {
            self.probes.take_failure(info.id()).map(|kind| {
                let what = match kind {
                    ProbeKind::Startup => "startup",
                    _ => "liveness",
                };
                format!(
                    "Container {} failed {what} probe, will be restarted",
                    c.name
                )
            })
        };
        if let Some(message) = message {
            let grace = self.grace_period(c);
            self.kill_container(c, info, &message, grace).await;
            return false;
        }
        self.waiting.remove(&c.name);
        self.probes.ensure(ProbeTarget {
            cri: self.ctx.cri.clone(),
            events: self.ctx.events.clone(),
            pod: self.pod.clone(),
            container: c.clone(),
            container_id: info.id().to_owned(),
            started_at: info.started_at(),
            pod_ip: sandbox.ip.clone(),
        });
        true
    }

    /// Starts `c` again after `exited` ended, unless in CrashLoopBackOff.
    async fn restart_or_start(
        &mut self,
        c: &Container,
        exited: Option<&ContainerInfo>,
        sandbox: &Sandbox,
    ) -> Next {
        if let Some(info) = exited.filter(|i| i.exited()) {
            let key = self.backoff_key(c);
            let now = SystemTime::now();
            if self
                .backoff
                .is_in_backoff_since(&key, info.finished_at(), now)
            {
                let delay = self.backoff.get(&key).unwrap_or_default();
                let label = pod_label(&self.pod);
                self.ctx.events.warning(
                    &container_ref(&self.pod, &c.name),
                    reason::BACK_OFF,
                    format!(
                        "Back-off restarting failed container {} in pod {label}",
                        c.name
                    ),
                );
                self.waiting.insert(
                    c.name.clone(),
                    Waiting::new(
                        "CrashLoopBackOff",
                        format!(
                            "back-off {} restarting failed container={} pod={label}",
                            go_duration(delay),
                            c.name
                        ),
                    ),
                );
                let ends = self
                    .backoff
                    .ends_at(&key, info.finished_at())
                    .and_then(|at| at.duration_since(now).ok())
                    .unwrap_or(RETRY);
                return Next::At(Instant::now() + ends);
            }
            self.backoff.next(&key, now);
        }
        self.start(c, sandbox).await
    }

    /// Writes the status computed from the runtime now; the phase written.
    pub async fn write_status(&mut self, terminal: bool) -> Option<String> {
        let snapshot = self.snapshot().await?;
        let health = self.probes.health();
        let node_ip = self.ctx.kubelet.config.node_ip.to_string();
        let mut pod = self.pod.clone();
        if let Some(last) = self.status.last() {
            // Our last write may not have come back through the watch yet.
            pod.status = Some(last.clone());
        }
        let status = pod_status(&StatusInput {
            pod: &pod,
            snapshot: &snapshot,
            host_ip: &node_ip,
            runtime_name: &self.ctx.runtime_name,
            waiting: &self.waiting,
            health: &health,
            terminal,
            now: Timestamp::now(),
        });
        let phase = status.phase.clone();
        let live: HashSet<String> = snapshot
            .containers
            .iter()
            .filter(|c| c.running())
            .map(|c| c.id().to_owned())
            .collect();
        self.probes.retain(&live);
        if let Err(err) = self
            .status
            .write(self.ctx.client(), &self.pod, status)
            .await
        {
            tracing::warn!(pod = %self.key(), error = %err, "writing the pod status");
        }
        phase
    }

    /// Stops what still runs of a pod that finished, and its sandbox.
    async fn stop_finished(&mut self, snapshot: &PodSnapshot) {
        let running: Vec<ContainerInfo> = snapshot
            .containers
            .iter()
            .filter(|c| c.running())
            .cloned()
            .collect();
        for info in running {
            let spec = all_containers(&self.pod)
                .find(|c| c.name == info.name)
                .cloned();
            if let Some(c) = spec {
                let grace = self.grace_period(&c);
                self.kill_container(&c, &info, "", grace).await;
            }
        }
        for sandbox in snapshot.sandboxes.iter().filter(|s| s.ready) {
            if let Err(status) = self.ctx.cri.stop_pod_sandbox(&sandbox.id).await {
                tracing::warn!(pod = %self.key(), error = %status, "stopping a finished pod's sandbox");
            }
        }
    }
}

/// Init containers, then containers.
pub fn all_containers(pod: &Pod) -> impl Iterator<Item = &Container> {
    let spec = pod.spec.as_ref();
    spec.into_iter().flat_map(|s| {
        s.init_containers
            .iter()
            .flatten()
            .chain(s.containers.iter())
    })
}
