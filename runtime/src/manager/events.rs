//! From shim events to records and CRI container events: each pod's shim
//! streams exits; the pump records them, wakes StopContainer waiters and
//! tells GetContainerEvents subscribers. If the shim goes away, its
//! containers' fate is read from the exit records it left on disk.

use std::time::Duration;

use k8s_cri::v1 as cri;
use skiff_shims::ShimClient;
use skiff_shims::protocol::{ContainerState as ShimState, ContainerStatus as ShimStatus, Event};
use tokio_util::sync::CancellationToken;

use super::{Runtime, now_ns};
use crate::records::{ContainerRecord, ContainerState, SandboxState};

impl Runtime {
    /// Follows one shim's events until `stop` or until the shim is gone.
    pub(super) async fn pump_events(
        self,
        sandbox_id: String,
        client: ShimClient,
        stop: CancellationToken,
    ) {
        loop {
            // Catch up first: exits that happened while nobody listened.
            match client.states().await {
                Ok(states) => states.iter().for_each(|s| self.apply_shim_state(s)),
                Err(err) if err.is_unreachable() => break,
                Err(err) => {
                    tracing::debug!(sandbox = %sandbox_id, error = %err, "shim state failed")
                }
            }
            let mut events = match client.events().await {
                Ok(events) => events,
                Err(err) if err.is_unreachable() => break,
                Err(err) => {
                    tracing::debug!(sandbox = %sandbox_id, error = %err, "shim events failed; retrying");
                    if sleep_or_stop(&stop, Duration::from_millis(200)).await {
                        return;
                    }
                    continue;
                }
            };
            loop {
                tokio::select! {
                    () = stop.cancelled() => return,
                    next = events.next() => match next {
                        Ok(Some(event)) => self.apply_event(event),
                        Ok(None) | Err(_) => break,
                    },
                }
            }
            if sleep_or_stop(&stop, Duration::from_millis(100)).await {
                return;
            }
        }
        if !stop.is_cancelled() {
            self.shim_gone(&sandbox_id);
        }
    }

    fn apply_event(&self, event: Event) {
        if let Event::Exited {
            id,
            exit_code,
            finished_at_ns,
            oom_killed,
            ..
        } = event
        {
            self.record_exit(&id, exit_code, finished_at_ns, oom_killed, None);
        }
    }

    /// Reconciles a record with what the shim reports.
    pub(super) fn apply_shim_state(&self, state: &ShimState) {
        if state.status == ShimStatus::Exited {
            self.record_exit(
                &state.id,
                state.exit_code.unwrap_or(255),
                state.finished_at_ns.unwrap_or_else(now_ns),
                state.oom_killed,
                state.message.clone(),
            );
        } else if state.status == ShimStatus::Running {
            let started = state.started_at_ns.unwrap_or(0);
            let _ = self.change_if(&state.id, |r| {
                (r.state == ContainerState::Created || r.state == ContainerState::Unknown).then(
                    || {
                        r.state = ContainerState::Running;
                        r.started_at = started;
                        r.pid = Some(state.pid as u32);
                    },
                )
            });
        }
    }

    fn record_exit(
        &self,
        id: &str,
        exit_code: i32,
        finished_at: i64,
        oom_killed: bool,
        message: Option<String>,
    ) {
        let mut never_started = false;
        let _order = self.event_order();
        let changed = self.change_if(id, |r| {
            (r.state != ContainerState::Exited).then(|| {
                // Exited before StartContainer recorded the start: it
                // did start, and subscribers see that first.
                never_started = r.state == ContainerState::Created;
                r.set_exited(exit_code, finished_at, oom_killed);
                if let Some(message) = &message {
                    r.message = message.clone();
                }
            })
        });
        if let Some(record) = changed {
            tracing::info!(container = %id, exit_code, reason = %record.reason, "container exited");
            self.inner.exits.notify_waiters();
            if never_started {
                self.emit(&record, cri::ContainerEventType::ContainerStartedEvent);
            }
            self.emit(&record, cri::ContainerEventType::ContainerStoppedEvent);
        }
    }

    /// Applies `change` when it returns `Some`, saving the record; returns it.
    fn change_if(
        &self,
        id: &str,
        change: impl FnOnce(&mut ContainerRecord) -> Option<()>,
    ) -> Option<ContainerRecord> {
        match self.change_container(id, change) {
            Ok(changed) => changed,
            Err(err) => {
                tracing::error!(container = %id, error = %err, "cannot save container record");
                None
            }
        }
    }

    /// Asks the shim for one container's state (when an event may be lost).
    pub(super) async fn refresh_from_shim(&self, id: &str) {
        let Ok(record) = self.container(id) else {
            return;
        };
        let Ok(shim) = self.shim(&record.sandbox_id) else {
            return;
        };
        match shim.state(id).await {
            Ok(state) => self.apply_shim_state(&state),
            Err(err) if err.is_unreachable() => self.shim_gone(&record.sandbox_id),
            Err(_) => {}
        }
    }

    /// The pod's shim died (or was killed): its sandbox is not ready and its
    /// containers ended, as the exit records it wrote say, else unknown.
    pub(super) fn shim_gone(&self, sandbox_id: &str) {
        let handle = self
            .inner
            .shims
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(sandbox_id);
        if handle.is_none() {
            return;
        }
        tracing::warn!(sandbox = %sandbox_id, "the pod's shim is gone");
        if let Ok(mut sandbox) = self.sandbox(sandbox_id)
            && sandbox.state == SandboxState::Ready
        {
            sandbox.state = SandboxState::NotReady;
            let _ = self.save_sandbox(sandbox);
        }
        for container in self.containers_of(sandbox_id) {
            self.settle_orphan(&container);
        }
        self.inner.exits.notify_waiters();
    }

    /// A container whose shim is gone: its exit record if it left one,
    /// else exited with an unknown status. Its processes, if any still run
    /// (nobody owns their output any more), are killed, as containerd's
    /// shim cleanup does.
    pub(super) fn settle_orphan(&self, container: &ContainerRecord) {
        if container.state == ContainerState::Exited {
            return;
        }
        if !container.cgroup_path.is_empty() {
            match crate::cgroups::kill_all(&container.cgroup_path) {
                Ok(0) | Err(_) => {}
                Ok(n) => {
                    tracing::warn!(container = %container.id, processes = n, "killed the processes of a container whose shim is gone")
                }
            }
        }
        let exit = self
            .pod_dir(&container.sandbox_id)
            .join("exits")
            .join(format!("{}.json", container.id));
        let recorded: Option<ShimState> = std::fs::read(&exit)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok());
        match recorded {
            Some(state) if state.status == ShimStatus::Exited => self.apply_shim_state(&state),
            _ => {
                let _ = self.change_if(&container.id, |r| {
                    r.state = ContainerState::Exited;
                    r.exit_code = 255;
                    r.reason = "Unknown".into();
                    r.message = "the container's shim exited unexpectedly".into();
                    r.finished_at = now_ns();
                    r.pid = None;
                    Some(())
                });
            }
        }
    }

    /// Held from a state change to its event: see `Inner::event_order`.
    pub(super) fn event_order(&self) -> std::sync::MutexGuard<'_, ()> {
        self.inner
            .event_order
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Tells GetContainerEvents subscribers.
    pub(super) fn emit(&self, record: &ContainerRecord, kind: cri::ContainerEventType) {
        if self.inner.events.receiver_count() == 0 {
            return;
        }
        let sandbox = self.sandbox(&record.sandbox_id).ok();
        let event = cri::ContainerEventResponse {
            container_id: record.id.clone(),
            container_event_type: kind as i32,
            created_at: now_ns(),
            pod_sandbox_status: sandbox.as_ref().map(|s| s.status()),
            containers_statuses: sandbox
                .map(|s| {
                    self.containers_of(&s.id)
                        .iter()
                        .map(ContainerRecord::status)
                        .collect()
                })
                .unwrap_or_default(),
        };
        let _ = self.inner.events.send(event);
    }
}

/// Sleeps; true when stopped meanwhile.
async fn sleep_or_stop(stop: &CancellationToken, duration: Duration) -> bool {
    tokio::select! {
        () = stop.cancelled() => true,
        () = tokio::time::sleep(duration) => false,
    }
}
